with

source as (

    select * from {{ source('shop', 'customers') }}

),

renamed as (

    select
        trim(customer_id) as customer_id,
        nullif(lower(trim(email)), '') as email,
        nullif(trim(phone), '') as phone,
        nullif(trim(first_name), '') as first_name,
        nullif(trim(last_name), '') as last_name,
        nullif(upper(trim(country)), '') as country,
        nullif(trim(postal_code), '') as postal_code,
        cast(created_at as timestamp) as created_at,
        nullif(lower(trim(email_marketing_consent)), '') as email_marketing_consent,
        nullif(lower(trim(sms_marketing_consent)), '') as sms_marketing_consent,
        coalesce(is_test_account, false) as is_test_account,
        cast(erasure_requested_at as timestamp) as erasure_requested_at,
        cast(updated_at as timestamp) as updated_at,
        _load_id,
        _loaded_at,
        _source_file,
        _source_row
    from source

),

versioned as (

    select
        *,
        {{ latest_version_rank('customer_id', 'updated_at') }} as version_rank
    from renamed

),

final as (

    select
        customer_id,
        email,
        phone,
        first_name,
        last_name,
        country,
        postal_code,
        created_at,
        email_marketing_consent,
        sms_marketing_consent,
        is_test_account,
        erasure_requested_at,
        updated_at,
        _load_id,
        _loaded_at,
        _source_file,
        _source_row
    from versioned
    where version_rank = 1

)

select * from final
