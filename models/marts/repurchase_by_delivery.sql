with

orders as (

    select * from {{ ref('fct_orders') }}

),

reporting_window as (

    select * from {{ ref('int_reporting_window') }}

),

outcomes as (

    select
        'on_time' as delivery_outcome,
        true as is_delivered_on_time
    union all
    select
        'late' as delivery_outcome,
        false as is_delivered_on_time

),

-- valid delivered orders with a promise whose 90-day window has passed by the end of the data
observable_orders as (

    select
        orders.order_id,
        orders.is_delivered_on_time,
        coalesce(
            orders.next_order_at <= {{ dbt.dateadd('day', 90, 'orders.ordered_at') }}, false
        ) as is_repurchased_90d
    from orders
    cross join reporting_window
    where
        orders.is_valid
        and orders.is_delivered_on_time is not null
        and {{ dbt.dateadd('day', 90, 'orders.ordered_at') }} <= reporting_window.data_end_at

),

per_outcome as (

    select
        is_delivered_on_time,
        count(*) as orders,
        count(case when is_repurchased_90d then 1 end) as repurchased_90d
    from observable_orders
    group by is_delivered_on_time

),

final as (

    select
        outcomes.delivery_outcome,
        coalesce(per_outcome.orders, 0) as orders,
        coalesce(per_outcome.repurchased_90d, 0) as repurchased_90d,
        {{ safe_divide('per_outcome.repurchased_90d', 'per_outcome.orders') }}
            as repurchase_rate_90d
    from outcomes
    left join per_outcome
        on outcomes.is_delivered_on_time = per_outcome.is_delivered_on_time

)

select * from final
