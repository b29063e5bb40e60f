{#
    The additive parts of kpi_monthly, per month, customer and channel: every numerator and
    denominator of a KPI that is a ratio of counts or sums. Summed over all rows of a month
    they give kpi_monthly's counts (tests/dbt/assert_kpi_cells_reconcile_with_kpi_monthly.sql);
    summed over the rows of some customers they give the same KPI for those customers.

    `channel` is the order's sales channel for order and delivery measures, and the
    customer's acquisition channel (sales channel of the first valid order) for customer
    measures (first and second orders behind the repeat rate, surveys, reviews, tickets).
    `month` is the month of each measure's own event, as in kpi_monthly. Feedback and
    tickets of no known customer have a null customer_id and channel.
#}

with

orders as (

    select * from {{ ref('fct_orders') }}
    where is_valid

),

customers as (

    select
        customer_id,
        acquisition_channel
    from {{ ref('customer_segments') }}

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

order_measures as (

    select
        order_month as month,
        customer_id,
        sales_channel as channel,
        count(*) as orders,
        sum(total) as revenue,
        count(case when customer_order_number = 1 then 1 end) as first_orders,
        sum(case when customer_order_number = 1 then total end) as new_customer_revenue,
        sum(case when is_repeat_order then total end) as returning_customer_revenue,
        0 as delivered_orders,
        0 as returned_orders,
        0 as promised_deliveries,
        0 as on_time_deliveries
    from orders
    group by order_month, customer_id, sales_channel

),

delivery_measures as (

    select
        delivered_month as month,
        customer_id,
        sales_channel as channel,
        0 as orders,
        0 as revenue,
        0 as first_orders,
        0 as new_customer_revenue,
        0 as returning_customer_revenue,
        count(*) as delivered_orders,
        count(case when has_return then 1 end) as returned_orders,
        count(case when promised_delivery_date is not null then 1 end) as promised_deliveries,
        count(case when is_delivered_on_time then 1 end) as on_time_deliveries
    from orders
    where delivered_at is not null
    group by delivered_month, customer_id, sales_channel

),

acquisition_measures as (

    select
        order_month as month,
        customer_id,
        count(case when customer_order_number = 1 then 1 end) as new_customers,
        count(case when customer_order_number = 2 then 1 end) as second_orders
    from orders
    where customer_order_number <= 2
    group by order_month, customer_id

),

survey_measures as (

    select
        responded_month as month,
        customer_id,
        count(case when survey_type = 'nps' then 1 end) as nps_responses,
        count(case when nps_band = 'promoter' then 1 end) as promoters,
        count(case when nps_band = 'detractor' then 1 end) as detractors,
        count(case when survey_type = 'csat' then 1 end) as csat_responses,
        count(case when is_csat_satisfied then 1 end) as satisfied_csat_responses
    from survey_responses
    group by responded_month, customer_id

),

review_measures as (

    select
        {{ month_start('created_at') }} as month,
        customer_id,
        count(*) as reviews_count,
        sum(rating) as review_rating_sum
    from reviews
    group by {{ month_start('created_at') }}, customer_id

),

ticket_measures as (

    select
        created_month as month,
        customer_id,
        count(*) as tickets,
        count(case when is_complaint then 1 end) as complaints,
        count(case when is_complaint and is_resolved then 1 end) as resolved_complaints,
        count(case when is_complaint and is_first_contact_resolution then 1 end) as first_contact_resolutions,
        count(case when is_wismo then 1 end) as wismo_tickets,
        count(case when reopen_count > 0 then 1 end) as reopened_tickets
    from tickets
    group by created_month, customer_id

),

customer_keys as (

    select
        month,
        customer_id
    from acquisition_measures
    union
    select
        month,
        customer_id
    from survey_measures
    union
    select
        month,
        customer_id
    from review_measures
    union
    select
        month,
        customer_id
    from ticket_measures

),

customer_side as (

    select
        customer_keys.month,
        customer_keys.customer_id,
        customers.acquisition_channel as channel,
        0 as orders,
        0 as revenue,
        0 as first_orders,
        0 as new_customer_revenue,
        0 as returning_customer_revenue,
        0 as delivered_orders,
        0 as returned_orders,
        0 as promised_deliveries,
        0 as on_time_deliveries,
        coalesce(acquisition_measures.new_customers, 0) as new_customers,
        coalesce(acquisition_measures.second_orders, 0) as second_orders,
        coalesce(survey_measures.nps_responses, 0) as nps_responses,
        coalesce(survey_measures.promoters, 0) as promoters,
        coalesce(survey_measures.detractors, 0) as detractors,
        coalesce(survey_measures.csat_responses, 0) as csat_responses,
        coalesce(survey_measures.satisfied_csat_responses, 0) as satisfied_csat_responses,
        coalesce(review_measures.reviews_count, 0) as reviews_count,
        coalesce(review_measures.review_rating_sum, 0) as review_rating_sum,
        coalesce(ticket_measures.tickets, 0) as tickets,
        coalesce(ticket_measures.complaints, 0) as complaints,
        coalesce(ticket_measures.resolved_complaints, 0) as resolved_complaints,
        coalesce(ticket_measures.first_contact_resolutions, 0) as first_contact_resolutions,
        coalesce(ticket_measures.wismo_tickets, 0) as wismo_tickets,
        coalesce(ticket_measures.reopened_tickets, 0) as reopened_tickets
    from customer_keys
    left join customers
        on customer_keys.customer_id = customers.customer_id
    left join acquisition_measures
        on
            customer_keys.month = acquisition_measures.month
            and customer_keys.customer_id = acquisition_measures.customer_id
    left join survey_measures
        on
            customer_keys.month = survey_measures.month
            and customer_keys.customer_id is not distinct from survey_measures.customer_id
    left join review_measures
        on
            customer_keys.month = review_measures.month
            and customer_keys.customer_id is not distinct from review_measures.customer_id
    left join ticket_measures
        on
            customer_keys.month = ticket_measures.month
            and customer_keys.customer_id is not distinct from ticket_measures.customer_id

),

order_side as (

    select
        order_rows.*,
        0 as new_customers,
        0 as second_orders,
        0 as nps_responses,
        0 as promoters,
        0 as detractors,
        0 as csat_responses,
        0 as satisfied_csat_responses,
        0 as reviews_count,
        0 as review_rating_sum,
        0 as tickets,
        0 as complaints,
        0 as resolved_complaints,
        0 as first_contact_resolutions,
        0 as wismo_tickets,
        0 as reopened_tickets
    from (
        select * from order_measures
        union all
        select * from delivery_measures
    ) as order_rows

),

unioned as (

    -- both sides list the same columns in the same order
    select * from order_side
    union all
    select * from customer_side

),

final as (

    select
        month,
        customer_id,
        channel,
        sum(orders) as orders,
        coalesce(sum(revenue), 0) as revenue,
        sum(first_orders) as first_orders,
        coalesce(sum(new_customer_revenue), 0) as new_customer_revenue,
        coalesce(sum(returning_customer_revenue), 0) as returning_customer_revenue,
        sum(delivered_orders) as delivered_orders,
        sum(returned_orders) as returned_orders,
        sum(promised_deliveries) as promised_deliveries,
        sum(on_time_deliveries) as on_time_deliveries,
        sum(new_customers) as new_customers,
        sum(second_orders) as second_orders,
        sum(nps_responses) as nps_responses,
        sum(promoters) as promoters,
        sum(detractors) as detractors,
        sum(csat_responses) as csat_responses,
        sum(satisfied_csat_responses) as satisfied_csat_responses,
        sum(reviews_count) as reviews_count,
        sum(review_rating_sum) as review_rating_sum,
        sum(tickets) as tickets,
        sum(complaints) as complaints,
        sum(resolved_complaints) as resolved_complaints,
        sum(first_contact_resolutions) as first_contact_resolutions,
        sum(wismo_tickets) as wismo_tickets,
        sum(reopened_tickets) as reopened_tickets
    from unioned
    group by month, customer_id, channel

)

select * from final
