{#
    kpi_customer_monthly summed per month, country, channel and RFM segment: the cells the
    dashboard's filters select. Every column but the keys is additive, so a filtered KPI is
    sum(numerator) / sum(denominator) over the selected cells, and summed over all cells of a
    month each column equals its kpi_monthly count.
#}

with

customer_months as (

    select * from {{ ref('kpi_customer_monthly') }}

),

segments as (

    select
        customer_id,
        country,
        rfm_segment
    from {{ ref('customer_segments') }}

),

final as (

    select
        customer_months.month,
        segments.country,
        customer_months.channel,
        segments.rfm_segment,
        sum(customer_months.orders) as orders,
        sum(customer_months.revenue) as revenue,
        sum(customer_months.first_orders) as first_orders,
        sum(customer_months.new_customer_revenue) as new_customer_revenue,
        sum(customer_months.returning_customer_revenue) as returning_customer_revenue,
        sum(customer_months.delivered_orders) as delivered_orders,
        sum(customer_months.returned_orders) as returned_orders,
        sum(customer_months.promised_deliveries) as promised_deliveries,
        sum(customer_months.on_time_deliveries) as on_time_deliveries,
        sum(customer_months.new_customers) as new_customers,
        sum(customer_months.second_orders) as second_orders,
        sum(customer_months.nps_responses) as nps_responses,
        sum(customer_months.promoters) as promoters,
        sum(customer_months.detractors) as detractors,
        sum(customer_months.csat_responses) as csat_responses,
        sum(customer_months.satisfied_csat_responses) as satisfied_csat_responses,
        sum(customer_months.reviews_count) as reviews_count,
        sum(customer_months.review_rating_sum) as review_rating_sum,
        sum(customer_months.tickets) as tickets,
        sum(customer_months.complaints) as complaints,
        sum(customer_months.resolved_complaints) as resolved_complaints,
        sum(customer_months.first_contact_resolutions) as first_contact_resolutions,
        sum(customer_months.wismo_tickets) as wismo_tickets,
        sum(customer_months.reopened_tickets) as reopened_tickets
    from customer_months
    left join segments
        on customer_months.customer_id = segments.customer_id
    group by
        customer_months.month,
        segments.country,
        customer_months.channel,
        segments.rfm_segment

)

select * from final
