{#
    One row: the product-journey thresholds (macros/product_journey.sql), for the readers
    outside dbt (the recommender, the dashboard) so they never restate them.
#}

with

final as (

    select
        cast({{ journey_min_customers() }} as integer) as min_customers,
        cast({{ consumable_min_rebuy_rate() }} as {{ type_double() }}) as consumable_min_rebuy_rate

)

select * from final
