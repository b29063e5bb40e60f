{#
    The product journey: what customers bought in their second purchase, by what they bought
    in their first, for products and for categories. One row per (level, from, to) with the
    customers behind it, the share of the `from` buyers' second purchases that held `to`, and
    the lift over how often any second purchase holds `to`.
#}

with

rules as (

    select * from {{ ref('product_journey_rules') }}

),

-- reads fct_order_lines directly, not through a shared CTE: DuckDB materialises a CTE used
-- more than once, which copied all 3 million lines at 1M customers before the first group-by
purchase_keys as (

    select distinct
        customer_id,
        purchase_number,
        'product' as journey_level,
        product_id as journey_key,
        product_name as journey_name
    from {{ ref('fct_order_lines') }}
    where purchase_number <= 2
    union all
    select distinct
        customer_id,
        purchase_number,
        'category' as journey_level,
        category as journey_key,
        category as journey_name
    from {{ ref('fct_order_lines') }}
    where purchase_number <= 2

),

first_keys as (

    select * from purchase_keys
    where purchase_number = 1

),

second_keys as (

    select * from purchase_keys
    where purchase_number = 2

),

second_buyers as (

    select count(distinct customer_id) as customers
    from second_keys

),

-- first-purchase buyers of each key who made a second purchase
from_totals as (

    select
        first_keys.journey_level,
        first_keys.journey_key,
        count(*) as from_customers
    from first_keys
    where first_keys.customer_id in (select second_keys.customer_id from second_keys)
    group by first_keys.journey_level, first_keys.journey_key

),

-- how many second purchases hold each key, whatever came first
to_totals as (

    select
        journey_level,
        journey_key,
        count(*) as to_customers
    from second_keys
    group by journey_level, journey_key

),

pairs as (

    select
        first_keys.journey_level,
        first_keys.journey_key as from_key,
        max(first_keys.journey_name) as from_name,
        second_keys.journey_key as to_key,
        max(second_keys.journey_name) as to_name,
        count(*) as customers
    from first_keys
    inner join second_keys
        on
            first_keys.customer_id = second_keys.customer_id
            and first_keys.journey_level = second_keys.journey_level
    group by first_keys.journey_level, first_keys.journey_key, second_keys.journey_key

),

final as (

    select
        pairs.journey_level,
        pairs.from_key,
        pairs.from_name,
        pairs.to_key,
        pairs.to_name,
        pairs.from_key = pairs.to_key as is_same,
        pairs.customers,
        from_totals.from_customers,
        {{ safe_divide('pairs.customers', 'from_totals.from_customers') }} as share,
        {{ safe_divide('to_totals.to_customers', 'second_buyers.customers') }} as baseline_share,
        {{ safe_divide('pairs.customers', 'from_totals.from_customers') }}
        / nullif({{ safe_divide('to_totals.to_customers', 'second_buyers.customers') }}, 0) as lift,
        row_number() over (
            partition by pairs.journey_level, pairs.from_key
            order by pairs.customers desc, pairs.to_key asc
        ) as rank_in_from,
        pairs.customers >= rules.min_customers as meets_min_support
    from pairs
    inner join from_totals
        on
            pairs.journey_level = from_totals.journey_level
            and pairs.from_key = from_totals.journey_key
    inner join to_totals
        on
            pairs.journey_level = to_totals.journey_level
            and pairs.to_key = to_totals.journey_key
    cross join second_buyers
    cross join rules

)

select * from final
