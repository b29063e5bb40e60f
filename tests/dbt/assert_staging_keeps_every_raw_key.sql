{{ config(meta={'dagster': {'ref': {'name': 'stg_shop__orders'}}}) }}
-- Deduplication and incremental runs lose no order: every order_id in raw is in staging.
select
    'orders' as source_table,
    raw_orders.order_id as missing_key
from {{ source('shop', 'orders') }} as raw_orders
left join {{ ref('stg_shop__orders') }} as staged
    on trim(raw_orders.order_id) = staged.order_id
where nullif(trim(raw_orders.order_id), '') is not null and staged.order_id is null

