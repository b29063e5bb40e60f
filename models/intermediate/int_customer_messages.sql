{{
    config(
        materialized='incremental',
        unique_key='customer_id',
        incremental_strategy='delete+insert',
        on_schema_change='sync_all_columns',
        full_refresh=(true if is_backfill() else none),
    )
}}

{#
    One row per customer with at least one message (either direction): the latest outbound
    message. dim_customers reads this instead of every message.

    Incremental by customer: a run recomputes, from all their messages, the customers with a
    message loaded since the last run; every other row is left as it is. A backfill (vars
    backfill_start/backfill_end) rebuilds the whole table.
#}

with

messages as (

    select * from {{ ref('int_messages_funnel') }}

),

{{ rows_in_scope('messages_in_scope', 'messages', ref('int_messages_funnel'), 'customer_id') }}

final as (

    select
        customer_id,
        max(case when is_outbound then sent_at end) as last_outbound_message_at,
        max(_loaded_at) as _source_loaded_at,
        {{ invocation_timestamp() }} as _built_at
    from messages_in_scope
    group by customer_id

)

select * from final
