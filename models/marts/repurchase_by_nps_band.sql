with

survey_responses as (

    select * from {{ ref('int_survey_responses_banded') }}

),

orders as (

    select * from {{ ref('fct_orders') }}

),

reporting_window as (

    select * from {{ ref('int_reporting_window') }}

),

-- the NPS bands of seeds/feedback_bands.csv, highest scores first
bands as (

    select
        nps_band,
        cast(row_number() over (order by score_min desc) as integer) as band_order
    from {{ ref('feedback_bands') }}
    where feedback_type = 'nps'

),

-- NPS answers whose 90-day window has passed by the latest order in the data
observable_responses as (

    select
        survey_responses.response_id,
        survey_responses.customer_id,
        survey_responses.nps_band,
        survey_responses.responded_at
    from survey_responses
    cross join reporting_window
    where
        survey_responses.survey_type = 'nps'
        and {{ dbt.dateadd('day', 90, 'survey_responses.responded_at') }}
        <= reporting_window.data_end_at

),

repurchases as (

    {{ repurchased_within('observable_responses', 'response_id', 'responded_at') }}

),

per_band as (

    select
        observable_responses.nps_band,
        count(*) as responses,
        count(repurchases.response_id) as repurchased_90d
    from observable_responses
    left join repurchases
        on observable_responses.response_id = repurchases.response_id
    group by observable_responses.nps_band

),

final as (

    select
        bands.nps_band,
        coalesce(per_band.responses, 0) as responses,
        coalesce(per_band.repurchased_90d, 0) as repurchased_90d,
        {{ safe_divide('per_band.repurchased_90d', 'per_band.responses') }}
            as repurchase_rate_90d,
        bands.band_order
    from bands
    left join per_band
        on bands.nps_band = per_band.nps_band

)

select * from final
