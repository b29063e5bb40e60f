"""`adapter.dispatch(name, namespace)`: the DuckDB implementation of retain's dispatched macros."""

_DUCKDB = {
    "type_double": lambda: "double",
    "median": lambda expression: f"quantile_cont({expression}, 0.5)",
    "timestamp_floor": lambda: "'-infinity'",
    "load_version": lambda load_id, source_row: f"{{ 'load_id': {load_id}, 'source_row': {source_row} }}",
    "register_raw_sources": lambda: "",
    "sql_type": lambda data_type: data_type,
    "unnest_list": lambda expression: f"unnest({expression})",
}


def dispatch(macro_name: str, macro_namespace: str | None = None):
    """The callable dbt would pick on DuckDB for `macro_name`."""
    if macro_name not in _DUCKDB:
        raise KeyError(f"no lint stand-in for dispatched macro {macro_name!r}: add it to {__file__}")
    return _DUCKDB[macro_name]
