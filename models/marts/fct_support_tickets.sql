with

tickets as (

    select * from {{ ref('int_support_tickets_lifecycle') }}

),

complaint_sequence as (

    select
        ticket_id,
        row_number() over (
            partition by customer_id order by created_at, ticket_id
        ) as customer_complaint_number
    from tickets
    where is_complaint

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
        tickets.created_month,
        tickets.first_response_at,
        tickets.resolved_at,
        tickets.agent_replies,
        tickets.reopen_count,
        tickets.satisfaction_score,
        tickets.is_complaint,
        tickets.is_wismo,
        tickets.is_resolved,
        tickets.is_open,
        tickets.hours_to_first_response,
        tickets.hours_to_resolution,
        tickets.is_first_contact_resolution,
        complaint_sequence.customer_complaint_number
    from tickets
    left join complaint_sequence
        on tickets.ticket_id = complaint_sequence.ticket_id

)

select * from final
