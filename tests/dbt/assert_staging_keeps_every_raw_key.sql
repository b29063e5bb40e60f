-- Deduplication keeps exactly one row per key: every order_id and message_id in raw is in
-- staging (incremental runs included).
select
    'orders' as source_table,
    raw_orders.order_id as missing_key
from {{ source('shop', 'orders') }} as raw_orders
left join {{ ref('stg_shop__orders') }} as staged
    on trim(raw_orders.order_id) = staged.order_id
where nullif(trim(raw_orders.order_id), '') is not null and staged.order_id is null

union all

select
    'messages' as source_table,
    raw_messages.message_id as missing_key
from {{ source('messaging', 'messages') }} as raw_messages
left join {{ ref('stg_messaging__messages') }} as staged
    on trim(raw_messages.message_id) = staged.message_id
where staged.message_id is null
