{{
    config(
        materialized='incremental',
        unique_key='message_id',
        incremental_strategy=backfill_strategy('delete+insert'),
        incremental_predicates=backfill_predicates('sent_at'),
        on_schema_change='sync_all_columns',
    )
}}

{#
    A backfill (vars backfill_start/backfill_end, see macros/backfill.sql) reads every load
    and writes the messages sent in the range, plus the messages of loads since the last run.
#}

with

source as (

    select * from {{ source('messaging', 'messages') }}
    {% if is_incremental() and not is_backfill() %}
        -- only loads newer than the newest one already kept here; messages have no
        -- updated_at, so a newer load always wins over the version kept here
        where {{ is_newer_than_this('_load_id') }}
    {% endif %}

),

-- every row with the retain customer id its customer key resolves to (macros/identity.sql)
identified as (

    {{ with_identity('source') }}

),

renamed as (

    select
        trim(message_id) as message_id,
        {{ resolved_customer_id('customer_id') }} as customer_id,
        nullif(trim(order_id), '') as order_id,
        lower(trim(channel)) as channel,
        -- a missing direction means outbound (shop to customer)
        coalesce(nullif(lower(trim(direction)), ''), 'outbound') as direction,
        lower(trim(message_type)) as message_type,
        nullif(trim(campaign), '') as campaign,
        cast(sent_at as timestamp) as sent_at,
        cast(delivered_at as timestamp) as delivered_at,
        cast(opened_at as timestamp) as opened_at,
        cast(clicked_at as timestamp) as clicked_at,
        cast(unsubscribed_at as timestamp) as unsubscribed_at,
        _load_id,
        _loaded_at,
        _source_file,
        _source_row,
        {{ invocation_timestamp() }} as _built_at
    from identified

),

-- The message ids read here more than once, with the version staging keeps (the latest load,
-- then the last row of its file: the rule of `latest_version_rank`). Nearly every id has one
-- version, so ranking every row with a window (which carries all columns through a sort of
-- 24M rows) cost most of this model's time; a narrow count per id finds the few that need it.
-- Reads the source again rather than the CTE `source`: DuckDB would copy a CTE used twice.
superseded as (

    select
        trim(message_id) as message_id,
        max({{ load_version('_load_id', '_source_row') }}) as kept
    from {{ source('messaging', 'messages') }}
    {% if is_incremental() and not is_backfill() %}
        where {{ is_newer_than_this('_load_id') }}
    {% endif %}
    group by trim(message_id)
    having count(*) > 1

),

versioned as (

    select
        renamed.*,
        case
            when superseded.kept is null then 1
            when {{ load_version('renamed._load_id', 'renamed._source_row') }} = superseded.kept then 1
            else 2
        end as version_rank
    from renamed
    left join superseded on renamed.message_id is not distinct from superseded.message_id
    {% if is_backfill() %}
        -- every version of the messages that final may write, so only those are ranked
        where
            renamed.message_id in (
                select any_version.message_id from renamed as any_version
                where
                    {{ in_backfill_range('any_version.sent_at') }}
                    {% if is_incremental() %}
                        or {{ is_newer_than_this('any_version._load_id', '_load_id') }}
                    {% endif %}
                {% if is_incremental() %}
                    union
                    select kept.message_id from {{ this }} as kept
                    where {{ in_backfill_range('kept.sent_at') }}
                {% endif %}
            )
    {% endif %}

),

final as (

    select
        message_id,
        customer_id,
        order_id,
        channel,
        direction,
        message_type,
        campaign,
        sent_at,
        delivered_at,
        opened_at,
        clicked_at,
        unsubscribed_at,
        _load_id,
        _loaded_at,
        _source_file,
        _source_row,
        _built_at
    from versioned
    where
        version_rank = 1
        {% if is_backfill() %}
            and (
                {{ in_backfill_range('sent_at') }}
                {% if is_incremental() %}
                    -- loads since the last run, as an incremental run would take them
                    or {{ is_newer_than_this('_load_id') }}
                    -- a message kept in the range whose sent_at has since moved out of it
                    or message_id in (
                        select kept.message_id from {{ this }} as kept
                        where {{ in_backfill_range('kept.sent_at') }}
                    )
                {% endif %}
            )
        {% endif %}

)

select * from final
