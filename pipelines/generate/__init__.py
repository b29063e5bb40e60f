"""Deterministic synthetic landing data for all 8 sources of the data contract.

`generate()` simulates a shop's customers with a buy-till-you-die purchase process and the
experiences that drive retention (late deliveries, complaints and how fast they are solved,
surveys, post-purchase emails, marketing pressure), then writes one folder per source under
`out/`. The same arguments always give byte-identical files. See docs/generator.md.

`simulate()` is the simulation alone, handing each chunk's sources to a sink; `generate()` and
`pipelines.generate.platforms.generate_platforms()` (the same shop as Shopify, Klaviyo, Zendesk,
Judge.me and Delighted export files) are its two writers.

`convert_cdnow()` turns the public CDNOW transaction log into an `orders` landing file.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Protocol

import numpy as np

from pipelines.core.contract import SOURCE_NAMES, source
from pipelines.core.warehouse import scratch
from pipelines.generate import sources as build
from pipelines.generate.catalog import catalogue
from pipelines.generate.cdnow import convert_cdnow
from pipelines.generate.core import Calendar, Params, choose_erasures, simulate_customers, simulate_orders
from pipelines.generate.writers import FORMATS, Part, file_names, generated_files, write_part

__all__ = ["generate", "simulate", "convert_cdnow", "FORMATS", "CHUNK_CUSTOMERS", "Params"]

#: Customers simulated and written together; bigger runs write `<source>-0000.<ext>` parts.
CHUNK_CUSTOMERS = 250_000

# Independent random streams per chunk, one per stage, in this fixed order (never reorder:
# appending a stream keeps every existing one unchanged).
_STREAMS = ("customers", "orders", "erasure", "order_items", "returns", "orders_status", "support_tickets",
            "messages", "survey_responses", "reviews", "customers_out", "product_journeys")

# Build order: later builders read what earlier ones decided (see sources.py).
_BUILD_ORDER = (
    ("order_items", build.build_items),
    ("returns", build.build_returns),
    ("orders", build.build_orders),
    ("support_tickets", build.build_tickets),
    ("messages", build.build_messages),
    ("survey_responses", build.build_surveys),
    ("reviews", build.build_reviews),
    ("customers", build.build_customers),
)
_STREAM_OF = {"orders": "orders_status", "customers": "customers_out"}
_ID_KIND = {"returns": "return", "support_tickets": "ticket", "messages": "message",
            "survey_responses": "response", "reviews": "review"}


def generate(
    out: Path,
    customers: int = 10_000,
    seed: int = 7,
    start: date = date(2023, 1, 1),
    end: date = date(2026, 10, 31),
    fmt: str = "csv",
    clean: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Write synthetic landing files for every contract source; return rows written per source.

    Files go to `out/<source>/<source>.<fmt>`, or `<source>-0000.<fmt>`, `-0001`... when more
    than CHUNK_CUSTOMERS customers are generated. Nothing is dated after the end of `end` (UTC).
    `clean` first removes earlier generator output of the 8 sources (any format); without it,
    generator files that this run would not overwrite make it fail, so two runs never mix.
    `progress(stage, rows)` is called after each file with the rows written so far for that
    source (stage "simulate" reports customers simulated).
    """
    check_shop_arguments(customers, start, end)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    out = Path(out)
    chunks = math.ceil(customers / CHUNK_CUSTOMERS)
    targets = {name: [out / name / f for f in file_names(name, fmt, chunks)] for name in SOURCE_NAMES}
    _prepare(out, targets, clean)

    with _BackgroundWriter(fmt, progress, targets) as writer:
        simulate(writer, customers, seed, start, end, progress)
        writer.wait(keep_chunk=None)
        return dict(writer.rows)


def check_shop_arguments(customers: int, start: date, end: date) -> None:
    """Raise ValueError for a shop that cannot be simulated (no customers, an empty period)."""
    if customers < 1:
        raise ValueError("customers must be at least 1")
    if end <= start:
        raise ValueError(f"end ({end}) must be after start ({start})")


class ChunkSink(Protocol):
    """Receives the built sources of each simulated chunk of customers, in build order."""

    def start_chunk(self, chunk: int) -> None:
        """Called before chunk `chunk` is simulated (a writer may wait here to bound memory)."""

    def submit(self, chunk: int, name: str, part: Part) -> None:
        """One source of chunk `chunk`; `name` is the contract source name."""

    def end_chunk(self, chunk: int) -> None:
        """Called after every source of chunk `chunk` was submitted."""


