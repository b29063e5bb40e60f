{#
    Arithmetic helpers shared by the KPI models. Each is ANSI SQL or dispatched by adapter,
    so moving the warehouse to another engine is a profile change.
#}

{# The double-precision floating point type: rates and averages are stored as this. #}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'retain')()) }}
{%- endmacro %}

{% macro default__type_double() -%}
    double precision
{%- endmacro %}

{% macro duckdb__type_double() -%}
    double
{%- endmacro %}

{% macro spark__type_double() -%}
    double
{%- endmacro %}

{#
    numerator / denominator as a floating point fraction; NULL when the denominator is 0 or
    NULL (an empty denominator gives NULL, never 0 and never an error).
#}
{% macro safe_divide(numerator, denominator) -%}
    cast({{ numerator }} as {{ type_double() }}) / nullif({{ denominator }}, 0)
{%- endmacro %}

{#
    The median: the 50th percentile with linear interpolation between the two middle values
    (percentile_cont). Ordered-set aggregate syntax differs by engine, hence the dispatch.
#}
{% macro median(expression) -%}
    {{ return(adapter.dispatch('median', 'retain')(expression)) }}
{%- endmacro %}

{% macro default__median(expression) -%}
    percentile_cont(0.5) within group (order by {{ expression }})
{%- endmacro %}

{% macro duckdb__median(expression) -%}
    quantile_cont({{ expression }}, 0.5)
{%- endmacro %}

{% macro spark__median(expression) -%}
    percentile({{ expression }}, 0.5)
{%- endmacro %}
