{{ config(meta={'dagster': {'ref': {'name': 'dim_customers'}}}) }}
-- dim_customers adds up to the facts: valid orders, revenue and complaints.
with

dim as (

    select
        sum(orders_count) as orders,
        sum(lifetime_revenue) as revenue,
        sum(complaints_count) as complaints
    from {{ ref('dim_customers') }}

),

orders as (

    select
        count(*) as orders,
        coalesce(sum(total), 0) as revenue
    from {{ ref('fct_orders') }}
    where is_valid

),

tickets as (

    select count(*) as complaints
    from {{ ref('fct_support_tickets') }}
    where is_complaint

)

select
    dim.orders,
    orders.orders as fact_orders,
    dim.revenue,
    orders.revenue as fact_revenue,
    dim.complaints,
    tickets.complaints as fact_complaints
from dim
cross join orders
cross join tickets
where
    coalesce(dim.orders, 0) <> orders.orders
    or coalesce(dim.revenue, 0) <> orders.revenue
    or coalesce(dim.complaints, 0) <> tickets.complaints
