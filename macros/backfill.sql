{#
    Backfills: rebuild a past date range of the incremental models and leave every other
    period as it is.

        dbt build --exclude-resource-type unit_test \
            --vars '{backfill_start: "2024-01-01", backfill_end: "2024-03-31"}'

    With both vars set (dates, both ends included) each incremental model rewrites exactly
    the rows whose event date falls in the range, computed from all the data there is (not
    only the loads since the last run), with the `replace_range` strategy below: delete the
    range, insert the rebuilt rows. Rows outside the range stay as they are. Loads that
    arrived since the last run are still taken in, as any incremental run would take them;
    a backfill that skipped them would move the incremental watermark past them for good.
    Without the vars nothing changes. `retain backfill --start --end` sets them (and leaves
    the unit tests out: the vars would apply to their fixed rows too). docs/architecture.md,
    section Backfill, has the whole story.
#}

{#
    The backfill range as a (start, end) pair of 'YYYY-MM-DD' strings, or none when no
    backfill is asked for. Checked when dbt executes (not while parsing, when the lint
    stand-ins see placeholder values): both vars set, ISO dates, start <= end, and no
    --full-refresh (which rebuilds everything, so a range makes no sense with it).
#}
{% macro backfill_range() -%}
    {%- set start = var('backfill_start', none) -%}
    {%- set end = var('backfill_end', none) -%}
    {#- YAML vars turn an unquoted 2024-01-01 into a date: compare as text -#}
    {%- set start = none if start is none or (start | string | trim) == '' else (start | string | trim) -%}
    {%- set end = none if end is none or (end | string | trim) == '' else (end | string | trim) -%}
    {%- if start is none and end is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if execute -%}
        {%- if start is none or end is none -%}
            {{ exceptions.raise_compiler_error(
                "a backfill needs both backfill_start and backfill_end (got start="
                ~ start ~ ", end=" ~ end ~ ")"
            ) }}
        {%- endif -%}
        {%- for value in [start, end] -%}
            {%- if not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}', value) -%}
                {{ exceptions.raise_compiler_error(
                    "backfill_start and backfill_end must be dates as YYYY-MM-DD, got '" ~ value ~ "'"
                ) }}
            {%- endif -%}
        {%- endfor -%}
        {%- if start > end -%}
            {{ exceptions.raise_compiler_error(
                "backfill_start (" ~ start ~ ") is after backfill_end (" ~ end ~ ")"
            ) }}
        {%- endif -%}
        {%- if flags.FULL_REFRESH -%}
            {{ exceptions.raise_compiler_error(
                "--full-refresh rebuilds everything: do not combine it with backfill_start/backfill_end"
            ) }}
        {%- endif -%}
    {%- endif -%}
    {{ return((start, end)) }}
{%- endmacro %}

{# True when this invocation is a backfill (both vars set). #}
{% macro is_backfill() -%}
    {{ return(backfill_range() is not none) }}
{%- endmacro %}

{#
    SQL predicate: the UTC calendar date of `expression` lies in the backfill range. With
    grain='month' the range widens to whole months (from the first day of the start's
    month), for models keyed by month: a month the range touches is recomputed in full.
#}
{% macro in_backfill_range(expression, grain='day') -%}
    {%- set bounds = backfill_range() -%}
    {%- set start = bounds[0][:7] ~ '-01' if grain == 'month' else bounds[0] -%}
    {{ to_date(expression) }} between cast('{{ start }}' as date) and cast('{{ bounds[1] }}' as date)
{%- endmacro %}

{#
    For an incremental model's config: `replace_range` in a backfill, else `default`.
        incremental_strategy=backfill_strategy('delete+insert')
#}
{% macro backfill_strategy(default) -%}
    {{ return('replace_range' if is_backfill() else default) }}
{%- endmacro %}

{#
    For an incremental model's config: the range the `replace_range` strategy deletes, as
    incremental predicates on the model's event column (none outside a backfill).
        incremental_predicates=backfill_predicates('ordered_at')
#}
{% macro backfill_predicates(expression, grain='day') -%}
    {{ return([in_backfill_range(expression, grain) | trim] if is_backfill() else none) }}
{%- endmacro %}

{#
    Custom incremental strategy `replace_range` (dbt calls get_incremental_<strategy>_sql):
    delete the target rows that match the incremental predicates (the range) or whose
    unique key the new rows carry, then insert the new rows. delete+insert deletes only
    matching keys, which would keep a row whose source is gone (an erased customer's order,
    a month with no messages left); this empties the whole range first. The key match also
    replaces the old row of a record whose date moved into the range, so keys stay unique.
#}
{% macro get_incremental_replace_range_sql(arg_dict) -%}
    {{ return(adapter.dispatch('get_incremental_replace_range_sql', 'retain')(arg_dict)) }}
{%- endmacro %}

{% macro default__get_incremental_replace_range_sql(arg_dict) -%}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set unique_key = arg_dict['unique_key'] -%}
    {%- set predicates = arg_dict['incremental_predicates'] or [] -%}
    {%- set predicates = [predicates] if predicates is string else predicates -%}
    {%- if not predicates or not unique_key -%}
        {{ exceptions.raise_compiler_error(
            "the replace_range strategy needs incremental_predicates (the range) and a unique_key"
        ) }}
    {%- endif -%}
    {%- set keys = [unique_key] if unique_key is string else unique_key -%}
    {%- set dest_cols_csv = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ target }} as replaced
    where
        ({{ predicates | join(') and (') }})
        or exists (
            select 1
            from {{ source }} as incoming
            where
                {%- for key in keys %}
                {{ 'and ' if not loop.first }}incoming.{{ key }} = replaced.{{ key }}
                {%- endfor %}
        );

    insert into {{ target }} ({{ dest_cols_csv }})
    select {{ dest_cols_csv }}
    from {{ source }}
{%- endmacro %}
