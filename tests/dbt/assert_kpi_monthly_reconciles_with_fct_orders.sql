{{ config(meta={'dagster': {'ref': {'name': 'kpi_monthly'}}}) }}
-- Orders and revenue summed over kpi_monthly equal the valid orders in fct_orders: no month
-- lost from the calendar and no order counted twice.
with

kpis as (

    select
        sum(orders) as orders,
        sum(revenue) as revenue
    from {{ ref('kpi_monthly') }}

),

facts as (

    select
        count(*) as orders,
        coalesce(sum(total), 0) as revenue
    from {{ ref('fct_orders') }}
    where is_valid

)

select
    kpis.orders as kpi_orders,
    facts.orders as fact_orders,
    kpis.revenue as kpi_revenue,
    facts.revenue as fact_revenue
from kpis
cross join facts
where
    coalesce(kpis.orders, 0) <> facts.orders
    or coalesce(kpis.revenue, 0) <> facts.revenue
