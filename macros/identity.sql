{% macro resolved_customer_id(column) -%}
    {#-
        The retain customer id a row's customer key resolves to (raw._customer_identity:
        a key without an email joins the email key of the same platform id or phone, a
        platform id of a person keyed by email joins that email key), else the key itself.
        Staging reads every customer_id through it, so the marts count one customer per
        person across platforms. An incremental model holding a key that a later file links
        to another id is rebuilt (pipelines/defs/dbt/assets.py, docs/importing.md).
    -#}
    coalesce(
        (
            -- columns renamed so that `{{ column }}` can only mean the outer row's
            select min(identity_keys.identity_customer_id)
            from (
                select customer_key as identity_key, customer_id as identity_customer_id
                from {{ source('identity', '_customer_identity') }}
            ) as identity_keys
            where identity_keys.identity_key = trim({{ column }})
        ),
        trim({{ column }})
    )
{%- endmacro %}
