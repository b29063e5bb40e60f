{#
    None of the listed columns holds a NULL: dbt's `not_null` for several columns in one query.

    One scan of the model instead of one query (and one dbt node, one Dagster check) per
    column. Fails with a row per column that holds NULLs, naming it, and counts the NULL
    values, as that many `not_null` tests together would.
#}
{% test not_null_columns(model, columns) %}
{{ config(fail_calc='coalesce(sum(null_values), 0)') }}
with counts as (
    select
        {%- for column in columns %}
        count(*) - count({{ column }}) as {{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ model }}
)
{% for column in columns -%}
select '{{ column }}' as column_name, {{ column }} as null_values from counts where {{ column }} > 0
{% if not loop.last %}union all
{% endif -%}
{% endfor %}
{% endtest %}
