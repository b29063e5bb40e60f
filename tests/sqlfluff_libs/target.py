"""dbt's `target` while linting: the DuckDB target (the dialect sqlfluff checks)."""

type = "duckdb"  # noqa: A001 - the name dbt gives it
name = "duckdb"
schema = "main"
