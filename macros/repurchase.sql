{#
    "Repurchased within N days": the ids of `events` (a CTE with the id column, customer_id
    and the anchor timestamp) whose customer placed a valid order in (anchor, anchor + N days].
    One definition for every "does X bring customers back" mart; `orders` is a CTE over
    fct_orders with customer_id, ordered_at and is_valid.
#}
{% macro repurchased_within(events, id_column, anchor_column, days=90, orders='orders') -%}
    select distinct {{ events }}.{{ id_column }}
    from {{ events }}
    inner join {{ orders }}
        on {{ events }}.customer_id = {{ orders }}.customer_id
    where
        {{ orders }}.is_valid
        and {{ orders }}.ordered_at > {{ events }}.{{ anchor_column }}
        and {{ orders }}.ordered_at <= {{ dbt.dateadd('day', days, events ~ '.' ~ anchor_column) }}
{%- endmacro %}
