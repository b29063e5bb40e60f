"""`adapter.dispatch(name, namespace)`: the DuckDB implementation of retain's dispatched macros."""

_DUCKDB = {
    "type_double": lambda: "double",
    "median": lambda expression: f"quantile_cont({expression}, 0.5)",
}


def dispatch(macro_name: str, macro_namespace: str | None = None):
    """The callable dbt would pick on DuckDB for `macro_name`."""
    if macro_name not in _DUCKDB:
        raise KeyError(f"no lint stand-in for dispatched macro {macro_name!r}: add it to {__file__}")
    return _DUCKDB[macro_name]
