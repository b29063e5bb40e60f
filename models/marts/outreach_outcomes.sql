{#
    Outcomes per play, cohort, outcome window and arm. Two grains:
    - cohort_grain 'run': every customer of one list run (cohort_id = run_id);
    - cohort_grain 'play': each customer once, at their first listing in the play's
      experiment (cohort_id = 'all'), counted once that listing's window has passed.
#}

with

outcomes as (

    select * from {{ ref('int_outreach_outcomes') }}

),

by_run as (

    select
        play,
        experiment,
        'run' as cohort_grain,
        run_id as cohort_id,
        min(list_date) as first_list_date,
        max(list_date) as last_list_date,
        window_days,
        arm,
        max(holdout_share) as holdout_share,
        bool_and(is_window_complete) as is_window_complete,
        count(*) as customers,
        0 as customers_pending,
        count(case when is_converted then 1 end) as converted,
        count(case when is_exposed then 1 end) as exposed,
        sum(revenue_in_window) as revenue,
        var_samp(revenue_in_window) as revenue_variance
    from outcomes
    group by play, experiment, run_id, window_days, arm

),

by_play as (

    select
        play,
        experiment,
        'play' as cohort_grain,
        'all' as cohort_id,
        min(list_date) as first_list_date,
        max(list_date) as last_list_date,
        window_days,
        arm,
        max(holdout_share) as holdout_share,
        count(case when is_window_complete then 1 end) > 0 as is_window_complete,
        count(case when is_window_complete then 1 end) as customers,
        count(case when not is_window_complete then 1 end) as customers_pending,
        count(case when is_window_complete and is_converted then 1 end) as converted,
        count(case when is_window_complete and is_exposed then 1 end) as exposed,
        coalesce(sum(case when is_window_complete then revenue_in_window end), 0) as revenue,
        var_samp(case when is_window_complete then revenue_in_window end) as revenue_variance
    from outcomes
    where is_first_listing
    group by play, experiment, window_days, arm

),

unioned as (

    select * from by_run
    union all
    select * from by_play

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
        arm,
        holdout_share,
        is_window_complete,
        customers,
        customers_pending,
        converted,
        {{ safe_divide('converted', 'customers') }} as conversion_rate,
        exposed,
        {{ safe_divide('exposed', 'customers') }} as exposure_rate,
        revenue,
        {{ safe_divide('revenue', 'customers') }} as revenue_per_customer,
        revenue_variance
    from unioned

)

select * from final
