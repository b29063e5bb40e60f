with

orders as (

    select * from {{ ref('fct_orders') }}

),

tickets as (

    select * from {{ ref('fct_support_tickets') }}

),

survey_responses as (

    select * from {{ ref('int_survey_responses_banded') }}

),

reviews as (

    select * from {{ ref('stg_reviews__reviews') }}

),

month_offsets as (

    {{ month_offsets() }}

),

valid_orders as (

    select * from orders
    where is_valid

),

-- the calendar runs from the first to the last month with any event, gaps included
event_months as (

    select order_month as month from orders
    union
    select delivered_month as month from orders
    union
    select created_month as month from tickets
    union
    select responded_month as month from survey_responses
    union
    select {{ month_start('created_at') }} as month from reviews

),

bounds as (

    select
        min(month) as first_month,
        max(month) as last_month
    from event_months

),

months as (

    select
        cast(
            {{ dbt.dateadd('month', 'month_offsets.month_offset', 'bounds.first_month') }} as date
        ) as month
    from bounds
    inner join month_offsets
        on
            month_offsets.month_offset
            <= {{ months_between('bounds.first_month', 'bounds.last_month') }}

),

-- every additive count is defined once, per customer and month, in kpi_customer_monthly
-- (the dashboard's filtered numbers sum the same rows): here they are summed per month
measures as (

    select
        month,
        cast(sum(orders) as bigint) as orders,
        sum(revenue) as revenue,
        cast(sum(new_customers) as bigint) as new_customers,
        cast(sum(second_orders) as bigint) as second_orders,
        cast(sum(delivered_orders) as bigint) as delivered_orders,
        cast(sum(returned_orders) as bigint) as returned_orders,
        cast(sum(promised_deliveries) as bigint) as promised_deliveries,
        cast(sum(on_time_deliveries) as bigint) as on_time_deliveries,
        cast(sum(nps_responses) as bigint) as nps_responses,
        cast(sum(promoters) as bigint) as promoters,
        cast(sum(detractors) as bigint) as detractors,
        cast(sum(csat_responses) as bigint) as csat_responses,
        cast(sum(satisfied_csat_responses) as bigint) as satisfied_csat_responses,
        cast(sum(complaints) as bigint) as complaints,
        cast(sum(resolved_complaints) as bigint) as resolved_complaints,
        cast(sum(first_contact_resolutions) as bigint) as first_contact_resolutions,
        cast(sum(wismo_tickets) as bigint) as wismo_tickets
    from {{ ref('kpi_customer_monthly') }}
    group by month

),

order_kpis as (

    select
        order_month as month,
        count(distinct customer_id) as customers_ordering
    from valid_orders
    group by order_month

),

customer_months as (

    select distinct
        customer_id,
        order_month
    from valid_orders

),

returning_customers as (

    select
        this_month.order_month as month,
        count(*) as returning_customers
    from customer_months as this_month
    inner join customer_months as previous_month
        on
            this_month.customer_id = previous_month.customer_id
            and previous_month.order_month
            = cast({{ dbt.dateadd('month', -1, 'this_month.order_month') }} as date)
    group by this_month.order_month

),

review_kpis as (

    select
        {{ month_start('created_at') }} as month,
        count(*) as reviews_count,
        avg(cast(rating as {{ type_double() }})) as avg_review_rating
    from reviews
    group by {{ month_start('created_at') }}

),

ticket_kpis as (

    select
        created_month as month,
        {{ median('case when is_complaint then hours_to_first_response end') }}
            as median_hours_to_first_response,
        {{ median('case when is_complaint then hours_to_resolution end') }}
            as median_hours_to_resolution
    from tickets
    group by created_month

),

joined as (

    select
        months.month,
        coalesce(measures.orders, 0) as orders,
        coalesce(order_kpis.customers_ordering, 0) as customers_ordering,
        coalesce(measures.new_customers, 0) as new_customers,
        coalesce(measures.revenue, 0) as revenue,
        coalesce(returning_customers.returning_customers, 0) as returning_customers,
        lag(coalesce(order_kpis.customers_ordering, 0)) over (
            order by months.month
        ) as customers_ordering_previous_month,
        sum(coalesce(measures.new_customers, 0)) over (
            order by months.month rows between unbounded preceding and current row
        ) as customers_to_date,
        sum(coalesce(measures.second_orders, 0)) over (
            order by months.month rows between unbounded preceding and current row
        ) as repeat_customers_to_date,
        coalesce(measures.delivered_orders, 0) as delivered_orders,
        coalesce(measures.returned_orders, 0) as returned_orders,
        coalesce(measures.promised_deliveries, 0) as promised_deliveries,
        coalesce(measures.on_time_deliveries, 0) as on_time_deliveries,
        coalesce(measures.nps_responses, 0) as nps_responses,
        coalesce(measures.promoters, 0) as promoters,
        coalesce(measures.detractors, 0) as detractors,
        coalesce(measures.csat_responses, 0) as csat_responses,
        coalesce(measures.satisfied_csat_responses, 0) as satisfied_csat_responses,
        coalesce(review_kpis.reviews_count, 0) as reviews_count,
        review_kpis.avg_review_rating,
        coalesce(measures.complaints, 0) as complaints,
        coalesce(measures.resolved_complaints, 0) as resolved_complaints,
        coalesce(measures.first_contact_resolutions, 0) as first_contact_resolutions,
        ticket_kpis.median_hours_to_first_response,
        ticket_kpis.median_hours_to_resolution,
        coalesce(measures.wismo_tickets, 0) as wismo_tickets
    from months
    left join measures on months.month = measures.month
    left join order_kpis on months.month = order_kpis.month
    left join returning_customers on months.month = returning_customers.month
    left join review_kpis on months.month = review_kpis.month
    left join ticket_kpis on months.month = ticket_kpis.month

),

final as (

    select
        month,
        orders,
        customers_ordering,
        new_customers,
        revenue,
        {{ safe_divide('revenue', 'orders') }} as avg_order_value,
        {{ safe_divide('returning_customers', 'customers_ordering_previous_month') }}
            as returning_customer_rate,
        {{ safe_divide('repeat_customers_to_date', 'customers_to_date') }}
            as repeat_purchase_rate,
        {{ safe_divide('on_time_deliveries', 'promised_deliveries') }} as on_time_delivery_rate,
        {{ safe_divide('100 * (promoters - detractors)', 'nps_responses') }} as nps,
        {{ safe_divide('100 * satisfied_csat_responses', 'csat_responses') }} as csat,
        avg_review_rating,
        complaints,
        {{ safe_divide('resolved_complaints', 'complaints') }} as complaint_resolution_rate,
        median_hours_to_first_response,
        median_hours_to_resolution,
        {{ safe_divide('first_contact_resolutions', 'resolved_complaints') }}
            as first_contact_resolution_rate,
        {{ safe_divide('100 * wismo_tickets', 'orders') }} as wismo_per_100_orders,
        {{ safe_divide('returned_orders', 'delivered_orders') }} as return_rate,
        delivered_orders,
        nps_responses,
        csat_responses,
        reviews_count,
        wismo_tickets
    from joined

)

select * from final
