{#
    The product-journey rules, defined once. The journey marts, the product dimension and
    `product_journey_rules` (which the recommender and the dashboard read) take them from here.

    journey_min_customers: a retention cell or a transition counts as a finding only with at
    least this many customers behind it (smaller cells are shown greyed out or not at all).
    Override with the dbt var `journey_min_customers`.

    consumable_min_rebuy_rate: a product is a consumable, re-bought when used up, when at
    least this share of its buyers who ordered again bought it again in a later order (and
    at least journey_min_customers such buyers stand behind the rate). Consumables may be
    recommended to a customer who bought them before; other products never are.
#}

{% macro journey_min_customers() -%}
    {{ var('journey_min_customers', 30) }}
{%- endmacro %}

{% macro consumable_min_rebuy_rate() -%}
    {{ var('consumable_min_rebuy_rate', 0.4) }}
{%- endmacro %}
