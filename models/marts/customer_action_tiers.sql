{#
    Tiers to act on, beside the calibrated churn probability: customers of the active base
    (last order within action_tier_active_days of the scores' date) ranked by expected value at
    risk; the top action_tier_high_share are `high`, down to action_tier_medium_share `medium`,
    the rest `low`; customers outside the active base are `dormant`. See
    models/marts/customer_action_tiers.yml.
#}
{%- set active_days = var('action_tier_active_days', 365) -%}
{%- set high_share = var('action_tier_high_share', 0.05) -%}
{%- set medium_share = var('action_tier_medium_share', 0.20) %}

with

scores as (

    select * from {{ ref('stg_ml__churn_scores') }}

),

customers as (

    select
        customer_id,
        last_order_at
    from {{ ref('dim_customers') }}

),

scored as (

    select
        scores.customer_id,
        scores.scores_as_of_date,
        scores.churn_probability,
        scores.risk_tier,
        scores.clv_12m,
        scores.churn_probability * coalesce(scores.clv_12m, 0) as value_at_risk,
        {{ dbt.datediff('customers.last_order_at', 'scores.scores_as_of_date', 'day') }}
            as days_since_last_order
    from scores
    left join customers on scores.customer_id = customers.customer_id

),

flagged as (

    select
        *,
        coalesce(days_since_last_order <= {{ active_days }}, false) as is_active
    from scored

),

ranked as (

    select
        *,
        case
            when is_active
                then row_number() over (
                        partition by is_active
                        order by value_at_risk desc, churn_probability desc, customer_id asc
                    )
        end as action_rank,
        count(case when is_active then 1 end) over () as active_customers
    from flagged

),

final as (

    select
        customer_id,
        scores_as_of_date,
        churn_probability,
        risk_tier,
        clv_12m,
        value_at_risk,
        days_since_last_order,
        is_active,
        action_rank,
        case
            when not is_active then 'dormant'
            when action_rank <= ceil({{ high_share }} * active_customers) then 'high'
            when action_rank <= ceil({{ medium_share }} * active_customers) then 'medium'
            else 'low'
        end as action_tier
    from ranked

)

select * from final
