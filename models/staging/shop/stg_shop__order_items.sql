with

source as (

    select * from {{ source('shop', 'order_items') }}

),

renamed as (

    select
        trim(order_id) as order_id,
        line_number,
        trim(product_id) as product_id,
        nullif(trim(product_name), '') as product_name,
        nullif(lower(trim(category)), '') as category,
        quantity,
        unit_price,
        quantity * unit_price as line_amount,
        _load_id,
        _loaded_at,
        _source_file,
        _source_row
    from source

),

versioned as (

    select
        *,
        {{ latest_version_rank('order_id, line_number') }} as version_rank
    from renamed

),

final as (

    select
        order_id,
        line_number,
        product_id,
        product_name,
        category,
        quantity,
        unit_price,
        line_amount,
        _load_id,
        _loaded_at,
        _source_file,
        _source_row
    from versioned
    where version_rank = 1

)

select * from final
