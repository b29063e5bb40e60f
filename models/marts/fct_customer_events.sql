{{ config(materialized=view_or_spark_table()) }}

{#
    One row per thing that happened between a customer and the shop, for the Customer 360
    timeline: orders, returns, messages (both directions), support tickets, survey answers
    and reviews. Read one customer at a time (`where customer_id = ?`).

    A view: it only projects and labels the underlying facts, so `dbt build` pays nothing
    for it; the published snapshot materialises it as a table, sorted by customer so that
    reading one customer touches one row group instead of scanning every event
    (pipelines/publish.py, BY_CUSTOMER).
#}

with

orders as (

    select * from {{ ref('fct_orders') }}

),

-- a second import, not a second use of `orders`: DuckDB materialises a CTE used twice, which
-- copied all of fct_orders on every read of this view (a count took 3.3 s instead of 1.0 s)
order_customers as (

    select
        order_id,
        customer_id
    from {{ ref('fct_orders') }}

),

returns as (

    select * from {{ ref('stg_shop__returns') }}

),

messages as (

    select * from {{ ref('int_messages_funnel') }}

),

tickets as (

    select * from {{ ref('fct_support_tickets') }}

),

feedback as (

    select * from {{ ref('fct_feedback') }}

),

order_events as (

    select
        'order:' || order_id as event_id,
        customer_id,
        ordered_at as event_at,
        'order' as event_type,
        sales_channel as channel,
        case
            when not is_valid then 'Cancelled order'
            when customer_order_number = 1 then 'First order'
            else 'Order #' || cast(customer_order_number as {{ dbt.type_string() }})
        end as title,
        case
            when not is_valid then 'cancelled'
            when delivered_at is null then status
            when is_delivered_on_time is null then 'delivered'
            when is_delivered_on_time then 'delivered on time'
            when delivery_delay_days = 1 then 'delivered 1 day late'
            else 'delivered '
                || cast(delivery_delay_days as {{ dbt.type_string() }}) || ' days late'
        end as detail,
        total as amount,
        cast(null as integer) as score,
        order_id
    from orders

),

return_events as (

    select
        'return:' || returns.return_id as event_id,
        order_customers.customer_id,
        returns.requested_at as event_at,
        'return' as event_type,
        cast(null as {{ dbt.type_string() }}) as channel,
        'Return: ' || replace(coalesce(returns.reason, 'no reason given'), '_', ' ') as title,
        coalesce(returns.status, 'requested') as detail,
        returns.refund_amount as amount,
        cast(null as integer) as score,
        returns.order_id
    from returns
    inner join order_customers
        on returns.order_id = order_customers.order_id

),

message_events as (

    select
        'message:' || message_id as event_id,
        customer_id,
        sent_at as event_at,
        'message' as event_type,
        channel,
        replace(message_type, '_', ' ') as title,
        case
            when not is_outbound then 'from the customer'
            when is_unsubscribed then 'unsubscribed'
            when is_clicked then 'clicked'
            when is_opened then 'opened'
            when is_delivered then 'delivered'
            else 'sent'
        end as detail,
        cast(null as decimal(18, 2)) as amount,
        cast(null as integer) as score,
        order_id
    from messages

),

ticket_events as (

    select
        'ticket:' || ticket_id as event_id,
        customer_id,
        created_at as event_at,
        'ticket' as event_type,
        channel,
        ticket_type || ': ' || replace(category, '_', ' ') as title,
        case
            when resolved_at is null then 'unresolved'
            else 'resolved in '
                || cast(cast(round(hours_to_resolution) as integer) as {{ dbt.type_string() }})
                || ' h'
                || case when reopen_count > 0 then ', reopened' else '' end
        end as detail,
        cast(null as decimal(18, 2)) as amount,
        satisfaction_score as score,
        order_id
    from tickets

),

feedback_events as (

    select
        feedback_key as event_id,
        customer_id,
        submitted_at as event_at,
        case when feedback_type = 'review' then 'review' else 'survey' end as event_type,
        cast(null as {{ dbt.type_string() }}) as channel,
        case
            when feedback_type = 'review'
                then 'Review ' || cast(score as {{ dbt.type_string() }}) || '/5'
            else upper(feedback_type) || ' ' || cast(score as {{ dbt.type_string() }})
                || coalesce(' (' || nps_band || ')', '')
        end as title,
        comment as detail,
        cast(null as decimal(18, 2)) as amount,
        score,
        order_id
    from feedback

),

unioned as (

    select * from order_events
    union all
    select * from return_events
    union all
    select * from message_events
    union all
    select * from ticket_events
    union all
    select * from feedback_events

),

-- no ORDER BY here: every query of a sorted view sorts all 27M events (at 1M customers)
-- first, even a count; the published snapshot stores it in customer order instead
final as (

    select * from unioned

)

select * from final
