{#
    retain's incremental strategies on Spark with plain Parquet tables.

    retain's incremental models name `delete+insert` (replace the rows whose unique key comes
    back) or, in a backfill, `replace_range` (also drop every row in the range). Spark offers
    append, merge, insert_overwrite and microbatch; `merge` needs Delta Lake, Iceberg or Hudi,
    and `append` would keep the old version of every key. On Parquet the one operation that
    replaces rows is INSERT OVERWRITE, so both strategies become a rewrite:

      1. stage (a Parquet table `<model>__dbt_stage`) = the new rows
         + the kept rows of the rewritten part that are neither replaced (same key) nor in
           the backfill range;
      2. INSERT OVERWRITE the model from the stage: the whole table, or with `partition_by`
         only the partitions that hold a new or a replaced row (dynamic partition overwrite);
         a rewritten partition left with no row is dropped;
      3. drop the stage.

    The stage exists because Spark cannot overwrite a table in a statement that reads it.

    A run killed during step 2 leaves the model partly rewritten (Parquet has no
    transactions), and the stage behind. Spark registers a table created from a query only
    after all its files are written, so a stage still registered holds every row the model
    should have had: the next run over the model finishes that overwrite first (step 0), then
    goes on as usual. (No retain model is partitioned on Spark; with `partition_by` a run
    killed while dropping emptied partitions could keep some of them: the finishing step stops
    with a message asking for a full refresh of the model in that case.)
    Same rows as DuckDB's delete+insert; the cost is a rewrite of the table (or of the
    touched partitions) instead of a delete. On a cluster with Delta Lake or Iceberg the same
    models would run these strategies as `delete from ... ; insert into ...` in one
    transaction (or `merge`): see docs/scale-out.md.

    These two macros override dbt-spark's own (the root project's macros win over an
    adapter's), keeping its strategies for any model that names them.
#}

{% macro dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format) -%}
    {%- if raw_strategy in retain_rewrite_strategies() -%}
        {{ return(raw_strategy) }}
    {%- endif -%}
    {{ return(dbt.dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format)) }}
{%- endmacro %}

{% macro dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates) -%}
    {%- if strategy in retain_rewrite_strategies() -%}
        {{ return(spark_rewrite_incremental_sql(
            source, target, unique_key,
            incremental_predicates if strategy == 'replace_range' else none
        )) }}
    {%- endif -%}
    {{ return(dbt.dbt_spark_get_incremental_sql(
        strategy, source, target, existing, unique_key, incremental_predicates
    )) }}
{%- endmacro %}

{# The strategies retain implements on Spark by rewriting (see above). #}
{% macro retain_rewrite_strategies() -%}
    {{ return(['delete+insert', 'replace_range']) }}
{%- endmacro %}

{#
    Runs steps 1 and 3 of the rewrite itself and returns the statement of step 2, which the
    incremental materialization runs as its `main` statement. `range_predicates`: the
    backfill range of `replace_range` (none for delete+insert).
#}
{% macro spark_rewrite_incremental_sql(source, target, unique_key, range_predicates) -%}
    {%- if not unique_key -%}
        {{ exceptions.raise_compiler_error(
            "the delete+insert and replace_range strategies need a unique_key (model " ~ target ~ ")"
        ) }}
    {%- endif -%}
    {%- set keys = [unique_key] if unique_key is string else unique_key -%}
    {%- set predicates = [range_predicates] if range_predicates is string else (range_predicates or []) -%}
    {%- set partitions = config.get('partition_by') or [] -%}
    {%- set partitions = [partitions] if partitions is string else partitions -%}
    {%- set stage = target.incorporate(path={"identifier": target.identifier ~ '__dbt_stage'}) -%}
    {%- set columns = adapter.get_columns_in_relation(target) | map(attribute='quoted') | join(', ') -%}

    {%- set replaced -%}
        (
            {%- if predicates %}coalesce(({{ predicates | join(') and (') }}), false) or {% endif -%}
            exists (
                select 1 from {{ source }} as incoming
                where
                    {%- for key in keys %}
                    {{ 'and ' if not loop.first }}incoming.{{ key }} = kept.{{ key }}
                    {%- endfor %}
            )
        )
    {%- endset -%}

    {%- set touched -%}
        {%- if partitions -%}
            ({{ partitions | join(', ') }}) in (
                select {{ partitions | join(', ') }} from {{ source }}
                union
                select {{ partitions | join(', ') }} from {{ target }} as kept where {{ replaced }}
            )
        {%- else -%}
            true
        {%- endif -%}
    {%- endset -%}

    {%- set leftover = adapter.get_relation(database=stage.database, schema=stage.schema,
                                            identifier=stage.identifier) -%}
    {%- if leftover is not none -%}
        {%- if partitions -%}
            {{ exceptions.raise_compiler_error(
                "a run stopped while rewriting " ~ target ~ " left its stage " ~ stage ~ "; the model is "
                ~ "partitioned, so run it once with a full refresh (retain run config full_refresh: true)"
            ) }}
        {%- endif -%}
        {{ log("retain: " ~ target ~ ": finishing the rewrite a stopped run left (from " ~ stage ~ ")", info=true) }}
        {%- do run_query('insert overwrite table ' ~ target ~ ' select ' ~ columns ~ ' from ' ~ leftover) -%}
        {%- do run_query('refresh table ' ~ target) -%}
        {%- do run_query('drop table if exists ' ~ stage) -%}
    {%- endif -%}
    {%- call statement('retain_rewrite_stage') -%}
        create table {{ stage }} using parquet
        {%- if partitions %} partitioned by ({{ partitions | join(', ') }}){% endif %}
        as
        select {{ columns }} from {{ source }}
        union all
        select {{ columns }} from {{ target }} as kept
        where {{ touched }} and not {{ replaced }}
    {%- endcall -%}

    {%- if partitions -%}
        {#- a rewritten partition left without rows (an erased range) is not overwritten: drop it -#}
        {%- set emptied = run_query(
            'select distinct ' ~ (partitions | join(', ')) ~ ' from ' ~ target ~ ' as kept where ' ~ replaced
            ~ ' except select ' ~ (partitions | join(', ')) ~ ' from ' ~ stage
        ) -%}
        {%- for row in emptied -%}
            {%- set spec = [] -%}
            {%- for name in partitions -%}
                {%- do spec.append(name ~ " = '" ~ row[loop.index0] ~ "'") -%}
            {%- endfor -%}
            {%- do run_query('alter table ' ~ target ~ ' drop if exists partition (' ~ (spec | join(', ')) ~ ')') -%}
        {%- endfor -%}
    {%- endif -%}

    {%- set overwrite -%}
        insert overwrite table {{ target }}
        {%- if partitions %} partition ({{ partitions | join(', ') }}){% endif %}
        select {{ columns }} from {{ stage }}
    {%- endset -%}
    {%- do run_query(overwrite) -%}
    {%- do run_query('drop table if exists ' ~ stage) -%}
    {{ return('refresh table ' ~ target) }}
{%- endmacro %}