def simulate(sink: ChunkSink, customers: int, seed: int, start: date, end: date,
             progress: Callable[[str, int], None] | None = None) -> int:
    """Simulate the shop chunk by chunk and hand every built source to `sink`; return the chunks.

    The one simulation behind both the contract files (`generate`) and the platform files
    (`pipelines.generate.platforms.generate_platforms`): the same arguments give the same rows.
    """
    chunks = math.ceil(customers / CHUNK_CUSTOMERS)
    params = Params()
    cal = Calendar(start, end, params.growth_per_year)
    catl = catalogue()
    chunk_seeds = np.random.SeedSequence(seed).spawn(chunks)
    base = {"customer": 0, "order": 0, "return": 0, "ticket": 0, "message": 0, "response": 0, "review": 0}
    for i in range(chunks):
        sink.start_chunk(i)
        n = min(CHUNK_CUSTOMERS, customers - i * CHUNK_CUSTOMERS)
        rngs = {name: np.random.default_rng(s) for name, s in
                zip(_STREAMS, chunk_seeds[i].spawn(len(_STREAMS)), strict=True)}
        c = simulate_customers(rngs["customers"], n, cal, params)
        o = simulate_orders(rngs["orders"], c, cal, params)
        o.row_id = np.arange(o.n, dtype=np.int64) + base["order"]
        erasure = choose_erasures(rngs["erasure"], c, o, cal, params)
        ctx = SimpleNamespace(c=c, o=o, p=params, cal=cal, catalogue=catl, base=dict(base), erasure=erasure,
                              cutoff=np.minimum(cal.t1, erasure),  # nothing of a customer after this
                              journey_rng=rngs["product_journeys"])
        if progress:
            progress("simulate", i * CHUNK_CUSTOMERS + n)
        for name, builder in _BUILD_ORDER:
            part = builder(rngs[_STREAM_OF.get(name, name)], ctx)
            sink.submit(i, name, part)
            if name in _ID_KIND:
                base[_ID_KIND[name]] += part.rows
            del part
        base["customer"] += n
        base["order"] += o.n
        del ctx, c, o
        sink.end_chunk(i)
    return chunks


class _BackgroundWriter:
    """Runs the DuckDB writes on one background thread, in submission order.

    DuckDB releases the GIL while it formats and writes a file, so on a multi-core machine
    the next source is built with NumPy while the previous one is written. Progress is
    reported from the calling thread, file by file, in order.
    """

    def __init__(self, fmt: str, progress: Callable[[str, int], None] | None, targets: dict[str, list[Path]]):
        self.fmt, self.progress, self.targets = fmt, progress, targets
        self.rows = dict.fromkeys(SOURCE_NAMES, 0)
        self.pending: deque[tuple[int, str, int, Future]] = deque()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="retain-generate-write")
        self.con = scratch()
        # keep the row order of the arrow tables; no progress bar of its own under the caller's
        self.con.execute("SET preserve_insertion_order = true")
        self.con.execute("SET enable_progress_bar = false")

    def __enter__(self) -> _BackgroundWriter:
        return self

    def __exit__(self, *exc) -> None:
        for *_, fut in self.pending:
            fut.cancel()
        self.pool.shutdown(wait=True)
        self.con.close()

    def start_chunk(self, chunk: int) -> None:
        """Keep at most one earlier chunk in flight so memory stays bounded."""
        self.wait(keep_chunk=chunk - 1)

    def end_chunk(self, chunk: int) -> None:
        """Nothing to do: every part was queued as it came."""

    def submit(self, chunk: int, name: str, part: Part) -> None:
        """Queue one part of chunk `chunk` for writing to its target file."""
        fut = self.pool.submit(write_part, self.con, source(name), part, self.targets[name][chunk], self.fmt)
        self.pending.append((chunk, name, part.rows, fut))
        self._collect(lambda c, f: f.done())

    def wait(self, keep_chunk: int | None) -> None:
        """Block until every write of chunks before `keep_chunk` is done (None: all writes)."""
        self._collect(lambda c, f: keep_chunk is None or c < keep_chunk)

    def _collect(self, ready: Callable[[int, Future], bool]) -> None:
        while self.pending and ready(self.pending[0][0], self.pending[0][3]):
            _, name, n, fut = self.pending.popleft()
            fut.result()  # re-raises a failed write here
            self.rows[name] += n
            if self.progress:
                self.progress(name, self.rows[name])


def _prepare(out: Path, targets: dict[str, list[Path]], clean: bool) -> None:
    """Remove old generator output (clean) or refuse to leave stale parts next to new files."""
    for name, paths in targets.items():
        existing = generated_files(out / name, name)
        if clean:
            for path in existing:
                path.unlink()
            continue
        stale = [p for p in existing if p not in paths]
        if stale:
            raise FileExistsError(
                f"{out / name} already holds generated files this run would not replace "
                f"({', '.join(p.name for p in stale[:3])}); pass clean=True to remove them first")
