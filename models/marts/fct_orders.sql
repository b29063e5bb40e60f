{{
    config(
        materialized='incremental',
        unique_key='order_id',
        incremental_strategy=backfill_strategy('delete+insert'),
        incremental_predicates=backfill_predicates('ordered_at'),
        on_schema_change='sync_all_columns',
    )
}}

{#
    Incremental by customer: a run rebuilds only the orders of customers with an order or a
    return loaded since the last run (their sequence numbers and gaps may change); every
    other customer's rows are left as they are. `dbt build --full-refresh` rebuilds all.

    A backfill (vars backfill_start/backfill_end, see macros/backfill.sql) also rewrites the
    orders placed in the range: sequence numbers and gaps are computed over the whole order
    history of their customers, but only the range's orders are written, so a later order
    outside the range keeps its row even if its number would now differ (a full refresh
    renumbers everything).
#}

with

orders as (

    select * from {{ ref('stg_shop__orders') }}

),

order_returns as (

    select * from {{ ref('int_order_returns') }}

),

{% if is_incremental() %}

    changed_customers as (

        select orders.customer_id
        from orders
        where {{ is_newer_than_this('orders._loaded_at', '_source_loaded_at') }}
        union
        select orders.customer_id
        from order_returns
        inner join orders on order_returns.order_id = orders.order_id
        where {{ is_newer_than_this('order_returns._loaded_at', '_source_loaded_at') }}

    ),

{% endif %}

{% if is_backfill() %}

    -- orders placed in the range, or kept here in the range (their date may have moved out)
    backfill_orders as (

        select orders.order_id
        from orders
        where {{ in_backfill_range('orders.ordered_at') }}
        {% if is_incremental() %}
            union
            select kept.order_id
            from {{ this }} as kept
            where {{ in_backfill_range('kept.ordered_at') }}
        {% endif %}

    ),

    -- their customers' whole history, and the customers an incremental run would rebuild
    customers_in_scope as (

        select orders.customer_id
        from orders
        where orders.order_id in (select backfill_orders.order_id from backfill_orders)
        {% if is_incremental() %}
            union
            select changed_customers.customer_id
            from changed_customers
        {% endif %}

    ),

    orders_in_scope as (

        {{ rows_with_keys('orders', 'customer_id', 'customers_in_scope') }}

    ),

{% elif is_incremental() %}

    orders_in_scope as (

        {{ rows_with_keys('orders', 'customer_id', 'changed_customers') }}

    ),

{% else %}

    orders_in_scope as (

        select * from orders

    ),

{% endif %}

valid_orders as (

    select
        order_id,
        customer_id,
        ordered_at
    from orders_in_scope
    where status <> 'cancelled'

),

sequenced as (

    select
        order_id,
        row_number() over (
            partition by customer_id order by ordered_at, order_id
        ) as customer_order_number,
        lag(ordered_at) over (
            partition by customer_id order by ordered_at, order_id
        ) as previous_order_at
    from valid_orders

),

-- the next valid order placed strictly later (orders at the same instant are not "next")
order_instants as (

    select distinct
        customer_id,
        ordered_at
    from valid_orders

),

next_instants as (

    select
        customer_id,
        ordered_at,
        lead(ordered_at) over (partition by customer_id order by ordered_at) as next_order_at
    from order_instants

),

final as (

    select
        orders_in_scope.order_id,
        orders_in_scope.customer_id,
        orders_in_scope.ordered_at,
        {{ to_date('orders_in_scope.ordered_at') }} as order_date,
        {{ month_start('orders_in_scope.ordered_at') }} as order_month,
        orders_in_scope.status,
        orders_in_scope.status <> 'cancelled' as is_valid,
        orders_in_scope.currency,
        orders_in_scope.subtotal,
        orders_in_scope.discount,
        orders_in_scope.shipping,
        orders_in_scope.tax,
        orders_in_scope.total,
        orders_in_scope.sales_channel,
        orders_in_scope.discount_code,
        coalesce(order_returns.refund_amount, 0) as refund_amount,
        sequenced.customer_order_number,
        coalesce(sequenced.customer_order_number > 1, false) as is_repeat_order,
        sequenced.previous_order_at,
        {{ dbt.datediff('sequenced.previous_order_at', 'orders_in_scope.ordered_at', 'day') }}
            as days_since_previous_order,
        next_instants.next_order_at,
        orders_in_scope.promised_delivery_date,
        orders_in_scope.shipped_at,
        orders_in_scope.delivered_at,
        {{ month_start('orders_in_scope.delivered_at') }} as delivered_month,
        orders_in_scope.carrier,
        {{ to_date('orders_in_scope.delivered_at') }}
        <= orders_in_scope.promised_delivery_date as is_delivered_on_time,
        {{ dbt.datediff(
            'orders_in_scope.promised_delivery_date',
            to_date('orders_in_scope.delivered_at'),
            'day'
        ) }} as delivery_delay_days,
        coalesce(order_returns.has_return, false) as has_return,
        coalesce(order_returns.return_requests, 0) as return_requests,
        -- latest load among the order and its returns: the incremental watermark
        case
            when order_returns._loaded_at > orders_in_scope._loaded_at
                then order_returns._loaded_at
            else orders_in_scope._loaded_at
        end as _source_loaded_at,
        {{ invocation_timestamp() }} as _built_at
    from orders_in_scope
    left join sequenced
        on orders_in_scope.order_id = sequenced.order_id
    left join next_instants
        on
            orders_in_scope.customer_id = next_instants.customer_id
            and orders_in_scope.ordered_at = next_instants.ordered_at
            and orders_in_scope.status <> 'cancelled'
    left join order_returns
        on orders_in_scope.order_id = order_returns.order_id

)

select * from final
{% if is_backfill() %}
    -- write the range's orders (and what an incremental run would write), nothing else
    where
        order_id in (select backfill_orders.order_id from backfill_orders)
        {% if is_incremental() %}
            or customer_id in (select changed_customers.customer_id from changed_customers)
        {% endif %}
{% endif %}
