{#
    One row per outreach run, play and listed customer: the customer's arm (contacted or
    holdout), whether it is the customer's first listing in the play's experiment, and the
    day after the list date of the first message of the play. Only plays with a holdout
    (holdout_share > 0) are measured: without one there is nothing to compare with.
#}

with

contacted as (

    select
        run_id,
        play,
        customer_id,
        'contacted' as arm,
        risk_tier,
        churn_probability,
        clv_12m
    from {{ ref('stg_exports__outreach_lists') }}

),

held_out as (

    select
        run_id,
        play,
        customer_id,
        'holdout' as arm,
        risk_tier,
        churn_probability,
        clv_12m
    from {{ ref('stg_exports__holdouts') }}

),

arms as (

    select * from contacted
    union all
    select * from held_out

),

experiment_windows as (

    select * from {{ ref('stg_exports__experiments') }}
    where holdout_share > 0

),

-- one row per run and play that has a holdout
experiment_runs as (

    select
        run_id,
        play,
        experiment,
        template,
        holdout_share,
        list_date,
        max(window_days) as max_window_days
    from experiment_windows
    group by run_id, play, experiment, template, holdout_share, list_date

),

-- is_first_listing: the customer's first run in the play's experiment (the cohort the
-- play-level lift counts); ties on a date go to the first run id
assigned as (

    select
        arms.run_id,
        arms.play,
        experiment_runs.experiment,
        arms.customer_id,
        arms.arm,
        arms.risk_tier,
        arms.churn_probability,
        arms.clv_12m,
        experiment_runs.list_date,
        experiment_runs.template,
        experiment_runs.holdout_share,
        experiment_runs.max_window_days,
        row_number() over (
            partition by arms.play, experiment_runs.experiment, arms.customer_id
            order by experiment_runs.list_date, arms.run_id
        ) = 1 as is_first_listing
    from arms
    inner join experiment_runs
        on
            arms.run_id = experiment_runs.run_id
            and arms.play = experiment_runs.play

),

-- outbound messages whose campaign is a measured play's template or name
play_messages as (

    select
        messages.customer_id,
        messages.campaign,
        messages.sent_at
    from {{ ref('stg_messaging__messages') }} as messages
    where
        messages.direction = 'outbound'
        and messages.campaign in (
            select experiment_runs.template from experiment_runs
            union
            select experiment_runs.play from experiment_runs
        )

),

-- days from the list date to the first message of the play within the longest window
exposures as (

    select
        assigned.run_id,
        assigned.play,
        assigned.customer_id,
        min({{ dbt.datediff('assigned.list_date', 'play_messages.sent_at', 'day') }}) as first_exposed_day
    from assigned
    inner join play_messages
        on
            assigned.customer_id = play_messages.customer_id
            and play_messages.campaign in (assigned.template, assigned.play)
            and play_messages.sent_at >= cast(assigned.list_date as timestamp)
            and play_messages.sent_at
            < cast(
                {{ dbt.dateadd('day', 'assigned.max_window_days + 1', 'assigned.list_date') }} as timestamp
            )
    group by assigned.run_id, assigned.play, assigned.customer_id

),

final as (

    select
        assigned.run_id,
        assigned.play,
        assigned.experiment,
        assigned.customer_id,
        assigned.arm,
        assigned.risk_tier,
        assigned.churn_probability,
        assigned.clv_12m,
        assigned.list_date,
        assigned.template,
        assigned.holdout_share,
        assigned.max_window_days,
        assigned.is_first_listing,
        exposures.first_exposed_day
    from assigned
    left join exposures
        on
            assigned.run_id = exposures.run_id
            and assigned.play = exposures.play
            and assigned.customer_id = exposures.customer_id

)

select * from final
