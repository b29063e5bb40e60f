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

order_kpis as (

    select
        order_month as month,
        count(*) as orders,
        count(distinct customer_id) as customers_ordering,
        sum(total) as revenue,
        count(case when customer_order_number = 1 then 1 end) as new_customers,
        count(case when customer_order_number = 2 then 1 end) as second_orders
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

delivery_kpis as (

    select
        delivered_month as month,
        count(*) as delivered_orders,
        count(case when has_return then 1 end) as returned_orders,
        count(case when promised_delivery_date is not null then 1 end) as promised_deliveries,
        count(case when is_delivered_on_time then 1 end) as on_time_deliveries
    from valid_orders
    where delivered_at is not null
    group by delivered_month

),

survey_kpis as (

    select
        responded_month as month,
        count(case when survey_type = 'nps' then 1 end) as nps_responses,
        count(case when nps_band = 'promoter' then 1 end) as promoters,
        count(case when nps_band = 'detractor' then 1 end) as detractors,
        count(case when survey_type = 'csat' then 1 end) as csat_responses,
        count(case when is_csat_satisfied then 1 end) as satisfied_csat_responses
    from survey_responses
    group by responded_month

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
        count(case when is_complaint then 1 end) as complaints,
        count(case when is_complaint and is_resolved then 1 end) as resolved_complaints,
        count(case when is_complaint and is_first_contact_resolution then 1 end) as first_contact_resolutions,
        {{ median('case when is_complaint then hours_to_first_response end') }}
            as median_hours_to_first_response,
        {{ median('case when is_complaint then hours_to_resolution end') }}
            as median_hours_to_resolution,
        count(case when is_wismo then 1 end) as wismo_tickets
    from tickets
    group by created_month

),

joined as (

    select
        months.month,
        coalesce(order_kpis.orders, 0) as orders,
        coalesce(order_kpis.customers_ordering, 0) as customers_ordering,
        coalesce(order_kpis.new_customers, 0) as new_customers,
        coalesce(order_kpis.revenue, 0) as revenue,
        coalesce(returning_customers.returning_customers, 0) as returning_customers,
        lag(coalesce(order_kpis.customers_ordering, 0)) over (
            order by months.month
        ) as customers_ordering_previous_month,
        sum(coalesce(order_kpis.new_customers, 0)) over (
            order by months.month rows between unbounded preceding and current row
        ) as customers_to_date,
        sum(coalesce(order_kpis.second_orders, 0)) over (
            order by months.month rows between unbounded preceding and current row
        ) as repeat_customers_to_date,
        coalesce(delivery_kpis.delivered_orders, 0) as delivered_orders,
        coalesce(delivery_kpis.returned_orders, 0) as returned_orders,
        coalesce(delivery_kpis.promised_deliveries, 0) as promised_deliveries,
        coalesce(delivery_kpis.on_time_deliveries, 0) as on_time_deliveries,
        coalesce(survey_kpis.nps_responses, 0) as nps_responses,
        coalesce(survey_kpis.promoters, 0) as promoters,
        coalesce(survey_kpis.detractors, 0) as detractors,
        coalesce(survey_kpis.csat_responses, 0) as csat_responses,
        coalesce(survey_kpis.satisfied_csat_responses, 0) as satisfied_csat_responses,
        coalesce(review_kpis.reviews_count, 0) as reviews_count,
        review_kpis.avg_review_rating,
        coalesce(ticket_kpis.complaints, 0) as complaints,
        coalesce(ticket_kpis.resolved_complaints, 0) as resolved_complaints,
        coalesce(ticket_kpis.first_contact_resolutions, 0) as first_contact_resolutions,
        ticket_kpis.median_hours_to_first_response,
        ticket_kpis.median_hours_to_resolution,
        coalesce(ticket_kpis.wismo_tickets, 0) as wismo_tickets
    from months
    left join order_kpis on months.month = order_kpis.month
    left join returning_customers on months.month = returning_customers.month
    left join delivery_kpis on months.month = delivery_kpis.month
    left join survey_kpis on months.month = survey_kpis.month
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
