"""What `retain ingest` prints about customer identity: each source's match rate."""

from __future__ import annotations

from rich.table import Table


def format_match_rates(rates: list[tuple]) -> Table:
    """One line per source and platform: rows, matched to a shop customer, kept unmatched, rate."""
    table = Table(title="Customers matched across platforms")
    for col in ("source", "platform", "rows", "matched", "unmatched", "match rate"):
        table.add_column(col, justify="left" if col in ("source", "platform") else "right", no_wrap=True)
    for source, platform, rows, matched, unmatched, rate in rates:
        table.add_row(source, platform, f"{rows:,}", f"{matched:,}", f"{unmatched:,}",
                      "" if rate is None else f"{rate:.0%}")
    table.caption = ("matched: the row's customer is a shop customer (same id, email or phone); "
                     "unmatched rows are kept under their own key")
    return table
