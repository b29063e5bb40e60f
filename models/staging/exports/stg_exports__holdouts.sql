{# Held-out customers of each outreach run: matched a play, not contacted, never exported. #}

with

source as (

    {{ source_or_empty('exports', 'holdouts', {
        'run_id': 'varchar', 'play': 'varchar', 'customer_id': 'varchar', 'as_of_date': 'date',
        'risk_tier': 'varchar', 'churn_probability': 'double', 'clv_12m': 'double',
    }) }}

),

final as (

    select
        run_id,
        play,
        customer_id,
        cast(as_of_date as date) as list_date,
        risk_tier,
        churn_probability,
        clv_12m
    from source

)

select * from final
