{#
    How incremental models pick the rows a run rebuilds: every row of the keys (customers,
    orders, months...) with a row loaded since the last run. One definition for every model
    that rebuilds "whole keys".

    changed_keys(relation, key, where): the distinct `key` values of `relation` with a row
    newer (`_loaded_at`) than this model's `_source_loaded_at`, optionally only rows matching
    `where` (a condition on the alias `loaded`). Pass the ref again, not a CTE of it: DuckDB
    materialises a CTE used twice, which would copy every row of a large table.

    rows_with_keys(rows, key, keys): the rows of `rows` (a CTE) whose `key` is in `keys` (a CTE
    of changed keys, one column named `key`).

    rows_in_scope(name, rows, relation, key): the CTE `name`, with a trailing comma: on an
    incremental run the rows of `rows` whose `key` changed in `relation` (through a CTE
    `changed_keys`), else every row of `rows`.
#}

{% macro changed_keys(relation, key, where=none) -%}
    select distinct loaded.{{ key }}
    from {{ relation }} as loaded
    where
        {% if where %}{{ where }} and {% endif -%}
        {{ is_newer_than_this('loaded._loaded_at', '_source_loaded_at') }}
{%- endmacro %}

{% macro rows_with_keys(rows, key, keys) -%}
    select *
    from {{ rows }}
    where {{ key }} in (select {{ keys }}.{{ key }} from {{ keys }})
{%- endmacro %}

{% macro rows_in_scope(name, rows, relation, key) -%}
    {% if is_incremental() %}
        changed_keys as (
            {{ changed_keys(relation, key) }}
        ),

        {{ name }} as (
            {{ rows_with_keys(rows, key, 'changed_keys') }}
        ),
    {% else %}
        {{ name }} as (
            select * from {{ rows }}
        ),
    {% endif %}
{%- endmacro %}
