with

orders as (

    select * from {{ ref('fct_orders') }}

),

-- which kinds of outbound message were sent about each order
order_message_types as (

    select * from {{ ref('int_order_message_types') }}

),

reporting_window as (

    select * from {{ ref('int_reporting_window') }}

),

-- valid orders whose 90-day window has passed by the latest order in the data
observable_orders as (

    select
        orders.order_id,
        coalesce(
            orders.next_order_at <= {{ dbt.dateadd('day', 90, 'orders.ordered_at') }}, false
        ) as is_repurchased_90d
    from orders
    cross join reporting_window
    where
        orders.is_valid
        and {{ dbt.dateadd('day', 90, 'orders.ordered_at') }} <= reporting_window.data_end_at

),

totals as (

    select
        count(*) as orders,
        count(case when is_repurchased_90d then 1 end) as repurchased_90d
    from observable_orders

),

sent as (

    select
        order_message_types.message_type,
        count(*) as orders,
        count(case when observable_orders.is_repurchased_90d then 1 end) as repurchased_90d
    from order_message_types
    inner join observable_orders
        on order_message_types.order_id = observable_orders.order_id
    group by order_message_types.message_type

),

exposures as (

    select
        sent.message_type,
        'sent' as exposure,
        sent.orders,
        sent.repurchased_90d
    from sent
    union all
    select
        sent.message_type,
        'not_sent' as exposure,
        totals.orders - sent.orders as orders,
        totals.repurchased_90d - sent.repurchased_90d as repurchased_90d
    from sent
    cross join totals

),

final as (

    select
        message_type,
        exposure,
        orders,
        repurchased_90d,
        {{ safe_divide('repurchased_90d', 'orders') }} as repurchase_rate_90d
    from exposures

)

select * from final
