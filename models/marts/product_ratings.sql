{#
    One row per reviewed product: its name and category (from order lines) and its ratings
    over all time. The dashboard ranks products by rating within the filters from
    fct_feedback and takes the names from here.
#}

with

reviews as (

    select * from {{ ref('stg_reviews__reviews') }}

),

order_items as (

    select * from {{ ref('stg_shop__order_items') }}

),

-- one name per product: the most recent order line's wording would need a join to orders,
-- and names rarely change, so the alphabetically last is taken (deterministic)
products as (

    select
        product_id,
        max(product_name) as product_name,
        max(category) as category
    from order_items
    group by product_id

),

ratings as (

    select
        product_id,
        count(*) as reviews_count,
        avg(cast(rating as {{ type_double() }})) as avg_rating,
        count(case when rating <= 2 then 1 end) as low_ratings_count,
        max(created_at) as last_reviewed_at
    from reviews
    group by product_id

),

final as (

    select
        ratings.product_id,
        products.product_name,
        products.category,
        ratings.reviews_count,
        ratings.avg_rating,
        ratings.low_ratings_count,
        {{ safe_divide('ratings.low_ratings_count', 'ratings.reviews_count') }} as low_rating_rate,
        ratings.last_reviewed_at
    from ratings
    left join products
        on ratings.product_id = products.product_id

)

select * from final
