with

source as (

    select * from {{ source('reviews', 'reviews') }}

),

-- every row with the retain customer id its customer key resolves to (macros/identity.sql)
identified as (

    {{ with_identity('source') }}

),

renamed as (

    select
        trim(review_id) as review_id,
        {{ resolved_customer_id('customer_id') }} as customer_id,
        nullif(trim(order_id), '') as order_id,
        trim(product_id) as product_id,
        rating,
        nullif(trim(title), '') as title,
        nullif(trim(body), '') as body,
        nullif(lower(trim(source)), '') as source,
        cast(created_at as timestamp) as created_at,
        _load_id,
        _loaded_at,
        _source_file,
        _source_row
    from identified

),

versioned as (

    select
        *,
        {{ latest_version_rank('review_id') }} as version_rank
    from renamed

),

final as (

    select
        review_id,
        customer_id,
        order_id,
        product_id,
        rating,
        title,
        body,
        source,
        created_at,
        _load_id,
        _loaded_at,
        _source_file,
        _source_row
    from versioned
    where version_rank = 1

)

select * from final
