{#
    On Spark, the raw layer is the lake's Parquet folders (pipelines/ingest/lake.py):
    `<RETAIN_LAKE>/raw/<table>/load-<id>/` per load. Before every dbt invocation
    (`on-run-start` in dbt_project.yml) each source table of schema `raw` is registered over
    its folder with the column types its YAML declares (generated from the data contract),
    so an empty folder is an empty table and a new contract column appears without a
    migration. Registering is metadata only (external tables: dropping one leaves its files;
    a new load's folder is read by the next query, since Spark lists a table's files in each
    new session).

    The statements are the same from one step to the next unless the contract, the lake or
    the sources retain put in the lake changed, and on a local catalog each costs a few tenths
    of a second (about 30 per step). So the MD5 of each schema's statements (`raw`, `ml`,
    `exports`) is kept as a property of database `raw`, set only after every statement ran
    (and cleared before the first): when it matches and every table is there, the step skips
    them (three to five statements in all instead). A full run's later steps, which find the
    scores and lists scoring and outreach just wrote, register those alone.
    DuckDB reads its own raw schema: nothing to do there.
#}
{% macro register_raw_sources() -%}
    {{ return(adapter.dispatch('register_raw_sources', 'retain')()) }}
{%- endmacro %}

{% macro default__register_raw_sources() -%}
{%- endmacro %}

{% macro spark__register_raw_sources() -%}
    {%- if execute -%}
        {%- set root = env_var('RETAIN_SPARK_RAW', '') | trim -%}
        {%- if not root -%}
            {{ exceptions.raise_compiler_error(
                "RETAIN_SPARK_RAW is not set: run dbt on Spark through retain (retain run, retain docs), "
                ~ "which points it at the lake's raw folder"
            ) }}
        {%- endif -%}
        {#- per schema: the statements that register its sources, and the tables they leave -#}
        {%- set statements = {'raw': []} -%}
        {%- set expected = {'raw': []} -%}
        {%- for source in graph.sources.values() if source.schema == 'raw' -%}
            {%- set columns = [] -%}
            {%- for column in source.columns.values() -%}
                {%- do columns.append('`' ~ column.name ~ '` ' ~ spark_type(column.data_type)) -%}
            {%- endfor -%}
            {%- do statements['raw'].append('drop table if exists raw.`' ~ source.identifier ~ '`') -%}
            {%- do statements['raw'].append(
                'create table raw.`' ~ source.identifier ~ '` (' ~ (columns | join(', ')) ~ ') using parquet'
                ~ " options (recursiveFileLookup 'true')"
                ~ " location '" ~ root ~ '/' ~ source.identifier ~ "'"
            ) -%}
            {%- do expected['raw'].append(source.identifier | lower) -%}
        {%- endfor -%}
        {#- sources outside raw (what scoring and outreach wrote): registered when retain put them
            in the lake (RETAIN_SPARK_SOURCES), else absent, so `source_or_empty` reads nothing -#}
        {%- set present = (env_var('RETAIN_SPARK_SOURCES', '') | trim).split(',') -%}
        {%- set lake = env_var('RETAIN_LAKE', '') | trim -%}
        {%- for source in graph.sources.values() if source.schema != 'raw' -%}
            {%- set name = source.schema ~ '.`' ~ source.identifier ~ '`' -%}
            {%- do statements.setdefault(source.schema, []).append('drop table if exists ' ~ name) -%}
            {%- do expected.setdefault(source.schema, []) -%}
            {%- if (source.schema ~ '.' ~ source.identifier) in present -%}
                {%- do statements[source.schema].append(
                    'create table ' ~ name ~ " using parquet options (recursiveFileLookup 'true') location '"
                    ~ lake ~ '/sources/' ~ source.schema ~ '/' ~ source.identifier ~ "'"
                ) -%}
                {%- do expected[source.schema].append(source.identifier | lower) -%}
            {%- endif -%}
        {%- endfor -%}
        {#- each schema's fingerprint is a property of database raw: one request reads them all -#}
        {%- do run_query('create database if not exists raw') -%}
        {%- set properties = namespace(text='') -%}
        {%- for row in run_query('describe database extended raw').rows if row[0] == 'Properties' -%}
            {%- set properties.text = row[1] -%}
        {%- endfor -%}
        {%- for schema, wanted in statements.items() -%}
            {%- set fingerprint = local_md5(wanted | join(';\n')) -%}
            {%- set key = 'retain_sources_md5_' ~ schema -%}
            {%- set state = namespace(current=((key ~ ',' ~ fingerprint) in properties.text)) -%}
            {%- if state.current and expected[schema] -%}
                {%- set have = run_query('show tables in ' ~ schema).columns['tableName'].values() | map('lower') | list -%}
                {%- for table in expected[schema] if table not in have -%}
                    {%- set state.current = false -%}
                {%- endfor -%}
            {%- endif -%}
            {%- if not state.current -%}
                {%- do run_query("alter database raw set dbproperties ('" ~ key ~ "' = '')") -%}
                {%- do run_query('create database if not exists ' ~ schema) -%}
                {%- for statement in wanted -%}
                    {%- do run_query(statement) -%}
                {%- endfor -%}
                {%- do run_query("alter database raw set dbproperties ('" ~ key ~ "' = '" ~ fingerprint ~ "')") -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}

{#
    A column type written for DuckDB, as the engine reads it: unchanged on DuckDB, Spark's
    name on Spark (`varchar` -> string, `integer[]` -> array<int>).
#}
{% macro sql_type(data_type) -%}
    {{ return(adapter.dispatch('sql_type', 'retain')(data_type)) }}
{%- endmacro %}

{% macro default__sql_type(data_type) -%}
    {{ return(data_type) }}
{%- endmacro %}

{% macro spark__sql_type(data_type) -%}
    {%- set name = data_type | lower | trim -%}
    {%- if name.endswith('[]') -%}
        {{ return('array<' ~ spark__sql_type(name[:-2]) ~ '>') }}
    {%- endif -%}
    {{ return(spark_type(name)) }}
{%- endmacro %}

{# The Spark type of a contract (DuckDB) column type: text and JSON are strings. #}
{% macro spark_type(data_type) -%}
    {%- set name = (data_type or 'varchar') | lower | trim -%}
    {%- if name in ['varchar', 'text', 'json'] or name.endswith('[]') -%}
        {{ return('string') }}
    {%- elif name in ['integer', 'int'] -%}
        {{ return('int') }}
    {%- endif -%}
    {{ return(name) }}
{%- endmacro %}
