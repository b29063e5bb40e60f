{{
    config(
        materialized='incremental',
        unique_key=['order_id', 'line_number'],
        incremental_strategy='delete+insert',
        on_schema_change='sync_all_columns',
        full_refresh=(true if is_backfill() else none),
    )
}}

{#
    Incremental like stg_messaging__messages: a run reads only loads newer than the newest
    one kept here; order lines have no updated_at, so a newer load always wins over the
    version kept here. A backfill (vars backfill_start/backfill_end) rebuilds the whole
    table from every load (lines have no date of their own).
#}

with

source as (

    select * from {{ source('shop', 'order_items') }}
    {% if is_incremental() %}
        -- only loads newer than the newest one already kept here
        where {{ is_newer_than_this('_load_id') }}
    {% endif %}

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
        _source_row,
        {{ invocation_timestamp() }} as _built_at
    from versioned
    where version_rank = 1

)

select * from final
