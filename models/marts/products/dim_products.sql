{#
    One row per product bought in a valid order: its name and category, how many customers
    bought it, and whether they buy it again (the consumable rule, macros/product_journey.sql).
#}

with

-- reads fct_order_lines directly, not through a shared CTE: DuckDB materialises a CTE used
-- more than once, which copied all 3 million lines at 1M customers before the first group-by
-- one name per product: the alphabetically last (deterministic; names rarely change)
names as (

    select
        product_id,
        max(product_name) as product_name,
        max(category) as category,
        count(distinct order_id) as orders,
        sum(quantity) as units,
        sum(line_amount) as revenue
    from {{ ref('fct_order_lines') }}
    group by product_id

),

customer_purchases as (

    select
        customer_id,
        max(purchase_number) as last_purchase_number
    from {{ ref('fct_order_lines') }}
    group by customer_id

),

customer_products as (

    select
        customer_id,
        product_id,
        min(purchase_number) as first_purchase_number,
        -- bought in two or more purchases: one aggregate, where counting distinct numbers took two
        max(purchase_number) > min(purchase_number) as is_rebought,
        max(case when is_returned then 1 else 0 end) = 1 as has_returned
    from {{ ref('fct_order_lines') }}
    group by customer_id, product_id

),

buyers as (

    select
        customer_products.product_id,
        count(*) as buyers,
        -- buyers who ordered anything after first buying the product
        count(
            case
                when customer_purchases.last_purchase_number > customer_products.first_purchase_number
                    then 1
            end
        ) as buyers_with_later_purchase,
        count(case when customer_products.is_rebought then 1 end) as rebuyers,
        count(case when customer_products.has_returned then 1 end) as returning_buyers
    from customer_products
    inner join customer_purchases
        on customer_products.customer_id = customer_purchases.customer_id
    group by customer_products.product_id

),

rules as (

    select * from {{ ref('product_journey_rules') }}

),

final as (

    select
        names.product_id,
        names.product_name,
        names.category,
        names.orders,
        names.units,
        names.revenue,
        buyers.buyers,
        buyers.buyers_with_later_purchase,
        buyers.rebuyers,
        {{ safe_divide('buyers.rebuyers', 'buyers.buyers_with_later_purchase') }} as rebuy_rate,
        coalesce(
            buyers.buyers_with_later_purchase >= rules.min_customers
            and {{ safe_divide('buyers.rebuyers', 'buyers.buyers_with_later_purchase') }}
            >= rules.consumable_min_rebuy_rate,
            false
        ) as is_consumable,
        {{ safe_divide('buyers.returning_buyers', 'buyers.buyers') }} as return_rate
    from names
    inner join buyers
        on names.product_id = buyers.product_id
    cross join rules

)

select * from final
