with

returns as (

    select * from {{ ref('stg_shop__returns') }}

),

final as (

    select
        order_id,
        count(*) as return_requests,
        -- a rejected request is not a return
        count(case when coalesce(status, '') <> 'rejected' then 1 end) > 0 as has_return,
        -- only money actually paid back counts as refunded
        coalesce(
            sum(
                case
                    when refunded_at is not null or status = 'refunded' then refund_amount
                end
            ),
            0
        ) as refund_amount,
        min(requested_at) as first_return_requested_at,
        max(_loaded_at) as _loaded_at
    from returns
    group by order_id

)

select * from final
