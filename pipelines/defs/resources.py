"""The warehouse as a Dagster resource: every asset opens DuckDB through it.

`WarehouseResource` is a thin Dagster face on `pipelines.core.warehouse.connect` (UTC, memory
cap, lock wait, read-only where reading), so an asset, the CLI and the `ml` library open the
warehouse the same way. A lock still held after the wait asks Dagster to run the step again
(3 times, 10 s apart): the dashboard reading contact details for a moment must not fail a run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field

from pipelines.core import warehouse as wh


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse; unset fields come from the `RETAIN_*` settings when a step runs."""

    path: str | None = Field(default=None, description="DuckDB file; default RETAIN_WAREHOUSE.")
    memory_limit: str | None = Field(default=None, description="Default RETAIN_DUCKDB_MEMORY_LIMIT (4GB).")
    lock_wait_seconds: float | None = Field(
        default=None, description="How long to wait for a held file lock; default RETAIN_LOCK_WAIT_SECONDS (30)."
    )

    @property
    def location(self) -> Path:
        """The DuckDB file this resource opens."""
        from pipelines.core.config import settings

        return Path(self.path) if self.path else settings().warehouse

    def connect(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        """Open the warehouse; a lock held past the wait becomes a retry of the step."""
        with retry_if_busy():
            return wh.connect(
                self.location, read_only=read_only, memory_limit=self.memory_limit, lock_wait=self.lock_wait_seconds
            )


@contextlib.contextmanager
def retry_if_busy() -> Iterator[None]:
    """Turn `WarehouseBusy` (a file lock held past the wait) into a retry of the whole step.

    For steps whose library call opens the warehouse itself (ingestion). Any other error
    (a missing warehouse, no orders yet) fails the step at once with its own message.
    """
    try:
        yield
    except wh.WarehouseBusy as exc:
        raise dg.RetryRequested(max_retries=3, seconds_to_wait=10) from exc



#: The resources every retain asset may ask for, by key (the Definitions and tests pass these).
RESOURCES = {"warehouse": WarehouseResource()}
