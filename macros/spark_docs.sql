{#
    Column descriptions on Spark.

    dbt-spark's `persist_docs` reads every built table's columns (`describe extended`, one
    request to the server) and then writes column comments only on Delta, Hudi or Iceberg
    tables. retain's Spark tables are Parquet, so the read bought nothing: one request for every
    model a run builds. This is that macro with the read made conditional on the same file
    formats; a cluster that builds Delta or Iceberg tables (`file_format`) gets its column
    comments as before. Table descriptions (`relation: true`) are written by
    `create table ... comment` and are unaffected.
#}
{% macro spark__persist_docs(relation, model, for_relation, for_columns) -%}
    {%- if for_columns and config.persist_column_docs() and model.columns
           and config.get('file_format') in ['delta', 'hudi', 'iceberg'] -%}
        {%- set existing_columns = adapter.get_columns_in_relation(relation) | map(attribute="name") | list -%}
        {%- set filtered_columns = validate_doc_columns(relation, model.columns, existing_columns) -%}
        {%- do alter_column_comment(relation, filtered_columns) -%}
    {%- endif -%}
{%- endmacro %}
