"""Stand-ins for dbt's Jinja context so sqlfluff can lint the models without a dbt templater.

sqlfluff's jinja templater (see `.sqlfluff`) loads this package as `library_path`; each
module becomes a name in the template context. They render what dbt-duckdb renders, closely
enough for linting; they are never used to build anything.
"""
