{{
    config(
        materialized='incremental',
        unique_key='order_id',
        incremental_strategy='delete+insert',
        on_schema_change='sync_all_columns',
        full_refresh=(true if is_backfill() else none),
    )
}}

{#
    One row per order and kind of outbound message sent about it (message_type).
    repurchase_by_message_exposure reads this instead of every message.

    Incremental by order: a run recomputes, from all their messages, the orders with a
    message loaded since the last run (unique_key order_id: all the order's rows are
    replaced, so a type no longer sent disappears); every other row is left as it is. A
    backfill (vars backfill_start/backfill_end) rebuilds the whole table.
#}

with

messages as (

    select * from {{ ref('int_messages_funnel') }}
    where order_id is not null

),

{{ rows_in_scope('messages_in_scope', 'messages', ref('int_messages_funnel'), 'order_id') }}

final as (

    select
        order_id,
        message_type,
        max(_loaded_at) as _source_loaded_at,
        {{ invocation_timestamp() }} as _built_at
    from messages_in_scope
    where is_outbound
    group by order_id, message_type

)

select * from final
