"""Compare what the two engines built: every mart (and score) of Spark against DuckDB's.

`compare_schema(warehouse, "marts")` reads DuckDB's tables from the warehouse file and
Spark's from their Parquet folders in the lake (`pipelines.core.spark.table_path`), both
with DuckDB, so no JVM is needed to check a Spark build. Two tables are equal when they
have the same columns and the same rows (as a multiset): integers, decimals, text, dates
and timestamps exactly, floating point numbers within a relative 1e-9 (Spark's and
DuckDB's medians and sums may differ in the last bit). Columns that record when a row was
loaded or built (`_loaded_at`, `_built_at`, `scored_at`, ...), the training run that scored
it (`model_version`, a time-stamped id) or the run that listed it (`run_id`, and `cohort_id`,
which is the run's id for cohorts of one run) are left out.

Used by tests/test_spark.py and bench/bench_engines.py. `score_customers` runs churn scoring
on the configured engine (on Spark's workers with RETAIN_ENGINE=spark, `ml.spark_score`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from pipelines.core.warehouse import scratch

#: Columns that say when a row was loaded or written (or by which training run), not what it
#: holds: two runs of the same landing files differ there and nowhere else.
BUILD_TIME_COLUMNS = frozenset({
    "_built_at", "_loaded_at", "_source_loaded_at", "resolved_at", "scored_at", "published_at", "model_version",
    # the Dagster run that wrote an outreach list, and the outcome cohort named after that run
    "run_id", "cohort_id",
})
FLOAT_TYPES = ("DOUBLE", "FLOAT", "REAL")
RELATIVE_TOLERANCE = 1e-9


@dataclass
class TableDiff:
    """How one table differs between the engines (empty lists: equal)."""

    table: str
    rows: tuple[int, int]
    missing_columns: list[str] = field(default_factory=list)
    differing_columns: list[str] = field(default_factory=list)
    type_changes: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        """Same columns and same rows."""
        return self.rows[0] == self.rows[1] and not self.missing_columns and not self.differing_columns

    def __str__(self) -> str:
        if self.equal:
            return f"{self.table}: equal ({self.rows[0]} rows)"
        parts = [f"{self.table}: rows duckdb={self.rows[0]} spark={self.rows[1]}"]
        if self.missing_columns:
            parts.append(f"columns on one side only {self.missing_columns}")
        if self.differing_columns:
            parts.append(f"values differ in {self.differing_columns}")
        return "; ".join(parts)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def parquet_relation(folder: str | Path) -> str:
    """DuckDB table function reading a Spark table's folder (hive partitions included)."""
    path = str(folder).rstrip("/").replace("'", "''")
    return f"read_parquet('{path}/**/*.parquet', hive_partitioning = true, union_by_name = true)"


def compare_table(con: duckdb.DuckDBPyConnection, duck: str, spark: str, name: str) -> TableDiff:
    """Compare relation `duck` (DuckDB) with relation `spark` (Spark's Parquet) on `con`."""
    duck_types = {c: t for c, t, *_ in con.execute(f"DESCRIBE SELECT * FROM {duck}").fetchall()}
    spark_types = {c: t for c, t, *_ in con.execute(f"DESCRIBE SELECT * FROM {spark}").fetchall()}
    columns = [c for c in duck_types if c in spark_types and c not in BUILD_TIME_COLUMNS]
    missing = sorted((set(duck_types) ^ set(spark_types)) - BUILD_TIME_COLUMNS)
    counts = tuple(con.execute(f"SELECT count(*) FROM {rel}").fetchone()[0] for rel in (duck, spark))
    diff = TableDiff(name, counts, missing_columns=missing)
    diff.type_changes = [
        f"{c}: {duck_types[c]} -> {spark_types[c]}" for c in columns if duck_types[c] != spark_types[c]
    ]
    if counts[0] != counts[1] or not columns:
        return diff
    floats = {c for c in columns if duck_types[c] in FLOAT_TYPES or spark_types[c] in FLOAT_TYPES}
    # sort both sides the same way (floats rounded, so last-bit differences do not reorder rows)
    order = ", ".join(
        f"round({_quote(c)}, 6)" if c in floats else f"CAST({_quote(c)} AS VARCHAR)" for c in columns
    )
    select = ", ".join(
        f"CAST({_quote(c)} AS DOUBLE) AS {_quote(c)}" if c in floats else _quote(c) for c in columns
    )
    checks = []
    for c in columns:
        a, b = f"d.{_quote(c)}", f"s.{_quote(c)}"
        if c in floats:
            same = (f"({a} IS NULL AND {b} IS NULL) OR ({a} = {b}) OR "
                    f"abs({a} - {b}) <= {RELATIVE_TOLERANCE} * greatest(abs({a}), abs({b}))")
        else:
            same = f"{a} IS NOT DISTINCT FROM CAST({b} AS {duck_types[c]})"
        checks.append(f"count(*) FILTER (WHERE NOT ({same})) AS {_quote(c)}")
    sql = f"""
        WITH d AS (SELECT {select}, row_number() OVER (ORDER BY {order}) AS _n FROM {duck}),
             s AS (SELECT {select}, row_number() OVER (ORDER BY {order}) AS _n FROM {spark})
        SELECT {", ".join(checks)} FROM d JOIN s USING (_n)
    """
    bad = con.execute(sql).fetchone()
    diff.differing_columns = [c for c, n in zip(columns, bad, strict=True) if n]
    return diff


