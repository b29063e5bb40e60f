with

source as (

    select * from {{ source('identity', '_identity_match') }}

),

final as (

    select
        source as source_name,
        platform,
        rows as rows_count,
        matched as matched_count,
        unmatched as unmatched_count,
        match_rate,
        resolved_at
    from source

)

select * from final
