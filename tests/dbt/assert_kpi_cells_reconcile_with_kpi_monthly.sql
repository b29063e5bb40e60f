{{ config(meta={'dagster': {'ref': {'name': 'kpi_monthly_cells'}}}) }}
-- Every additive column of kpi_monthly_cells, summed over the cells of a month, equals the
-- month's count in kpi_monthly: the filtered dashboard KPIs and the unfiltered truth add up
-- from the same numbers. Returns the months that disagree.
with

cells as (

    select
        month,
        sum(orders) as orders,
        sum(revenue) as revenue,
        sum(new_customers) as new_customers,
        sum(first_orders) as first_orders,
        sum(delivered_orders) as delivered_orders,
        sum(returned_orders) as returned_orders,
        sum(on_time_deliveries) as on_time_deliveries,
        sum(nps_responses) as nps_responses,
        sum(promised_deliveries) as promised_deliveries,
        sum(promoters) as promoters,
        sum(detractors) as detractors,
        sum(csat_responses) as csat_responses,
        sum(satisfied_csat_responses) as satisfied_csat_responses,
        sum(reviews_count) as reviews_count,
        sum(complaints) as complaints,
        sum(resolved_complaints) as resolved_complaints,
        sum(wismo_tickets) as wismo_tickets
    from {{ ref('kpi_monthly_cells') }}
    group by month

),

kpis as (

    select * from {{ ref('kpi_monthly') }}

)

select
    kpis.month,
    kpis.orders,
    cells.orders as cell_orders
from kpis
left join cells
    on kpis.month = cells.month
where
    coalesce(cells.orders, 0) <> kpis.orders
    or abs(coalesce(cells.revenue, 0) - kpis.revenue) > 0.005
    or coalesce(cells.new_customers, 0) <> kpis.new_customers
    or coalesce(cells.first_orders, 0) <> kpis.new_customers
    or coalesce(cells.delivered_orders, 0) <> kpis.delivered_orders
    or coalesce(cells.nps_responses, 0) <> kpis.nps_responses
    or coalesce(cells.csat_responses, 0) <> kpis.csat_responses
    or coalesce(cells.reviews_count, 0) <> kpis.reviews_count
    or coalesce(cells.complaints, 0) <> kpis.complaints
    or coalesce(cells.wismo_tickets, 0) <> kpis.wismo_tickets
    -- the rates kpi_monthly holds, from the cells' numerators and denominators
    or abs(coalesce({{ safe_divide('cells.on_time_deliveries', 'cells.promised_deliveries') }}, -1)
        - coalesce(kpis.on_time_delivery_rate, -1)) > 1e-9
    or abs(coalesce({{ safe_divide('cells.returned_orders', 'cells.delivered_orders') }}, -1)
        - coalesce(kpis.return_rate, -1)) > 1e-9
    or abs(coalesce({{ safe_divide('100 * (cells.promoters - cells.detractors)', 'cells.nps_responses') }}, -1000)
        - coalesce(kpis.nps, -1000)) > 1e-9
    or abs(coalesce({{ safe_divide('100 * cells.satisfied_csat_responses', 'cells.csat_responses') }}, -1)
        - coalesce(kpis.csat, -1)) > 1e-9
    or abs(coalesce({{ safe_divide('cells.resolved_complaints', 'cells.complaints') }}, -1)
        - coalesce(kpis.complaint_resolution_rate, -1)) > 1e-9
