{#
    Where Spark's SQL gives another type than DuckDB's for the same expression, so that the
    marts have the same columns on both engines.
#}

{#
    dbt.datediff: DuckDB returns BIGINT for every part; dbt-spark's is INT for days and a
    DOUBLE for months (months_between). Cast to BIGINT (whole parts, as DuckDB counts them).
#}
{% macro spark__datediff(first_date, second_date, datepart) -%}
    cast({{ dbt.spark__datediff(first_date, second_date, datepart) }} as bigint)
{%- endmacro %}

{#
    Materialization of a mart that is a view on DuckDB (free to build, read through the
    published snapshot, which copies it as a table). On Spark it is a table: Spark's views
    live in the session's catalog, and publishing and scoring read tables by their Parquet
    folders.
#}
{% macro view_or_spark_table() -%}
    {{ return('table' if target.type == 'spark' else 'view') }}
{%- endmacro %}
