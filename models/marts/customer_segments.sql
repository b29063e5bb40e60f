{#
    One row per customer with the attributes the dashboard filters by: country, acquisition
    channel (the sales channel of the first valid order) and an RFM segment. Recency and
    frequency scores use fixed, explainable thresholds; monetary is the quintile of net
    revenue among customers with a valid order. Customers without a valid order get no
    scores and the segment 'No orders'.
#}

with

customers as (

    select * from {{ ref('dim_customers') }}

),

orders as (

    select * from {{ ref('fct_orders') }}

),

first_orders as (

    select
        customer_id,
        sales_channel as acquisition_channel
    from orders
    where is_valid and customer_order_number = 1

),

scored as (

    select
        customers.customer_id,
        customers.country,
        first_orders.acquisition_channel,
        customers.orders_count,
        customers.days_since_last_order,
        customers.net_revenue,
        case
            when customers.orders_count = 0 then null
            when customers.days_since_last_order <= 30 then 5
            when customers.days_since_last_order <= 90 then 4
            when customers.days_since_last_order <= 180 then 3
            when customers.days_since_last_order <= 365 then 2
            else 1
        end as recency_score,
        case
            when customers.orders_count = 0 then null
            when customers.orders_count >= 6 then 5
            when customers.orders_count >= 4 then 4
            else customers.orders_count
        end as frequency_score,
        case
            when customers.orders_count > 0
                then ntile(5) over (
                        partition by customers.orders_count > 0
                        order by customers.net_revenue, customers.customer_id
                    )
        end as monetary_score
    from customers
    left join first_orders
        on customers.customer_id = first_orders.customer_id

),

final as (

    select
        customer_id,
        country,
        acquisition_channel,
        orders_count,
        days_since_last_order,
        net_revenue,
        recency_score,
        frequency_score,
        monetary_score,
        case
            when recency_score is null then 'No orders'
            when recency_score >= 4 and frequency_score >= 4 then 'Champions'
            when recency_score >= 3 and frequency_score >= 3 then 'Loyal'
            when recency_score >= 4 and frequency_score = 1 then 'New'
            when recency_score >= 4 then 'Promising'
            when recency_score = 3 then 'Needs attention'
            when frequency_score >= 3 then 'At risk'
            when recency_score = 2 then 'Hibernating'
            else 'Lost'
        end as rfm_segment
    from scored

)

select * from final
