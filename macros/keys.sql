{#
    The order_id of an order row that arrived without one (a plain transaction log of
    customer, date and amount). It is the md5 of
        customer_id | ordered_at | total | _source_file | _source_row
    with each value cast to text (on DuckDB: '2024-01-31 10:00:00' and '19.90'), so it is
    deterministic: loading the same file again gives the same ids and the versions dedupe,
    while two identical purchases on different rows stay two orders.
#}
{% macro transaction_order_id() -%}
    {{ dbt.hash(
        "trim(customer_id) || '|' || cast(ordered_at as " ~ dbt.type_string() ~ ")"
        ~ " || '|' || cast(total as " ~ dbt.type_string() ~ ")"
        ~ " || '|' || _source_file || '|' || cast(_source_row as " ~ dbt.type_string() ~ ")"
    ) }}
{%- endmacro %}

{#
    The build time of the current dbt invocation, as a TIMESTAMP. Incremental models stamp it
    on the rows they (re)write, so a row's `_built_at` shows that history was left alone.
#}
{% macro invocation_timestamp() -%}
    cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S") }}' as timestamp)
{%- endmacro %}

{#
    The incremental filter: rows whose `column` is greater than the greatest value already in
    this model. When the model is empty every row qualifies, so a first load after an empty
    build is still picked up. Works for any ordered type (load ids, timestamps).
#}
{% macro is_newer_than_this(column, this_column=none) -%}
    {%- set this_column = this_column or column -%}
    (
        {{ column }} > (select max({{ this_column }}) from {{ this }})
        or (select max({{ this_column }}) from {{ this }}) is null
    )
{%- endmacro %}

{#
    Rank of each version of a key, 1 = the version staging keeps. The rule for every source:
    the highest `updated_at` (for sources that have one; a missing value ranks last), then the
    latest load (`_load_id`), then the last row of that file (`_source_row`).
#}
{% macro latest_version_rank(key_columns, updated_at=none) -%}
    row_number() over (
        partition by {{ key_columns }}
        order by {% if updated_at %}{{ updated_at }} desc nulls last, {% endif %}_load_id desc, _source_row desc
    )
{%- endmacro %}
