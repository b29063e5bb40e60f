"""`run_started_at`: a fixed build time (dbt passes a datetime)."""


def strftime(fmt: str) -> str:
    """A fixed timestamp in the requested format."""
    from datetime import datetime

    return datetime(2024, 1, 1).strftime(fmt)
