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

{#
    Seeds on Spark: the column types in dbt_project.yml are written for DuckDB (`varchar`),
    which Spark only accepts with a length. dbt-spark's own macro with each type passed
    through `spark_type` (varchar -> string, integer -> int; Spark's names unchanged).
#}
{% macro spark__create_csv_table(model, agate_table) %}
  {%- set column_override = model['config'].get('column_types', {}) -%}
  {%- set quote_seed_column = model['config'].get('quote_columns', None) -%}

  {% set sql %}
    create table {{ this.render() }} (
        {%- for col_name in agate_table.column_names -%}
            {%- set inferred_type = adapter.convert_type(agate_table, loop.index0) -%}
            {%- set type = spark_type(column_override.get(col_name, inferred_type)) -%}
            {%- set column_name = (col_name | string) -%}
            {{ adapter.quote_seed_column(column_name, quote_seed_column) }} {{ type }} {%- if not loop.last -%}, {%- endif -%}
        {%- endfor -%}
    )
    {{ file_format_clause() }}
    {{ partition_cols(label="partitioned by") }}
    {{ clustered_cols(label="clustered by") }}
    {{ location_clause() }}
    {{ comment_clause() }}
  {% endset %}

  {% call statement('_') -%}
    {{ sql }}
  {%- endcall %}

  {{ return(sql) }}
{% endmacro %}

{# dbt-spark's row loader for seeds, with the same type mapping as the table above and NULLs kept. #}
{% macro spark__load_csv_rows(model, agate_table) %}

  {% set batch_size = get_batch_size() %}
  {% set column_override = model['config'].get('column_types', {}) %}

  {% set statements = [] %}

  {% for chunk in agate_table.rows | batch(batch_size) %}
      {% set bindings = [] %}

      {# an empty cell is NULL: dbt-spark would bind it as the text 'None' #}
      {% for row in chunk %}
          {% for value in row if value is not none %}
              {% do bindings.append(value) %}
          {% endfor %}
      {% endfor %}

      {% set sql %}
          insert into {{ this.render() }} values
          {% for row in chunk -%}
              ({%- for col_name in agate_table.column_names -%}
                  {%- set inferred_type = adapter.convert_type(agate_table, loop.index0) -%}
                  {%- set type = spark_type(column_override.get(col_name, inferred_type)) -%}
                    cast({{ 'null' if row[loop.index0] is none else get_binding_char() }} as {{type}})
                  {%- if not loop.last%},{%- endif %}
              {%- endfor -%})
              {%- if not loop.last%},{%- endif %}
          {%- endfor %}
      {% endset %}

      {% do adapter.add_query(sql, bindings=bindings, abridge_sql_log=True) %}

      {% if loop.index0 == 0 %}
          {% do statements.append(sql) %}
      {% endif %}
  {% endfor %}

  {{ return(statements[0]) }}
{% endmacro %}

{#
    One row per element of a list column, as a select expression: DuckDB's `unnest`,
    Spark's `explode`.
#}
{% macro unnest_list(expression) -%}
    {{ return(adapter.dispatch('unnest_list', 'retain')(expression)) }}
{%- endmacro %}

{% macro default__unnest_list(expression) -%}
    unnest({{ expression }})
{%- endmacro %}

{% macro spark__unnest_list(expression) -%}
    explode({{ expression }})
{%- endmacro %}
