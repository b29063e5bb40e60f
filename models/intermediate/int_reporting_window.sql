{#
    One row: the end of the data (latest ordered_at of any order) and the as-of date that
    "days since" measures are computed for: dbt var `as_of_date` when set, else the date of
    the end of the data. Never now(): builds stay deterministic and backfills honest.
#}
{%- set as_of_date = var('as_of_date', '') -%}

with

orders as (

    select ordered_at from {{ ref('stg_shop__orders') }}

),

bounds as (

    select max(ordered_at) as data_end_at
    from orders

),

final as (

    select
        data_end_at,
        {% if as_of_date -%}
            cast('{{ as_of_date }}' as date)
        {%- else -%}
            {{ to_date('data_end_at') }}
        {%- endif %} as as_of_date
    from bounds

)

select * from final
