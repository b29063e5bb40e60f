{{ config(materialized=view_or_spark_table()) }}

{#
    One row per message (both directions) with its funnel flags (int_messages_funnel) and what
    its type means (seeds/message_types.csv): purpose, needs_marketing_consent,
    is_marketing_contact. The churn features and the outreach lists read messages here, as of
    their cut-off, through these flags.

    A view: a projection of the large messages table with a 16-row lookup, so `dbt build`
    pays nothing for it.
#}

with

messages as (

    select * from {{ ref('int_messages_funnel') }}

),

message_types as (

    select * from {{ ref('message_types') }}

),

final as (

    select
        messages.message_id,
        messages.customer_id,
        messages.order_id,
        messages.channel,
        messages.direction,
        messages.message_type,
        messages.campaign,
        messages.sent_at,
        messages.sent_month,
        messages.delivered_at,
        messages.opened_at,
        messages.clicked_at,
        messages.unsubscribed_at,
        messages.is_outbound,
        messages.is_delivered,
        messages.is_opened,
        messages.is_clicked,
        messages.is_unsubscribed,
        message_types.purpose as message_purpose,
        coalesce(message_types.needs_marketing_consent, false) as needs_marketing_consent,
        coalesce(message_types.is_marketing_contact, false) as is_marketing_contact
    from messages
    left join message_types
        on messages.message_type = message_types.message_type

)

select * from final
