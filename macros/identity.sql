{#
    The retain customer id a row's customer key resolves to (raw._customer_identity: a key
    without an email joins the email key of the same platform id or phone, a platform id of a
    person keyed by email joins that email key), else the key itself. Staging reads every
    customer_id through it, so the marts count one customer per person across platforms. An
    incremental model holding a key that a later file links to another id is rebuilt
    (pipelines/defs/dbt/assets.py, docs/importing.md).

    Used in two steps: a CTE that adds the resolved id to every row of a source, then the
    column that renames it:

        identified as (
            {{ with_identity('source') }}
        ),
        renamed as (
            select {{ resolved_customer_id('customer_id') }} as customer_id, ...
            from identified
        )

    A join rather than a subquery per row: at 1M customers the 24M messages took 31 s to
    stage with the subquery and 23 s with the join (22 s without resolving at all), with
    the same rows.
#}

{#- Every row of `relation` and `identity_customer_id`, the id its trimmed customer_id resolves to (or NULL). -#}
{% macro with_identity(relation) -%}
    select
        {{ relation }}.*,
        resolved_identity.identity_customer_id
    from {{ relation }}
    left join (
        select
            customer_key as identity_key,
            min(customer_id) as identity_customer_id
        from {{ source('identity', '_customer_identity') }}
        group by customer_key
    ) as resolved_identity on trim({{ relation }}.customer_id) = resolved_identity.identity_key
{%- endmacro %}

{#- The resolved customer id, in a select from `with_identity`: the identity map's, else the trimmed key. -#}
{% macro resolved_customer_id(column) -%}
    coalesce(identity_customer_id, trim({{ column }}))
{%- endmacro %}
