{#
    Calendar helpers. A KPI month is the calendar month (UTC) of the event's timestamp and a
    `month` column holds that month's first day as a DATE.
#}

{# First day of the calendar month of a timestamp or date, as a DATE. #}
{% macro month_start(expression) -%}
    cast({{ dbt.date_trunc('month', expression) }} as date)
{%- endmacro %}

{# The UTC calendar date of a timestamp. #}
{% macro to_date(expression) -%}
    cast({{ expression }} as date)
{%- endmacro %}

{#
    Elapsed hours from one timestamp to another, with fractions (30 minutes is 0.5), not a
    count of hour boundaries crossed.
#}
{% macro hours_between(start_at, end_at) -%}
    cast({{ dbt.datediff(start_at, end_at, 'second') }} as {{ type_double() }}) / 3600
{%- endmacro %}

{#
    Whole months from one month start to another (both DATEs on the first of a month).
#}
{% macro months_between(start_month, end_month) -%}
    {{ dbt.datediff(start_month, end_month, 'month') }}
{%- endmacro %}

{#
    A single-column relation `month_offset` = 0, 1, ..., max_offset - 1 built with dbt's
    portable generate_series (1,200 months = 100 years of history is plenty).
#}
{% macro month_offsets(max_offset=1200) -%}
    select generated_number - 1 as month_offset
    from ({{ dbt.generate_series(max_offset) }}) as numbers
{%- endmacro %}
