with

tickets as (

    select * from {{ ref('fct_support_tickets') }}

),

orders as (

    select * from {{ ref('fct_orders') }}

),

reporting_window as (

    select * from {{ ref('int_reporting_window') }}

),

outcomes as (

    select
        'resolved_within_48h' as outcome,
        1 as outcome_order
    union all
    select
        'resolved_later' as outcome,
        2 as outcome_order
    union all
    select
        'unresolved' as outcome,
        3 as outcome_order

),

first_complaints as (

    select
        ticket_id,
        customer_id,
        case
            when resolved_at is null then 'unresolved'
            when resolved_at <= {{ dbt.dateadd('hour', 48, 'created_at') }}
                then 'resolved_within_48h'
            else 'resolved_later'
        end as outcome,
        coalesce(resolved_at, created_at) as anchor_at
    from tickets
    where customer_complaint_number = 1

),

-- only complaints whose 90-day window has fully passed by the latest order in the data
observable_complaints as (

    select first_complaints.*
    from first_complaints
    cross join reporting_window
    where {{ dbt.dateadd('day', 90, 'first_complaints.anchor_at') }} <= reporting_window.data_end_at

),

repurchases as (

    {{ repurchased_within('observable_complaints', 'ticket_id', 'anchor_at') }}

),

per_outcome as (

    select
        observable_complaints.outcome,
        count(*) as customers,
        count(repurchases.ticket_id) as repurchased_90d
    from observable_complaints
    left join repurchases
        on observable_complaints.ticket_id = repurchases.ticket_id
    group by observable_complaints.outcome

),

final as (

    select
        outcomes.outcome,
        coalesce(per_outcome.customers, 0) as customers,
        coalesce(per_outcome.repurchased_90d, 0) as repurchased_90d,
        {{ safe_divide('per_outcome.repurchased_90d', 'per_outcome.customers') }}
            as repurchase_rate_90d,
        outcomes.outcome_order
    from outcomes
    left join per_outcome
        on outcomes.outcome = per_outcome.outcome

)

select * from final
