{#
    One row per piece of customer feedback: survey answers (NPS, CSAT, CES) and product
    reviews, on one scale of sentiment so the dashboard can list detractor comments and low
    reviews together. The bands (sentiment, NPS band) come from seeds/feedback_bands.csv:
    surveys through int_survey_responses_banded, reviews here. is_detractor / is_promoter are
    the NPS bands as flags; is_dissatisfied is the outreach rule "an NPS detractor or a
    negative CSAT answer" (docs/kpis.md, "Feedback rules").
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

review_bands as (

    select * from {{ ref('feedback_bands') }}
    where feedback_type = 'review'

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
        survey_responses.sentiment,
        survey_comments.comment,
        survey_responses.responded_at as submitted_at
    from survey_responses
    left join survey_comments
        on survey_responses.response_id = survey_comments.response_id

),

product_reviews as (

    select
        'review:' || reviews.review_id as feedback_key,
        reviews.review_id as source_id,
        'review' as feedback_type,
        reviews.customer_id,
        reviews.order_id,
        reviews.product_id,
        reviews.rating as score,
        cast(null as {{ dbt.type_string() }}) as nps_band,
        review_bands.sentiment,
        case
            when reviews.title is not null and reviews.body is not null
                then reviews.title || ' — ' || reviews.body
            else coalesce(reviews.title, reviews.body)
        end as comment,
        reviews.created_at as submitted_at
    from reviews
    left join review_bands
        on reviews.rating between review_bands.score_min and review_bands.score_max

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
        {{ month_start('submitted_at') }} as submitted_month,
        coalesce(nps_band = 'detractor', false) as is_detractor,
        coalesce(nps_band = 'promoter', false) as is_promoter,
        coalesce(feedback_type in ('nps', 'csat') and sentiment = 'negative', false) as is_dissatisfied
    from unioned

)

select * from final
