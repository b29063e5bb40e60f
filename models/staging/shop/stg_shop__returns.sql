with

source as (

    select * from {{ source('shop', 'returns') }}

),

renamed as (

    select
        trim(return_id) as return_id,
        trim(order_id) as order_id,
        cast(requested_at as timestamp) as requested_at,
        nullif(lower(trim(reason)), '') as reason,
        refund_amount,
        cast(refunded_at as timestamp) as refunded_at,
        nullif(lower(trim(status)), '') as status,
        _load_id,
        _loaded_at,
        _source_file,
        _source_row
    from source

),

versioned as (

    select
        *,
        {{ latest_version_rank('return_id') }} as version_rank
    from renamed

),

final as (

    select
        return_id,
        order_id,
        requested_at,
        reason,
        refund_amount,
        refunded_at,
        status,
        _load_id,
        _loaded_at,
        _source_file,
        _source_row
    from versioned
    where version_rank = 1

)

select * from final
