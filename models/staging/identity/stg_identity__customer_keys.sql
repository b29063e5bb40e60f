with

source as (

    select * from {{ source('identity', '_customer_identity') }}

),

final as (

    select
        customer_key,
        platform,
        platform_customer_id,
        customer_id,
        is_shop_customer,
        resolved_at
    from source

)

select * from final
