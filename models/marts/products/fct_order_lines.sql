{#- On Spark, whose Parquet tables take no delete (the post-hooks), the model is rebuilt whole. -#}
{{
    config(
        materialized=('table' if target.type == 'spark' else 'incremental'),
        unique_key='customer_id',
        incremental_strategy='delete+insert',
        on_schema_change='sync_all_columns',
        full_refresh=(true if is_backfill() else none),
        post_hook=[
            """{% if is_incremental() %}
                delete from {{ this }}
                where order_id in (select order_id from {{ ref('fct_orders') }} where not is_valid)
            {% endif %}""",
            """{% if is_incremental() %}
                delete from {{ this }}
                where
                    _built_at < {{ invocation_timestamp() }}
                    and order_id in (
                        select order_id from {{ this }} where _built_at = {{ invocation_timestamp() }}
                    )
            {% endif %}""",
        ],
    )
}}

{#
    One row per line of a valid order, with the order's customer, time and place in the
    customer's purchase sequence: the base of every product mart and of the next-product
    recommender. purchase_number counts distinct order instants (orders placed at the same
    instant are one purchase), so purchase 2 is the first purchase strictly after the first.

    Incremental by customer, like fct_orders: a run rebuilds, from their whole order history,
    the lines of customers with an order (or a return, which fct_orders stamps on the order)
    or an order line loaded since the last run; every other customer's rows are left as they
    are. Two post-hooks drop what replacing customers leaves behind: the lines of orders
    cancelled since (a customer whose only valid orders were cancelled has no line left to
    replace theirs), and older rows of an order rewritten by this run (an order re-sent under
    another customer). A backfill (vars backfill_start/backfill_end) rebuilds the whole table.
#}

{#- a table built before this model became incremental has no watermark: rebuild every customer -#}
{%- set scoped = is_incremental() and has_watermark() %}

with

order_items as (

    select * from {{ ref('stg_shop__order_items') }}

),

orders as (

    select * from {{ ref('fct_orders') }}

),

{% if scoped %}

    changed_customers as (

        {{ changed_keys(ref('fct_orders'), 'customer_id', loaded_at='_source_loaded_at') }}
        union
        select orders_of_lines.customer_id
        from {{ ref('stg_shop__order_items') }} as loaded
        inner join {{ ref('fct_orders') }} as orders_of_lines on loaded.order_id = orders_of_lines.order_id
        where {{ is_newer_than_this('loaded._loaded_at', '_source_loaded_at') }}

    ),

{% endif %}

orders_in_scope as (

    {% if scoped -%}
        {{ rows_with_keys('orders', 'customer_id', 'changed_customers') }}
    {%- else -%}
        select * from orders
    {%- endif %}

),

valid_orders as (

    select
        order_id,
        customer_id,
        ordered_at,
        has_return,
        _source_loaded_at,
        dense_rank() over (partition by customer_id order by ordered_at) as purchase_number
    from orders_in_scope
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
        valid_orders.has_return as is_returned,
        -- latest load among the order (with its returns) and the line: the incremental watermark
        greatest(valid_orders._source_loaded_at, order_items._loaded_at) as _source_loaded_at,
        {{ invocation_timestamp() }} as _built_at
    from order_items
    inner join valid_orders
        on order_items.order_id = valid_orders.order_id

)

select * from final
