{#
    One row per outreach run, play, listed customer (contacted or held out) and outcome window:
    did the customer order in the window_days after the list date, and for how much.
#}
{%- set window_end = dbt.dateadd('day', 'experiment_windows.window_days + 1', 'assignments.list_date') -%}
{%- set longest_window_end = dbt.dateadd('day', 'assignments.max_window_days + 1', 'assignments.list_date') %}

with

assignments as (

    select * from {{ ref('int_outreach_assignments') }}

),

experiment_windows as (

    select
        run_id,
        play,
        window_days
    from {{ ref('stg_exports__experiments') }}
    where holdout_share > 0

),

orders as (

    select
        customer_id,
        ordered_at,
        total
    from {{ ref('fct_orders') }}
    where is_valid

),

reporting_window as (

    select * from {{ ref('int_reporting_window') }}

),

-- each valid order in the longest window, as the day after the list date it falls on
-- (day 1 = the day after the list date)
order_days as (

    select
        assignments.run_id,
        assignments.play,
        assignments.customer_id,
        {{ dbt.datediff('assignments.list_date', 'orders.ordered_at', 'day') }} as order_day,
        orders.total
    from assignments
    inner join orders
        on
            assignments.customer_id = orders.customer_id
            and orders.ordered_at >= cast({{ dbt.dateadd('day', 1, 'assignments.list_date') }} as timestamp)
            and orders.ordered_at < cast({{ longest_window_end }} as timestamp)

),

window_orders as (

    select
        order_days.run_id,
        order_days.play,
        order_days.customer_id,
        experiment_windows.window_days,
        count(*) as orders_in_window,
        sum(order_days.total) as revenue_in_window
    from order_days
    inner join experiment_windows
        on
            order_days.run_id = experiment_windows.run_id
            and order_days.play = experiment_windows.play
            and order_days.order_day <= experiment_windows.window_days
    group by order_days.run_id, order_days.play, order_days.customer_id, experiment_windows.window_days

),

final as (

    select
        assignments.run_id,
        assignments.play,
        assignments.experiment,
        assignments.customer_id,
        assignments.arm,
        assignments.risk_tier,
        assignments.churn_probability,
        assignments.clv_12m,
        assignments.list_date,
        assignments.holdout_share,
        experiment_windows.window_days,
        cast({{ window_end }} as timestamp) <= reporting_window.data_end_at as is_window_complete,
        assignments.is_first_listing,
        coalesce(assignments.first_exposed_day <= experiment_windows.window_days, false) as is_exposed,
        coalesce(window_orders.orders_in_window, 0) > 0 as is_converted,
        coalesce(window_orders.orders_in_window, 0) as orders_in_window,
        cast(coalesce(window_orders.revenue_in_window, 0) as {{ type_double() }}) as revenue_in_window
    from assignments
    inner join experiment_windows
        on
            assignments.run_id = experiment_windows.run_id
            and assignments.play = experiment_windows.play
    cross join reporting_window
    left join window_orders
        on
            assignments.run_id = window_orders.run_id
            and assignments.play = window_orders.play
            and assignments.customer_id = window_orders.customer_id
            and experiment_windows.window_days = window_orders.window_days

)

select * from final
