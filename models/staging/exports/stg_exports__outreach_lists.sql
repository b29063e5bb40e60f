{# Contacted customers of each outreach run (the list the exports carry). #}

with

source as (

    {{ source_or_empty('exports', 'outreach_lists', {
        'run_id': 'varchar', 'play': 'varchar', 'customer_id': 'varchar', 'as_of_date': 'date',
    }) }}

),

final as (

    select
        run_id,
        play,
        customer_id,
        cast(as_of_date as date) as list_date
    from source

)

select * from final
