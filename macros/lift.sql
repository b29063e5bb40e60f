{#
    Statistics of the outreach lift (models/marts/outreach_lift.sql), written once here.

    SQL has no normal distribution function, so `normal_cdf` is the Zelen & Severo
    approximation (Abramowitz & Stegun 26.2.17, absolute error below 7.5e-8); it is checked
    against scipy.stats.norm in tests/test_lift.py. The z values are constants, not computed.
#}

{# z of a two-sided 95% interval (and of a 5% two-sided test). #}
{% macro lift_z95() -%} 1.959963984540054 {%- endmacro %}

{# z of 80% power: the minimum detectable effect is (z95 + z80) standard errors. #}
{% macro lift_z80() -%} 0.8416212335729143 {%- endmacro %}

{# Standard normal cumulative distribution function of `x` (any numeric SQL expression). #}
{% macro normal_cdf(x) -%}
    (case
        when ({{ x }}) is null then null
        else (
            case when ({{ x }}) >= 0 then 1 - {{ _normal_upper_tail('abs(' ~ x ~ ')') }}
            else {{ _normal_upper_tail('abs(' ~ x ~ ')') }} end
        )
    end)
{%- endmacro %}

{% macro _normal_upper_tail(a) -%}
    (exp(-({{ a }}) * ({{ a }}) / 2) / sqrt(2 * pi())
        * (0.319381530 * (1 / (1 + 0.2316419 * ({{ a }})))
           - 0.356563782 * power(1 / (1 + 0.2316419 * ({{ a }})), 2)
           + 1.781477937 * power(1 / (1 + 0.2316419 * ({{ a }})), 3)
           - 1.821255978 * power(1 / (1 + 0.2316419 * ({{ a }})), 4)
           + 1.330274429 * power(1 / (1 + 0.2316419 * ({{ a }})), 5)))
{%- endmacro %}

{#
    Wilson score interval of a proportion: `bound` is 'lower' or 'upper'; NULL when n is 0.
    (Wilson 1927; the building block of Newcombe's interval for a difference.)
#}
{% macro wilson_bound(successes, n, bound) -%}
    {%- set z = lift_z95() -%}
    {%- set p = safe_divide(successes, n) -%}
    (({{ p }} + {{ z }} * {{ z }} / (2 * {{ n }}))
        {{ '-' if bound == 'lower' else '+' }} {{ z }} * sqrt({{ p }} * (1 - {{ p }}) / {{ n }}
            + {{ z }} * {{ z }} / (4 * {{ n }} * {{ n }})))
        / (1 + {{ z }} * {{ z }} / nullif({{ n }}, 0))
{%- endmacro %}
