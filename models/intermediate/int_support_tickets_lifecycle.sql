with

tickets as (

    select * from {{ ref('stg_helpdesk__support_tickets') }}

),

-- which ticket types are complaints and which categories are "where is my order":
-- seeds/ticket_types.csv and seeds/ticket_categories.csv
ticket_types as (

    select * from {{ ref('ticket_types') }}

),

ticket_categories as (

    select * from {{ ref('ticket_categories') }}

),

final as (

    select
        tickets.ticket_id,
        tickets.customer_id,
        tickets.order_id,
        tickets.channel,
        tickets.ticket_type,
        tickets.category,
        tickets.priority,
        tickets.status,
        tickets.created_at,
        {{ month_start('tickets.created_at') }} as created_month,
        tickets.first_response_at,
        tickets.resolved_at,
        tickets.agent_replies,
        tickets.reopen_count,
        tickets.satisfaction_score,
        case
            when tickets.ticket_type is not null then coalesce(ticket_types.is_complaint, false)
        end as is_complaint,
        case
            when tickets.category is not null then coalesce(ticket_categories.is_wismo, false)
        end as is_wismo,
        tickets.resolved_at is not null as is_resolved,
        (
            tickets.resolved_at is null
            and coalesce(tickets.status, 'open') not in ('solved', 'closed')
        ) as is_open,
        {{ hours_between('tickets.created_at', 'tickets.first_response_at') }} as hours_to_first_response,
        {{ hours_between('tickets.created_at', 'tickets.resolved_at') }} as hours_to_resolution,
        case
            when tickets.resolved_at is not null
                then coalesce(tickets.agent_replies = 1 and tickets.reopen_count = 0, false)
        end as is_first_contact_resolution
    from tickets
    left join ticket_types
        on tickets.ticket_type = ticket_types.ticket_type
    left join ticket_categories
        on tickets.category = ticket_categories.category

)

select * from final
