with

source as (

    select * from {{ source('surveys', 'survey_responses') }}

),

-- every row with the retain customer id its customer key resolves to (macros/identity.sql)
identified as (

    {{ with_identity('source') }}

),

renamed as (

    select
        trim(response_id) as response_id,
        {{ resolved_customer_id('customer_id') }} as customer_id,
        nullif(trim(order_id), '') as order_id,
        lower(trim(survey_type)) as survey_type,
        score,
        nullif(trim(comment), '') as comment,
        cast(sent_at as timestamp) as sent_at,
        cast(responded_at as timestamp) as responded_at,
        _load_id,
        _loaded_at,
        _source_file,
        _source_row
    from identified

),

versioned as (

    select
        *,
        {{ latest_version_rank('response_id') }} as version_rank
    from renamed

),

final as (

    select
        response_id,
        customer_id,
        order_id,
        survey_type,
        score,
        comment,
        sent_at,
        responded_at,
        _load_id,
        _loaded_at,
        _source_file,
        _source_row
    from versioned
    where version_rank = 1

)

select * from final
