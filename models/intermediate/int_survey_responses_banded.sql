with

responses as (

    select * from {{ ref('stg_surveys__survey_responses') }}

),

-- the score bands of each kind of survey: seeds/feedback_bands.csv, the one definition of
-- promoter / passive / detractor and of positive / neutral / negative
bands as (

    select * from {{ ref('feedback_bands') }}

),

final as (

    select
        responses.response_id,
        responses.customer_id,
        responses.order_id,
        responses.survey_type,
        responses.score,
        responses.responded_at,
        {{ month_start('responses.responded_at') }} as responded_month,
        -- NPS answers only (the seed's other rows leave it empty)
        case when responses.survey_type = 'nps' then bands.nps_band end as nps_band,
        bands.sentiment,
        case when responses.survey_type = 'csat' then bands.sentiment = 'positive' end as is_csat_satisfied,
        -- the customer's latest answer to this kind of survey (ties: highest response_id)
        row_number() over (
            partition by responses.customer_id, responses.survey_type
            order by responses.responded_at desc, responses.response_id desc
        ) = 1 as is_latest_of_type
    from responses
    left join bands
        on
            responses.survey_type = bands.feedback_type
            and responses.score between bands.score_min and bands.score_max

)

select * from final
