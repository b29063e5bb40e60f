with

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

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

-- one row per customer with a message (not every message: that table is 20 times larger)
customer_messages as (

    select * from {{ ref('int_customer_messages') }}

),

reporting_window as (

    select * from {{ ref('int_reporting_window') }}

),

-- every customer any source knows: a plain transaction log has orders but no customer file.
-- Reads the tables again rather than the CTEs above: DuckDB materialises a CTE used twice,
-- which would copy a million customers and every order before the first join.
customer_ids as (

    select customer_id from {{ ref('stg_shop__customers') }}
    union
    select customer_id from {{ ref('fct_orders') }}
    union
    select customer_id from {{ ref('fct_support_tickets') }}
    union
    select customer_id from {{ ref('int_survey_responses_banded') }}
    union
    select customer_id from {{ ref('stg_reviews__reviews') }}
    union
    select customer_id from {{ ref('int_customer_messages') }}

),

order_summary as (

    select
        customer_id,
        min(ordered_at) as first_order_at,
        max(ordered_at) as last_order_at,
        count(*) as orders_count,
        sum(total) as lifetime_revenue,
        sum(refund_amount) as lifetime_refunds,
        count(case when is_delivered_on_time = false then 1 end) as late_deliveries_count
    from orders
    where is_valid
    group by customer_id

),

ticket_summary as (

    select
        customer_id,
        count(case when is_complaint then 1 end) as complaints_count,
        count(case when is_open then 1 end) as open_tickets_count
    from tickets
    group by customer_id

),

survey_summary as (

    select
        customer_id,
        max(case when survey_type = 'nps' then score end) as last_nps_score,
        max(case when survey_type = 'csat' then score end) as last_csat_score
    from survey_responses
    where is_latest_of_type
    group by customer_id

),

review_summary as (

    select
        customer_id,
        avg(cast(rating as {{ type_double() }})) as avg_review_rating
    from reviews
    group by customer_id

),

message_summary as (

    select
        customer_id,
        last_outbound_message_at as last_message_at
    from customer_messages

),

final as (

    select
        customer_ids.customer_id,
        -- personal data is blanked once the customer has asked for erasure
        case when customers.erasure_requested_at is null then customers.email end as email,
        case when customers.erasure_requested_at is null then customers.phone end as phone,
        case
            when customers.erasure_requested_at is null then customers.first_name
        end as first_name,
        case
            when customers.erasure_requested_at is null then customers.last_name
        end as last_name,
        customers.country,
        case
            when customers.erasure_requested_at is null then customers.postal_code
        end as postal_code,
        customers.email_marketing_consent,
        customers.sms_marketing_consent,
        coalesce(customers.is_test_account, false) as is_test_account,
        customers.erasure_requested_at,
        customers.updated_at as consent_updated_at,
        customers.created_at,
        order_summary.first_order_at,
        order_summary.last_order_at,
        coalesce(order_summary.orders_count, 0) as orders_count,
        coalesce(order_summary.lifetime_revenue, 0) as lifetime_revenue,
        coalesce(order_summary.lifetime_refunds, 0) as lifetime_refunds,
        coalesce(order_summary.lifetime_revenue, 0)
        - coalesce(order_summary.lifetime_refunds, 0) as net_revenue,
        {{ safe_divide('order_summary.lifetime_revenue', 'order_summary.orders_count') }}
            as avg_order_value,
        {{ safe_divide(
            dbt.datediff('order_summary.first_order_at', 'order_summary.last_order_at', 'day'),
            'order_summary.orders_count - 1'
        ) }} as avg_days_between_orders,
        {{ dbt.datediff('order_summary.last_order_at', 'reporting_window.as_of_date', 'day') }}
            as days_since_last_order,
        coalesce(ticket_summary.complaints_count, 0) as complaints_count,
        coalesce(ticket_summary.open_tickets_count, 0) as open_tickets_count,
        survey_summary.last_nps_score,
        survey_summary.last_csat_score,
        review_summary.avg_review_rating,
        coalesce(order_summary.late_deliveries_count, 0) as late_deliveries_count,
        message_summary.last_message_at,
        coalesce(order_summary.orders_count, 0) >= 2 as is_repeat_customer
    from customer_ids
    cross join reporting_window
    left join customers
        on customer_ids.customer_id = customers.customer_id
    left join order_summary
        on customer_ids.customer_id = order_summary.customer_id
    left join ticket_summary
        on customer_ids.customer_id = ticket_summary.customer_id
    left join survey_summary
        on customer_ids.customer_id = survey_summary.customer_id
    left join review_summary
        on customer_ids.customer_id = review_summary.customer_id
    left join message_summary
        on customer_ids.customer_id = message_summary.customer_id

)

select * from final
