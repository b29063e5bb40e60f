{{
    config(
        materialized='incremental',
        unique_key=['month', 'channel', 'message_type'],
        incremental_strategy=backfill_strategy('delete+insert'),
        incremental_predicates=backfill_predicates('month', grain='month'),
        on_schema_change='sync_all_columns',
    )
}}

{#
    Incremental by month: a run recomputes only the months in which a message was loaded
    (or changed) since the last run; older months are left as they are.

    A backfill (vars backfill_start/backfill_end, see macros/backfill.sql) also recomputes
    every month the range touches, in full (a month is one row per channel and type).
#}

with

messages as (

    select * from {{ ref('int_messages_funnel') }}
    where is_outbound

),

{% if is_incremental() or is_backfill() %}

    changed_months as (

        {% if is_incremental() %}
            {{ changed_keys(ref('int_messages_funnel'), 'sent_month', where='loaded.is_outbound') }}
        {% endif %}
        {% if is_incremental() and is_backfill() %}
            union
        {% endif %}
        {% if is_backfill() %}
            select distinct range_messages.sent_month
            from {{ ref('int_messages_funnel') }} as range_messages
            where
                range_messages.is_outbound
                and {{ in_backfill_range('range_messages.sent_month', grain='month') }}
        {% endif %}

    ),

    messages_in_scope as (

        {{ rows_with_keys('messages', 'sent_month', 'changed_months') }}

    ),

{% else %}

    messages_in_scope as (

        select * from messages

    ),

{% endif %}

counts as (

    select
        sent_month as month,
        channel,
        message_type,
        count(*) as sent,
        count(case when is_delivered then 1 end) as delivered,
        count(case when is_opened then 1 end) as opened,
        count(case when is_clicked then 1 end) as clicked,
        count(case when is_unsubscribed then 1 end) as unsubscribed,
        max(_loaded_at) as _source_loaded_at
    from messages_in_scope
    group by sent_month, channel, message_type

),

final as (

    select
        month,
        channel,
        message_type,
        sent,
        delivered,
        opened,
        clicked,
        unsubscribed,
        {{ safe_divide('delivered', 'sent') }} as delivery_rate,
        {{ safe_divide('opened', 'delivered') }} as open_rate,
        {{ safe_divide('clicked', 'delivered') }} as click_rate,
        {{ safe_divide('unsubscribed', 'delivered') }} as unsubscribe_rate,
        _source_loaded_at,
        {{ invocation_timestamp() }} as _built_at
    from counts

)

select * from final
