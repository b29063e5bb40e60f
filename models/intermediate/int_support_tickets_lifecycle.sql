with

tickets as (

    select * from {{ ref('stg_helpdesk__support_tickets') }}

),

final as (

    select
        ticket_id,
        customer_id,
        order_id,
        channel,
        ticket_type,
        category,
        priority,
        status,
        created_at,
        {{ month_start('created_at') }} as created_month,
        first_response_at,
        resolved_at,
        agent_replies,
        reopen_count,
        satisfaction_score,
        ticket_type = 'complaint' as is_complaint,
        category = 'wismo' as is_wismo,
        resolved_at is not null as is_resolved,
        (
            resolved_at is null
            and coalesce(status, 'open') not in ('solved', 'closed')
        ) as is_open,
        {{ hours_between('created_at', 'first_response_at') }} as hours_to_first_response,
        {{ hours_between('created_at', 'resolved_at') }} as hours_to_resolution,
        case
            when resolved_at is not null
                then coalesce(agent_replies = 1 and reopen_count = 0, false)
        end as is_first_contact_resolution
    from tickets

)

select * from final
