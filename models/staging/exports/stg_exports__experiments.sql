{# Each play of each outreach run with its holdout settings, one row per outcome window. #}

with

source as (

    {{ source_or_empty('exports', 'experiments', {
        'run_id': 'varchar', 'play': 'varchar', 'experiment': 'varchar', 'template': 'varchar',
        'holdout_share': 'double', 'outcome_windows': 'integer[]', 'as_of_date': 'date',
    }) }}

),

windows as (

    select
        run_id,
        play,
        experiment,
        template,
        holdout_share,
        cast(as_of_date as date) as list_date,
        {{ unnest_list('outcome_windows') }} as window_days
    from source

),

final as (

    select
        run_id,
        play,
        experiment,
        template,
        holdout_share,
        list_date,
        cast(window_days as integer) as window_days
    from windows

)

select * from final
