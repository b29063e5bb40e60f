with

orders as (

    select * from {{ ref('fct_orders') }}

),

reporting_window as (

    select * from {{ ref('int_reporting_window') }}

),

month_offsets as (

    {{ month_offsets() }}

),

customer_months as (

    select distinct
        customer_id,
        order_month
    from orders
    where is_valid

),

cohorts as (

    select
        customer_id,
        min(order_month) as cohort_month
    from customer_months
    group by customer_id

),

cohort_sizes as (

    select
        cohort_month,
        count(*) as cohort_size
    from cohorts
    group by cohort_month

),

-- every cohort gets a row for each month from its first up to the month of the latest order
cohort_grid as (

    select
        cohort_sizes.cohort_month,
        cohort_sizes.cohort_size,
        month_offsets.month_offset as months_since_first_order
    from cohort_sizes
    cross join reporting_window
    inner join month_offsets
        on
            month_offsets.month_offset
            <= {{ months_between('cohort_sizes.cohort_month', month_start('reporting_window.data_end_at')) }}

),

activity as (

    select
        cohorts.cohort_month,
        {{ months_between('cohorts.cohort_month', 'customer_months.order_month') }}
            as months_since_first_order,
        count(*) as active_customers
    from customer_months
    inner join cohorts
        on customer_months.customer_id = cohorts.customer_id
    group by
        cohorts.cohort_month,
        {{ months_between('cohorts.cohort_month', 'customer_months.order_month') }}

),

final as (

    select
        cohort_grid.cohort_month,
        cohort_grid.months_since_first_order,
        cohort_grid.cohort_size,
        coalesce(activity.active_customers, 0) as active_customers,
        {{ safe_divide('coalesce(activity.active_customers, 0)', 'cohort_grid.cohort_size') }}
            as retention_rate
    from cohort_grid
    left join activity
        on
            cohort_grid.cohort_month = activity.cohort_month
            and cohort_grid.months_since_first_order = activity.months_since_first_order

)

select * from final
