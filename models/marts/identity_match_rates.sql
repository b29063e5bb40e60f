with

match_rates as (

    select * from {{ ref('stg_identity__match_rates') }}

),

final as (

    select
        source_name,
        platform,
        rows_count,
        matched_count,
        unmatched_count,
        match_rate,
        resolved_at
    from match_rates

)

select * from final
