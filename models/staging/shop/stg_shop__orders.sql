{{
    config(
        materialized='incremental',
        unique_key='order_id',
        incremental_strategy=backfill_strategy('delete+insert'),
        incremental_predicates=backfill_predicates('ordered_at'),
        on_schema_change='sync_all_columns',
    )
}}

{#
    A backfill (vars backfill_start/backfill_end, see macros/backfill.sql) reads every load
    and writes the orders placed in the range, plus the orders of loads since the last run.
#}

with

source as (

    select * from {{ source('shop', 'orders') }}
    {% if is_incremental() and not is_backfill() %}
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
        coalesce(nullif(trim(order_id), ''), {{ transaction_order_id() }}) as order_id,
        {{ resolved_customer_id('customer_id') }} as customer_id,
        cast(ordered_at as timestamp) as ordered_at,
        -- a missing status means the order was placed (and so is a valid order)
        coalesce(nullif(lower(trim(status)), ''), 'placed') as status,
        nullif(upper(trim(currency)), '') as currency,
        subtotal,
        discount,
        shipping,
        tax,
        total,
        nullif(lower(trim(sales_channel)), '') as sales_channel,
        nullif(trim(discount_code), '') as discount_code,
        cast(promised_delivery_date as date) as promised_delivery_date,
        cast(shipped_at as timestamp) as shipped_at,
        cast(delivered_at as timestamp) as delivered_at,
        nullif(trim(carrier), '') as carrier,
        cast(updated_at as timestamp) as updated_at,
        _load_id,
        _loaded_at,
        _source_file,
        _source_row,
        {{ invocation_timestamp() }} as _built_at
    from identified

),

candidates as (

    select * from renamed
    {% if is_backfill() %}
        -- every version of the orders that final may write, so only those are ranked
        where
            order_id in (
                select any_version.order_id from renamed as any_version
                where
                    {{ in_backfill_range('any_version.ordered_at') }}
                    {% if is_incremental() %}
                        or {{ is_newer_than_this('any_version._load_id', '_load_id') }}
                    {% endif %}
                {% if is_incremental() %}
                    union
                    select kept.order_id from {{ this }} as kept
                    where {{ in_backfill_range('kept.ordered_at') }}
                {% endif %}
            )
    {% elif is_incremental() %}
        -- a newer load can carry an older version (lower updated_at) of an order kept here:
        -- let the kept version compete so the latest updated_at still wins
        union all
        select * from {{ this }}
        where order_id in (select renamed.order_id from renamed)
    {% endif %}

),

versioned as (

    select
        *,
        {{ latest_version_rank('order_id', 'updated_at') }} as version_rank
    from candidates

),

final as (

    select
        order_id,
        customer_id,
        ordered_at,
        status,
        currency,
        subtotal,
        discount,
        shipping,
        tax,
        total,
        sales_channel,
        discount_code,
        promised_delivery_date,
        shipped_at,
        delivered_at,
        carrier,
        updated_at,
        _load_id,
        _loaded_at,
        _source_file,
        _source_row,
        -- every row this run writes, the kept version included, carries this run's time
        {{ invocation_timestamp() }} as _built_at
    from versioned
    where
        version_rank = 1
        {% if is_backfill() %}
            and (
                {{ in_backfill_range('ordered_at') }}
                {% if is_incremental() %}
                    -- loads since the last run, as an incremental run would take them
                    or {{ is_newer_than_this('_load_id') }}
                    -- an order kept in the range whose ordered_at has since moved out of it
                    or order_id in (
                        select kept.order_id from {{ this }} as kept
                        where {{ in_backfill_range('kept.ordered_at') }}
                    )
                {% endif %}
            )
        {% endif %}

)

select * from final
