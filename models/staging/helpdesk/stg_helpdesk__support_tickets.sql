with

source as (

    select * from {{ source('helpdesk', 'support_tickets') }}

),

-- every row with the retain customer id its customer key resolves to (macros/identity.sql)
identified as (

    {{ with_identity('source') }}

),

renamed as (

    select
        trim(ticket_id) as ticket_id,
        {{ resolved_customer_id('customer_id') }} as customer_id,
        nullif(trim(order_id), '') as order_id,
        nullif(lower(trim(channel)), '') as channel,
        lower(trim(ticket_type)) as ticket_type,
        lower(trim(category)) as category,
        nullif(lower(trim(priority)), '') as priority,
        nullif(lower(trim(status)), '') as status,
        cast(created_at as timestamp) as created_at,
        cast(first_response_at as timestamp) as first_response_at,
        cast(resolved_at as timestamp) as resolved_at,
        agent_replies,
        reopen_count,
        satisfaction_score,
        cast(updated_at as timestamp) as updated_at,
        _load_id,
        _loaded_at,
        _source_file,
        _source_row
    from identified

),

versioned as (

    select
        *,
        {{ latest_version_rank('ticket_id', 'updated_at') }} as version_rank
    from renamed

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
        first_response_at,
        resolved_at,
        agent_replies,
        reopen_count,
        satisfaction_score,
        updated_at,
        _load_id,
        _loaded_at,
        _source_file,
        _source_row
    from versioned
    where version_rank = 1

)

select * from final
