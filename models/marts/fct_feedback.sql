{#
    One row per piece of customer feedback: survey answers (NPS, CSAT, CES) and product
    reviews, on one scale of sentiment so the dashboard can list detractor comments and low
    reviews together. Sentiment: NPS 9-10 positive, 7-8 neutral, 0-6 negative (a detractor);
    CSAT and review ratings 4-5 positive, 3 neutral, 1-2 negative; CES 5-7 positive,
    4 neutral, 1-3 negative.
#}

with

survey_responses as (

    select * from {{ ref('int_survey_responses_banded') }}

),

survey_comments as (

    select
        response_id,
        comment
    from {{ ref('stg_surveys__survey_responses') }}

),

reviews as (

    select * from {{ ref('stg_reviews__reviews') }}

),

surveys as (

    select
        'survey:' || survey_responses.response_id as feedback_key,
        survey_responses.response_id as source_id,
        survey_responses.survey_type as feedback_type,
        survey_responses.customer_id,
        survey_responses.order_id,
        cast(null as {{ dbt.type_string() }}) as product_id,
        survey_responses.score,
        survey_responses.nps_band,
        case
            when survey_responses.survey_type = 'nps' and survey_responses.score >= 9 then 'positive'
            when survey_responses.survey_type = 'nps' and survey_responses.score >= 7 then 'neutral'
            when survey_responses.survey_type = 'nps' then 'negative'
            when survey_responses.survey_type = 'ces' and survey_responses.score >= 5 then 'positive'
            when survey_responses.survey_type = 'ces' and survey_responses.score = 4 then 'neutral'
            when survey_responses.survey_type = 'ces' then 'negative'
            when survey_responses.score >= 4 then 'positive'
            when survey_responses.score = 3 then 'neutral'
            else 'negative'
        end as sentiment,
        survey_comments.comment,
        survey_responses.responded_at as submitted_at
    from survey_responses
    left join survey_comments
        on survey_responses.response_id = survey_comments.response_id

),

product_reviews as (

    select
        'review:' || review_id as feedback_key,
        review_id as source_id,
        'review' as feedback_type,
        customer_id,
        order_id,
        product_id,
        rating as score,
        cast(null as {{ dbt.type_string() }}) as nps_band,
        case
            when rating >= 4 then 'positive'
            when rating = 3 then 'neutral'
            else 'negative'
        end as sentiment,
        case
            when title is not null and body is not null then title || ' — ' || body
            else coalesce(title, body)
        end as comment,
        created_at as submitted_at
    from reviews

),

unioned as (

    select * from surveys
    union all
    select * from product_reviews

),

final as (

    select
        feedback_key,
        source_id,
        feedback_type,
        customer_id,
        order_id,
        product_id,
        score,
        nps_band,
        sentiment,
        comment,
        submitted_at,
        {{ month_start('submitted_at') }} as submitted_month
    from unioned

)

select * from final
