{{
    config(
        materialized='incremental',
        unique_key='customer_id',
        incremental_strategy='delete+insert',
        on_schema_change='sync_all_columns',
        full_refresh=(true if is_backfill() else none),
    )
}}

{#
    Incremental like stg_shop__orders: a run reads only loads newer than the newest one kept
    here and lets the kept version of those customers compete with them. A backfill (vars
    backfill_start/backfill_end) rebuilds the whole table from every load: customers have no
    event date to bound a range by, and a rebuild is what follows corrections made in place.
#}

with

source as (

    select * from {{ source('shop', 'customers') }}
    {% if is_incremental() %}
        -- only loads newer than the newest one already kept here
        where {{ is_newer_than_this('_load_id') }}
    {% endif %}

),

-- every row with the retain customer id its customer key resolves to (macros/identity.sql)
identified as (

    {{ with_identity('source') }}

),

renamed as (

    select
        {{ resolved_customer_id('customer_id') }} as customer_id,
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
    from identified

),

candidates as (

    select * from renamed
    {% if is_incremental() %}
        -- a newer load can carry an older version (lower updated_at) of a customer kept
        -- here: let the kept version compete so the latest updated_at still wins. The columns
        -- are named, not `select *`: a table kept from before this model was incremental has
        -- no _built_at yet, and a positional union would then fail
        union all
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
        from {{ this }}
        where customer_id in (select renamed.customer_id from renamed)
    {% endif %}

),

versioned as (

    select
        *,
        {{ latest_version_rank('customer_id', 'updated_at') }} as version_rank
    from candidates

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
        _source_row,
        -- every row this run writes, the kept version included, carries this run's time
        {{ invocation_timestamp() }} as _built_at
    from versioned
    where version_rank = 1

)

select * from final
