with

responses as (

    select * from {{ ref('stg_surveys__survey_responses') }}

),

final as (

    select
        response_id,
        customer_id,
        order_id,
        survey_type,
        score,
        responded_at,
        {{ month_start('responded_at') }} as responded_month,
        case
            when survey_type <> 'nps' then null
            when score >= 9 then 'promoter'
            when score >= 7 then 'passive'
            else 'detractor'
        end as nps_band,
        case when survey_type = 'csat' then score >= 4 end as is_csat_satisfied,
        -- the customer's latest answer to this kind of survey (ties: highest response_id)
        row_number() over (
            partition by customer_id, survey_type
            order by responded_at desc, response_id desc
        ) = 1 as is_latest_of_type
    from responses

)

select * from final
