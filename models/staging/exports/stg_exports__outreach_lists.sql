{# Contacted customers of each outreach run (the list the exports carry). #}

with

source as (

    {{ source_or_empty('exports', 'outreach_lists', {
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
