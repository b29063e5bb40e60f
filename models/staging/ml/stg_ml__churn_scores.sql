{# The latest churn scores, one row per customer (ml.churn_scores, written by the scoring step). #}

with

source as (

    {{ source_or_empty('ml', 'churn_scores', {
        'customer_id': 'varchar', 'as_of_date': 'date', 'churn_probability': 'double',
        'risk_tier': 'varchar', 'clv_12m': 'double', 'p_alive': 'double',
    }) }}

),

final as (

    select
        customer_id,
        cast(as_of_date as date) as scores_as_of_date,
        churn_probability,
        risk_tier,
        clv_12m,
        p_alive
    from source

)

select * from final
