{#
    One row per line of a valid order, with the order's customer, time and place in the
    customer's purchase sequence: the base of every product mart and of the next-product
    recommender. purchase_number counts distinct order instants (orders placed at the same
    instant are one purchase), so purchase 2 is the first purchase strictly after the first.
#}

with

order_items as (

    select * from {{ ref('stg_shop__order_items') }}

),

orders as (

    select * from {{ ref('fct_orders') }}

),

valid_orders as (

    select
        order_id,
        customer_id,
        ordered_at,
        has_return,
        dense_rank() over (partition by customer_id order by ordered_at) as purchase_number
    from orders
    where is_valid

),

final as (

    select
        order_items.order_id,
        order_items.line_number,
        valid_orders.customer_id,
        valid_orders.ordered_at,
        valid_orders.purchase_number,
        order_items.product_id,
        coalesce(order_items.product_name, order_items.product_id) as product_name,
        coalesce(order_items.category, 'unknown') as category,
        order_items.quantity,
        order_items.line_amount,
        valid_orders.has_return as is_returned
    from order_items
    inner join valid_orders
        on order_items.order_id = valid_orders.order_id

)

select * from final
