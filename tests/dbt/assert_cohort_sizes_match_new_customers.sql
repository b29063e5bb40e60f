{{ config(meta={'dagster': {'ref': {'name': 'retention_cohorts'}}}) }}
-- Every cohort's size equals that month's new_customers in kpi_monthly, and every customer
-- with a valid order is in exactly one cohort.
with

cohorts as (

    select
        cohort_month,
        cohort_size
    from {{ ref('retention_cohorts') }}
    where months_since_first_order = 0

),

kpis as (

    select
        month,
        new_customers
    from {{ ref('kpi_monthly') }}
    where new_customers > 0

),

buyers as (

    select count(*) as customers
    from {{ ref('dim_customers') }}
    where orders_count > 0

)

select
    coalesce(cohorts.cohort_month, kpis.month) as month,
    cohorts.cohort_size,
    kpis.new_customers
from cohorts
full outer join kpis
    on cohorts.cohort_month = kpis.month
where coalesce(cohorts.cohort_size, -1) <> coalesce(kpis.new_customers, -1)

union all

select
    null as month,
    (select sum(cohorts.cohort_size) from cohorts) as cohort_size,
    buyers.customers as new_customers
from buyers
where buyers.customers <> coalesce((select sum(cohorts.cohort_size) from cohorts), 0)
