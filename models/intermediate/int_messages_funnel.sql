{{ config(materialized='view') }}

{#
    One row per message with monotone funnel flags: a later step implies the earlier ones
    (a click is an open, an open or unsubscribe is a delivery), because tools do not always
    report every step (no delivery receipt for push, opens blocked by privacy proxies).
    Kept as a view: it is a projection of the large messages table, read once per build.
#}

with

messages as (

    select * from {{ ref('stg_messaging__messages') }}

),

final as (

    select
        message_id,
        customer_id,
        order_id,
        channel,
        direction,
        message_type,
        campaign,
        sent_at,
        {{ month_start('sent_at') }} as sent_month,
        delivered_at,
        opened_at,
        clicked_at,
        unsubscribed_at,
        direction = 'outbound' as is_outbound,
        (
            delivered_at is not null
            or opened_at is not null
            or clicked_at is not null
            or unsubscribed_at is not null
        ) as is_delivered,
        (opened_at is not null or clicked_at is not null) as is_opened,
        clicked_at is not null as is_clicked,
        unsubscribed_at is not null as is_unsubscribed,
        _loaded_at
    from messages

)

select * from final