def _attach(con: duckdb.DuckDBPyConnection, path: Path, alias: str) -> None:
    con.execute(f"ATTACH '{str(path).replace(chr(39), chr(39) * 2)}' AS {alias} (READ_ONLY)")


def _tables(con: duckdb.DuckDBPyConnection, catalog: str, schema: str) -> dict[str, bool]:
    """Tables and views of `schema`: name -> is a view."""
    return {
        name: kind == "VIEW"
        for name, kind in con.execute(
            "SELECT table_name, table_type FROM information_schema.tables WHERE table_catalog = ? "
            "AND table_schema = ? ORDER BY 1",
            [catalog, schema],
        ).fetchall()
    }


def compare_schema(
    warehouse: Path, schema: str, tables: list[str] | None = None, spark_warehouse_dir: str | None = None
) -> list[TableDiff]:
    """Compare every table of `schema` in the DuckDB `warehouse` with Spark's in the lake.

    `spark_warehouse_dir`: Spark's `spark.sql.warehouse.dir` (default: this process's lake).
    A DuckDB view is compared with Spark's table of the same name; a view on both engines
    (an intermediate projection, no data of its own) is not compared.
    """
    from pipelines.core.spark import spark_settings

    root = Path(spark_warehouse_dir or spark_settings().warehouse_dir) / f"{schema}.db"
    con = scratch()
    _attach(con, warehouse, "duck")
    diffs = []
    views = _tables(con, "duck", schema)
    for name in tables or list(views):
        folder = root / name
        if not folder.exists() and views.get(name) and tables is None:
            continue  # a view on both engines
        if not folder.exists():
            diffs.append(TableDiff(f"{schema}.{name}", (-1, -1), missing_columns=["<no Spark table>"]))
            continue
        diffs.append(
            compare_table(con, f"duck.{_quote(schema)}.{_quote(name)}", parquet_relation(folder), f"{schema}.{name}")
        )
    con.close()
    return diffs


def compare_warehouses(duck: Path, other: Path, schema: str, tables: list[str] | None = None) -> list[TableDiff]:
    """Compare `schema` of two DuckDB warehouses (scores of the DuckDB and of the Spark run)."""
    con = scratch()
    _attach(con, duck, "duck")
    _attach(con, other, "other")
    names = tables or list(_tables(con, "duck", schema))
    diffs = [
        compare_table(con, f"duck.{_quote(schema)}.{_quote(n)}", f"other.{_quote(schema)}.{_quote(n)}", f"{schema}.{n}")
        for n in names
    ]
    con.close()
    return diffs


#: dbt's schemas, which the single-machine steps (training, outreach, publishing) read.
MODEL_SCHEMAS = ("staging", "intermediate", "marts")


def spark_tables(schema: str) -> dict[str, str]:
    """Spark's tables of `schema` in the lake: name -> folder (views have no folder)."""
    from pipelines.core.spark import spark_settings

    root = Path(spark_settings().warehouse_dir) / f"{schema}.db"
    if not root.is_dir():
        return {}
    return {
        p.name: str(p)
        for p in sorted(root.iterdir())
        if p.is_dir() and not p.name.endswith("__dbt_stage") and any(p.rglob("*.parquet"))
    }


def copy_models_to_warehouse(con: duckdb.DuckDBPyConnection, schemas: tuple[str, ...] = MODEL_SCHEMAS) -> dict:
    """Replace the DuckDB warehouse's dbt schemas with the tables Spark built, in one transaction.

    With RETAIN_ENGINE=spark, dbt builds in the lake; the steps that run on one machine
    (training on a sample, outreach lists, CRM exports, the dashboard snapshot) read the
    warehouse file as before. Either every table is replaced or none is. Returns rows per table.
    """
    rows: dict[str, int] = {}
    con.execute("BEGIN TRANSACTION")
    try:
        for schema in schemas:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(schema)}")
            for name, folder in spark_tables(schema).items():
                target = f"{_quote(schema)}.{_quote(name)}"
                kind = con.execute(
                    "SELECT table_type FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                    [schema, name],
                ).fetchone()
                if kind and kind[0] == "VIEW":
                    con.execute(f"DROP VIEW {target}")
                con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM {parquet_relation(folder)}")
                rows[f"{schema}.{name}"] = con.execute(f"SELECT count(*) FROM {target}").fetchone()[0]
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return rows


def score_customers(con: duckdb.DuckDBPyConnection, as_of=None, models_dir: Path | None = None):
    """Score every customer on the configured engine into the warehouse's `ml.churn_scores`.

    DuckDB: `ml.score.score` on the warehouse. Spark: `ml.spark_score.score_on_spark`, the
    feature rows and scores computed on Spark's workers from the lake's marts. Returns an
    `ml.score.ScoreSummary`; raises `ml.score.ScoringSkipped` as both do.
    """
    from ml.inputs import INPUT_TABLES
    from ml.score import score
    from pipelines.core import spark as sp

    if not sp.is_spark():
        return score(con, as_of=as_of, models_dir=models_dir)
    from ml.spark_score import score_on_spark

    s = sp.spark_settings()
    return score_on_spark(sp.session("retain-score"), con, sp.table_paths(INPUT_TABLES, s), s.scores,
                          as_of=as_of, models_dir=models_dir, buckets=s.shuffle_partitions)
