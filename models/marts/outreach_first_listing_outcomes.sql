{#
    One row per play, experiment, listed customer and outcome window, at the customer's first
    listing in the experiment, once the window has passed: the arm, what the list knew then
    (risk tier, churn probability, 12-month CLV) and the outcome. What an uplift model learns
    from (ml/uplift.py).
#}

with

outcomes as (

    select * from {{ ref('int_outreach_outcomes') }}
    where is_first_listing and is_window_complete

),

final as (

    select
        play,
        experiment,
        customer_id,
        window_days,
        arm,
        list_date,
        risk_tier,
        churn_probability,
        clv_12m,
        is_converted,
        revenue_in_window
    from outcomes

)

select * from final
