{#
    `select * from` a source table, or an empty relation with `columns` (name -> SQL type)
    when the table does not exist yet (the outreach step creates the exports tables after the
    first dbt build of a new warehouse).
#}
{% macro source_or_empty(source_name, table_name, columns) -%}
    {%- set src = source(source_name, table_name) -%}
    {%- set relation = adapter.get_relation(database=src.database, schema=src.schema, identifier=src.identifier)
        if execute else none -%}
    {%- if relation is not none -%}
        select {% for name in columns %}{{ name }}{{ ', ' if not loop.last }}{% endfor %} from {{ src }}
    {%- else -%}
        select
        {%- for name, type in columns.items() %}
            cast(null as {{ sql_type(type) }}) as {{ name }}{{ ',' if not loop.last }}
        {%- endfor %}
        where false
    {%- endif -%}
{%- endmacro %}
