{#
    Retention by first purchase: for every product and category bought in customers' first
    purchase (and one `all` row for every first purchase), how many of those customers came
    back within 90 and 180 days, how long the second purchase took and what it was worth.
    A customer whose first purchase held several products counts once under each.
#}

with

orders as (

    select
        customer_id,
        ordered_at,
        is_valid,
        total
    from {{ ref('fct_orders') }}

),

reporting_window as (

    select * from {{ ref('int_reporting_window') }}

),

rules as (

    select * from {{ ref('product_journey_rules') }}

),

-- reads fct_order_lines directly, not through a shared CTE: DuckDB materialises a CTE used
-- more than once, which copied all 3 million lines at 1M customers before the first group-by
purchases as (

    select
        customer_id,
        min(case when purchase_number = 1 then ordered_at end) as first_order_at,
        min(case when purchase_number = 2 then ordered_at end) as second_order_at
    from {{ ref('fct_order_lines') }}
    group by customer_id

),

second_order_values as (

    select
        purchases.customer_id,
        sum(orders.total) as second_order_value
    from purchases
    inner join orders
        on
            purchases.customer_id = orders.customer_id
            and purchases.second_order_at = orders.ordered_at
    where orders.is_valid
    group by purchases.customer_id

),

-- "came back within N days": the shared rule of every repurchase mart (macros/repurchase.sql)
first_purchases as (

    select
        customer_id,
        first_order_at
    from purchases

),

repeat_90d as (

    {{ repurchased_within('first_purchases', 'customer_id', 'first_order_at', 90) }}

),

repeat_180d as (

    {{ repurchased_within('first_purchases', 'customer_id', 'first_order_at', 180) }}

),

customer_journeys as (

    select
        purchases.customer_id,
        purchases.second_order_at is not null as has_second_order,
        {{ dbt.datediff('purchases.first_order_at', 'purchases.second_order_at', 'day') }}
            as days_to_second_order,
        second_order_values.second_order_value,
        {{ dbt.dateadd('day', 90, 'purchases.first_order_at') }}
        <= reporting_window.data_end_at as is_observable_90d,
        {{ dbt.dateadd('day', 180, 'purchases.first_order_at') }}
        <= reporting_window.data_end_at as is_observable_180d,
        repeat_90d.customer_id is not null as is_repeat_90d,
        repeat_180d.customer_id is not null as is_repeat_180d
    from purchases
    cross join reporting_window
    left join second_order_values
        on purchases.customer_id = second_order_values.customer_id
    left join repeat_90d
        on purchases.customer_id = repeat_90d.customer_id
    left join repeat_180d
        on purchases.customer_id = repeat_180d.customer_id

),

first_purchase_keys as (

    select distinct
        customer_id,
        'product' as journey_level,
        product_id as journey_key,
        product_name as journey_name,
        category
    from {{ ref('fct_order_lines') }}
    where purchase_number = 1
    union all
    select distinct
        customer_id,
        'category' as journey_level,
        category as journey_key,
        category as journey_name,
        category
    from {{ ref('fct_order_lines') }}
    where purchase_number = 1
    union all
    select
        customer_id,
        'all' as journey_level,
        'all' as journey_key,
        'All first purchases' as journey_name,
        cast(null as {{ dbt.type_string() }}) as category
    from customer_journeys

),

aggregated as (

    select
        first_purchase_keys.journey_level,
        first_purchase_keys.journey_key,
        max(first_purchase_keys.journey_name) as journey_name,
        max(first_purchase_keys.category) as category,
        count(*) as first_buyers,
        count(case when customer_journeys.is_observable_90d then 1 end) as observable_90d,
        count(
            case when customer_journeys.is_observable_90d and customer_journeys.is_repeat_90d then 1 end
        ) as repeat_90d,
        count(case when customer_journeys.is_observable_180d then 1 end) as observable_180d,
        count(
            case when customer_journeys.is_observable_180d and customer_journeys.is_repeat_180d then 1 end
        ) as repeat_180d,
        count(case when customer_journeys.has_second_order then 1 end) as second_order_customers,
        {{ median('customer_journeys.days_to_second_order') }} as median_days_to_second_order,
        -- an exact sum divided once: Spark's avg of a decimal is a decimal rounded to 6 places
        {{ safe_divide(
            'sum(customer_journeys.second_order_value)', 'count(customer_journeys.second_order_value)'
        ) }} as avg_second_order_value
    from first_purchase_keys
    inner join customer_journeys
        on first_purchase_keys.customer_id = customer_journeys.customer_id
    group by first_purchase_keys.journey_level, first_purchase_keys.journey_key

),

final as (

    select
        aggregated.journey_level,
        aggregated.journey_key,
        aggregated.journey_name,
        aggregated.category,
        aggregated.first_buyers,
        aggregated.observable_90d,
        aggregated.repeat_90d,
        {{ safe_divide('aggregated.repeat_90d', 'aggregated.observable_90d') }} as repeat_rate_90d,
        aggregated.observable_180d,
        aggregated.repeat_180d,
        {{ safe_divide('aggregated.repeat_180d', 'aggregated.observable_180d') }} as repeat_rate_180d,
        aggregated.second_order_customers,
        aggregated.median_days_to_second_order,
        aggregated.avg_second_order_value,
        aggregated.observable_90d >= rules.min_customers as meets_min_support
    from aggregated
    cross join rules

)

select * from final
