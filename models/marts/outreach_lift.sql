{#
    The lift of each play: contacted versus held-out customers, per cohort (one list run, or
    every customer's first listing: cohort_grain 'play') and outcome window. The methods are
    documented in outreach_lift.yml and docs/outreach-and-exports.md; the formulas are in
    macros/lift.sql.
#}

with

outcomes as (

    select * from {{ ref('outreach_outcomes') }}

),

pivoted as (

    select
        play,
        experiment,
        cohort_grain,
        cohort_id,
        window_days,
        min(first_list_date) as first_list_date,
        max(last_list_date) as last_list_date,
        max(holdout_share) as holdout_share,
        bool_and(is_window_complete) as is_window_complete,
        sum(customers_pending) as customers_pending,
        coalesce(sum(case when arm = 'contacted' then customers end), 0) as contacted_customers,
        coalesce(sum(case when arm = 'holdout' then customers end), 0) as holdout_customers,
        coalesce(sum(case when arm = 'contacted' then converted end), 0) as contacted_converted,
        coalesce(sum(case when arm = 'holdout' then converted end), 0) as holdout_converted,
        max(case when arm = 'contacted' then exposure_rate end) as contacted_exposure_rate,
        max(case when arm = 'holdout' then exposure_rate end) as holdout_exposure_rate,
        max(case when arm = 'contacted' then revenue_per_customer end) as contacted_revenue_per_customer,
        max(case when arm = 'holdout' then revenue_per_customer end) as holdout_revenue_per_customer,
        max(case when arm = 'contacted' then revenue_variance end) as contacted_revenue_variance,
        max(case when arm = 'holdout' then revenue_variance end) as holdout_revenue_variance
    from outcomes
    group by play, experiment, cohort_grain, cohort_id, window_days

),

rates as (

    select
        *,
        {{ safe_divide('contacted_converted', 'contacted_customers') }} as contacted_conversion_rate,
        {{ safe_divide('holdout_converted', 'holdout_customers') }} as holdout_conversion_rate,
        {{ safe_divide(
            'contacted_converted + holdout_converted', 'contacted_customers + holdout_customers'
        ) }} as pooled_conversion_rate,
        {{ wilson_bound('contacted_converted', 'contacted_customers', 'lower') }} as contacted_lower,
        {{ wilson_bound('contacted_converted', 'contacted_customers', 'upper') }} as contacted_upper,
        {{ wilson_bound('holdout_converted', 'holdout_customers', 'lower') }} as holdout_lower,
        {{ wilson_bound('holdout_converted', 'holdout_customers', 'upper') }} as holdout_upper
    from pivoted

),

statistics as (

    select
        *,
        contacted_conversion_rate - holdout_conversion_rate as conversion_lift,
        -- Newcombe (1998) hybrid score interval, his method 10
        contacted_conversion_rate - holdout_conversion_rate - sqrt(
            power(contacted_conversion_rate - contacted_lower, 2)
            + power(holdout_upper - holdout_conversion_rate, 2)
        ) as conversion_lift_lower,
        contacted_conversion_rate - holdout_conversion_rate + sqrt(
            power(contacted_upper - contacted_conversion_rate, 2)
            + power(holdout_conversion_rate - holdout_lower, 2)
        ) as conversion_lift_upper,
        -- standard error of the difference under "no effect" (pooled rate): the z-test's
        sqrt(
            pooled_conversion_rate * (1 - pooled_conversion_rate)
            * (1.0 / nullif(contacted_customers, 0) + 1.0 / nullif(holdout_customers, 0))
        ) as pooled_standard_error,
        -- Katz log interval of the ratio of the two rates; relative lift = ratio - 1
        case
            when contacted_converted > 0 and holdout_converted > 0
                then sqrt(
                        (1 - contacted_conversion_rate) / contacted_converted
                        + (1 - holdout_conversion_rate) / holdout_converted
                    )
        end as log_ratio_standard_error,
        -- Welch: difference of mean revenue per customer, normal approximation
        contacted_revenue_per_customer - holdout_revenue_per_customer as revenue_lift_per_customer,
        sqrt(
            contacted_revenue_variance / nullif(contacted_customers, 0)
            + holdout_revenue_variance / nullif(holdout_customers, 0)
        ) as revenue_standard_error
    from rates

),

final as (

    select
        play,
        experiment,
        cohort_grain,
        cohort_id,
        first_list_date,
        last_list_date,
        window_days,
        holdout_share,
        is_window_complete,
        contacted_customers,
        holdout_customers,
        customers_pending,
        contacted_converted,
        holdout_converted,
        contacted_conversion_rate,
        holdout_conversion_rate,
        contacted_exposure_rate,
        holdout_exposure_rate,
        conversion_lift,
        conversion_lift_lower,
        conversion_lift_upper,
        case
            when holdout_conversion_rate > 0
                then contacted_conversion_rate / holdout_conversion_rate - 1
        end as relative_conversion_lift,
        case
            when log_ratio_standard_error is not null
                then exp(
                        ln(contacted_conversion_rate / holdout_conversion_rate)
                        - {{ lift_z95() }} * log_ratio_standard_error
                    ) - 1
        end as relative_conversion_lift_lower,
        case
            when log_ratio_standard_error is not null
                then exp(
                        ln(contacted_conversion_rate / holdout_conversion_rate)
                        + {{ lift_z95() }} * log_ratio_standard_error
                    ) - 1
        end as relative_conversion_lift_upper,
        case
            when pooled_standard_error = 0 then 1.0
            else 2 * (1 - {{ normal_cdf('abs(conversion_lift) / pooled_standard_error') }})
        end as conversion_p_value,
        ({{ lift_z95() }} + {{ lift_z80() }}) * sqrt(
            holdout_conversion_rate * (1 - holdout_conversion_rate)
            * (1.0 / nullif(contacted_customers, 0) + 1.0 / nullif(holdout_customers, 0))
        ) as min_detectable_lift,
        contacted_revenue_per_customer,
        holdout_revenue_per_customer,
        revenue_lift_per_customer,
        revenue_lift_per_customer - {{ lift_z95() }} * revenue_standard_error as revenue_lift_lower,
        revenue_lift_per_customer + {{ lift_z95() }} * revenue_standard_error as revenue_lift_upper,
        case
            when not is_window_complete or contacted_customers = 0 or holdout_customers = 0 then 'too_early'
            when conversion_lift_lower > 0 then 'working'
            else 'not_working'
        end as verdict
    from statistics

)

select * from final
