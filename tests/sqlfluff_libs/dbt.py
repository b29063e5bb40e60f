"""`dbt.<macro>(...)`: dbt's cross-database macros as dbt-duckdb renders them (for linting only)."""


def date_trunc(datepart: str, date: str) -> str:
    """dbt.date_trunc."""
    return f"date_trunc('{datepart}', {date})"


def datediff(first_date: str, second_date: str, datepart: str) -> str:
    """dbt.datediff."""
    return f"date_diff('{datepart}', {first_date}, {second_date})"


def dateadd(datepart: str, interval: object, from_date_or_timestamp: str) -> str:
    """dbt.dateadd."""
    return f"({from_date_or_timestamp} + cast({interval} as bigint) * interval 1 {datepart})"


def hash(field: str) -> str:  # noqa: A001 - the name dbt gives it
    """dbt.hash."""
    return f"md5(cast({field} as varchar))"


def type_string() -> str:
    """dbt.type_string."""
    return "varchar"


def type_timestamp() -> str:
    """dbt.type_timestamp."""
    return "timestamp"


def generate_series(upper_bound: int) -> str:
    """dbt.generate_series."""
    return f"select unnest(range(1, {upper_bound} + 1)) as generated_number"
