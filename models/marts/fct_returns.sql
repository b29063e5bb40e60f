{#
    One row per return request, with the customer of its order. The churn features read
    returns here.
#}

with

returns as (

    select * from {{ ref('stg_shop__returns') }}

),

orders as (

    select
        order_id,
        customer_id
    from {{ ref('fct_orders') }}

),

final as (

    select
        returns.return_id,
        returns.order_id,
        orders.customer_id,
        returns.requested_at,
        returns.reason,
        returns.refund_amount,
        returns.refunded_at,
        returns.status
    from returns
    left join orders
        on returns.order_id = orders.order_id

)

select * from final
