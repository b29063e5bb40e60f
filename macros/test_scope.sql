{#
    Data tests of the daily run check the rows that run wrote, not years of history.

    With the environment variable RETAIN_DBT_TEST_SCOPE=run (the Dagster daily_job sets it;
    unset or `all` everywhere else: full_job, `retain run`, backfills, plain `dbt build`), a
    generic data test on an incremental model that stamps `_built_at` (declared as a column
    in its YAML) reads only the rows stamped with this invocation's time, i.e. the rows this
    run inserted or replaced. Only tests that such a subset answers exactly are scoped:

    - row-level tests (not_null, not_null_columns, accepted_values, accepted_range,
      relationships, expression_is_true): every row was checked when it was written, and a
      run changes no row it does not rewrite;
    - unique / unique_combination_of_columns on columns that include the model's whole
      unique_key: delete+insert first deletes every kept row with a key of the new rows, so
      a duplicate can only be two new rows (a full refresh stamps every row, so it tests
      everything).

    Every other test (uniqueness of another column, singular tests, tests on table models)
    reads the whole relation as usual. The variable is read only when dbt executes, never
    while it parses, so it does not invalidate partial parsing.
#}

{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- set conditions = [where] if where else [] -%}
    {%- if execute and scoped_to_this_run() -%}
        {%- do conditions.append('_built_at = ' ~ (invocation_timestamp() | trim)) -%}
    {%- endif -%}
    {%- if conditions -%}
        {%- set filtered -%}
            (select * from {{ relation }} where ({{ conditions | join(') and (') }})) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- endif -%}
    {%- do return(relation) -%}
{%- endmacro %}

{# Row-level generic tests: a row passes or fails on its own values. #}
{% macro row_level_tests() -%}
    {{ return(['not_null', 'not_null_columns', 'accepted_values', 'accepted_range', 'relationships', 'expression_is_true']) }}
{%- endmacro %}

{# True when the current test (the `model` of the test's context) may read only this run's rows. #}
{% macro scoped_to_this_run() -%}
    {%- if (env_var('RETAIN_DBT_TEST_SCOPE', 'all') | trim | lower) != 'run' -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set test_metadata = model.get('test_metadata') or {} -%}
    {%- set attached = graph.nodes.get(model.get('attached_node') or '') -%}
    {%- if not test_metadata or attached is none -%}
        {{ return(false) }}
    {%- endif -%}
    {%- if attached.config.materialized != 'incremental' or '_built_at' not in attached.columns -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set name = test_metadata.name -%}
    {%- if name in row_level_tests() -%}
        {{ return(true) }}
    {%- endif -%}
    {%- set kwargs = test_metadata.kwargs or {} -%}
    {%- set unique_key = attached.config.unique_key -%}
    {%- set unique_key = [unique_key] if unique_key is string else (unique_key or []) -%}
    {%- if name == 'unique' -%}
        {%- set tested = [kwargs.get('column_name')] -%}
    {%- elif name == 'unique_combination_of_columns' -%}
        {%- set tested = kwargs.get('combination_of_columns') or [] -%}
    {%- else -%}
        {{ return(false) }}
    {%- endif -%}
    {#- two rows equal on the tested columns share the unique_key, so both were written now -#}
    {%- for key in unique_key if key not in tested -%}
        {{ return(false) }}
    {%- endfor -%}
    {{ return(unique_key | length > 0) }}
{%- endmacro %}
