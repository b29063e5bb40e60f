"""Prove that a change left every output alone: canonical dumps of a retain data folder, compared.

    python -m bench.compare_outputs dump --data-dir DATA --out DUMP_DIR      # or --out FILE.json
    python -m bench.compare_outputs compare BEFORE_DUMP AFTER_DUMP [--rel-tol 1e-12]

`dump` records what a user sees after `retain run` on a data folder:

- every table and view of the warehouse (`warehouse:SCHEMA.TABLE`: raw, staging,
  intermediate, marts, ml, exports, ...);
- every table of the published dashboard snapshot that `published/CURRENT` names
  (`snapshot:SCHEMA.TABLE`), and `published/status.json`;
- every file under `exports/` (CSV files and Arrow snapshots as tables, manifests as JSON,
  `LATEST` as text) and the model artifacts under `models/` (metadata, reference sample);
- the SHA-256 of every landing file (`input:...`), so that a difference caused by different
  input data shows as such.

For each table: row count, column names and types, an order-independent content hash (the sum
of DuckDB's `hash()` of each canonical row, so duplicates count), one such hash per column and
the non-null count per column. With `--out DIR` (not ending in `.json`) a Parquet copy of each
canonical table is kept too (owner-only: they hold personal data), so that `compare` can show
the rows that differ. For files, also a hash of the file's bytes after the volatile values in it
are replaced by labels: an export file must be byte-identical apart from those values (so row
order, quoting, number formats and column order count).

Volatile values (run ids, wall-clock timestamps, durations, file names with a timestamp) are
handled in one place below: `ID_PATTERNS`, `TABLE_VOLATILE`, `FILE_COLUMN_VOLATILE` and
`JSON_VOLATILE`, each entry with the reason it varies. They were found by running the same
code twice on the same generated shop (two data folders, two checkouts of the same commit) and
comparing the dumps. Everything else compares exactly.

`compare` prints, per object, identical / different (with the columns or fields that differ
and a few example rows) / only-before / only-after, and exits 1 when anything present before
is missing or different after. Objects only present after are reported as additions and do not
fail. Floats compare exactly unless `--rel-tol`/`--abs-tol` are given.

Hashes come from DuckDB's `hash()`, which may change between DuckDB versions; dump both sides
with the same Python environment where possible (this script imports nothing of retain, so an
older checkout's `.venv` can dump a newer checkout's data folder). When the versions differ, a
table whose hash differs is re-checked row by row from the Parquet copies.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import itertools
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

FORMAT = 1
SUMMARY = "dump.json"


# --------------------------------------------------------------------------------------------
# Volatile values: the one place where they are listed. Everything not listed compares exactly.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Volatile:
    """How a volatile column or field is made comparable, and why it varies.

    how:
      label  the value is replaced by its rank among the distinct values of the column (or, in
             files, of the file) in sort order: run ids and timestamps start with the UTC time,
             so the first run is 1. Keeps which rows share a run and which run came later.
      drop   left out of the content hash; only how many values are non-null (tables) or the
             value's type (JSON) is compared.
      path   an absolute path: the data folder becomes `$DATA_DIR`, run ids in it become `<id>`.
      json   a JSON text column: parsed, and the fields of `JSON_VOLATILE[<schema.table.column>]`
             replaced.
      sql    the SQL expression `sql`, in which `s` is the row (for a value volatile in some rows only).
    """

    how: str
    why: str
    sql: str = ""


def _label(why: str) -> Volatile:
    return Volatile("label", why)


def _drop(why: str) -> Volatile:
    return Volatile("drop", why)


#: Run ids and time-stamped names. Wherever they occur in a file's path or contents they are
#: replaced by `<kind-N>`, N numbering that kind's distinct ids of the dump in sort order
#: (= chronological order: each starts with the UTC time).
ID_PATTERNS: dict[str, tuple[str, str]] = {
    "export-run": (
        r"\d{8}T\d{6}Z-[0-9a-f]{6}",
        "outreach/export run id: UTC time of the outreach run + 6 random hex digits "
        "(pipelines/outreach/lists.py new_run_id); names the export folders",
    ),
    "model-run": (
        r"\d{8}T\d{6}-[0-9a-f]{6}",
        "model run id: UTC time of training + 6 random hex digits (ml/train.py); names models/<id>/",
    ),
    "snapshot": (
        r"snapshot-\d{8}T\d{12}Z\.duckdb",
        "published snapshot file: named after the UTC time of publishing (pipelines/publish.py)",
    ),
    "dagster-run": (
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "Dagster run id: a random UUID",
    ),
}

_LOADED_AT = _label("wall-clock time of the load (ingest); every row of one landing file shares it")
_BUILT_AT = _label("wall-clock time of the dbt build of the row")
_SOURCE_LOADED_AT = _label("wall-clock time of the load of the row's source rows (a watermark for incremental models)")
_RESOLVED_AT = _label("wall-clock time of identity resolution during ingest (raw._customer_identity.resolved_at)")
_EXPORT_RUN = _label("outreach run id: UTC time + random hex (pipelines/outreach/lists.py)")
_EXPORT_TIME = _label("wall-clock time of the outreach run (pipelines/outreach/lists.py created_at)")
_MODEL_VERSION = _label("model run id: UTC time of training + random hex (ml/train.py)")
_SCORED_AT = _label("wall-clock time of scoring (ml/score.py scored_at)")
#: `retain generate --next-day` (pipelines/generate/next_day.py) writes each increment file with
#: `COPY (SELECT ... WHERE order_id IN (SELECT ...))` and no ORDER BY: the join does not keep the
#: input order, so the rows of increment-<date>.csv come out in a thread-dependent order (same rows,
#: different order in two runs). The line numbers of their rows, and the files' checksums, vary.
_INCREMENT_WHY = ("the row order of landing increment-<date>.csv files varies between runs of "
                  "retain generate --next-day (next_day.py: COPY of a join without ORDER BY)")
_INCREMENT_ROW = Volatile(
    "sql", "line number in the landing file; for increment files " + _INCREMENT_WHY,
    "CASE WHEN s._source_file LIKE '%increment-%' THEN NULL ELSE s._source_row END")
_FINGERPRINT = _drop(
    "ml/train.py data_fingerprint hashes sum(cast(total AS DOUBLE)) over marts.fct_orders: DuckDB's parallel "
    "aggregation adds the doubles in a thread-dependent order, so the last bits of the sum, and the whole hash, "
    "vary between runs on the same data"
)

#: Warehouse and snapshot tables: `schema.table` (a glob) -> column -> rule. Applies to the
#: same table in the warehouse and in the published snapshot.
TABLE_VOLATILE: dict[str, dict[str, Volatile]] = {
    "raw.*": {"_loaded_at": _LOADED_AT, "_source_row": _INCREMENT_ROW},
    "raw._warnings": {"source_row": Volatile("sql", "line number; for increment files " + _INCREMENT_WHY,
                                             "CASE WHEN s.source_file LIKE '%increment-%' THEN NULL "
                                             "ELSE s.source_row END")},
    "raw._quarantine": {
        "source_row": Volatile("sql", "line number; for increment files " + _INCREMENT_WHY,
                               "CASE WHEN s.source_file LIKE '%increment-%' THEN NULL ELSE s.source_row END"),
        "quarantined_at": _label("wall-clock time of the load that quarantined the row"),
    },
    "raw._loads": {
        "sha256": Volatile("sql", "checksum of the landing file; for increment files " + _INCREMENT_WHY
                           + " (the files' contents are compared as input:landing/...)",
                           "CASE WHEN s.file_path LIKE '%increment-%' THEN NULL ELSE s.sha256 END"),
        "file_mtime": _label("modification time of the landing file: when it was generated"),
        "started_at": _drop("wall-clock time the load started"),
        "finished_at": _drop("wall-clock time the load finished"),
    },
    "raw._customer_identity": {"resolved_at": _RESOLVED_AT},
    "raw._identity_match": {"resolved_at": _RESOLVED_AT},
    "raw._rejected_files": {"rejected_at": _label("wall-clock time of the load that rejected the file")},
    "staging.*": {"_loaded_at": _LOADED_AT, "_built_at": _BUILT_AT, "_source_loaded_at": _SOURCE_LOADED_AT,
                  "_source_row": _INCREMENT_ROW},
    "intermediate.*": {"_loaded_at": _LOADED_AT, "_built_at": _BUILT_AT, "_source_loaded_at": _SOURCE_LOADED_AT},
    "marts.*": {"_loaded_at": _LOADED_AT, "_built_at": _BUILT_AT, "_source_loaded_at": _SOURCE_LOADED_AT},
    "staging.stg_identity__customer_keys": {"resolved_at": _RESOLVED_AT},
    "staging.stg_identity__match_rates": {"resolved_at": _RESOLVED_AT},
    "marts.identity_match_rates": {"resolved_at": _RESOLVED_AT},
    "ml.churn_scores": {"scored_at": _SCORED_AT, "model_version": _MODEL_VERSION},
    "ml.churn_scores_history": {"scored_at": _SCORED_AT, "model_version": _MODEL_VERSION},
    "ml.churn_score_drift": {"model_version": _MODEL_VERSION},
    "ml.churn_status": {
        "updated_at": _drop("wall-clock time the status row was written (ml/status.py)"),
        "model_version": _MODEL_VERSION,
    },
    "ml.model_runs": {
        "run_id": _MODEL_VERSION,
        "trained_at": _label("wall-clock time of training (ml/train.py)"),
        "model_path": Volatile("path", "absolute path: data folder + model run id"),
        "data_fingerprint": _FINGERPRINT,
    },
    "exports.runs": {
        "run_id": _EXPORT_RUN,
        "created_at": _EXPORT_TIME,
        "model_version": _MODEL_VERSION,
        "scores_scored_at": _SCORED_AT,
        "playbook_path": _drop(
            "absolute path of the checkout's playbook file (moves with the code); its content is "
            "compared through playbook_sha256 and plays_json"
        ),
    },
    "exports.outreach_lists": {"run_id": _EXPORT_RUN, "created_at": _EXPORT_TIME},
    "exports.suppressions": {"run_id": _EXPORT_RUN, "created_at": _EXPORT_TIME},
    "exports.experiments": {"run_id": _EXPORT_RUN, "created_at": _EXPORT_TIME},
    "exports.holdouts": {"run_id": _EXPORT_RUN, "created_at": _EXPORT_TIME},
    "staging.stg_exports__*": {"run_id": _EXPORT_RUN},
    "intermediate.int_outreach_*": {"run_id": _EXPORT_RUN},
    "marts.outreach_*": {"cohort_id": _label(
        "a cohort's id: the outreach run id where cohort_grain is 'run' (models/marts/outreach), ranked with the "
        "other cohorts' ids")},
    "ml.product_recommendations": {
        "generated_at": _label("wall-clock time the recommendations were made (ml/recommend.py generated_at)"),
    },
    "ml.recommendation_backtests": {
        "run_id": _label("backtest run id: the Dagster run id, or the UTC time when run alone "
                         "(ml/recommend_backtest.py)"),
        "created_at": _label("wall-clock time of the backtest (ml/recommend_backtest.py created_at)"),
        "seconds": _drop("how long each backtest cut-off took"),
    },
    "meta.snapshot": {"info": Volatile("json", "publish metadata: time, run id, build times")},
}

#: Columns of tables read from files (CSV, Arrow, Parquet): file glob -> column -> rule. In the
#: file's bytes, each value of such a column is replaced by `<column#rank>`.
FILE_COLUMN_VOLATILE: dict[str, dict[str, Volatile]] = {
    "exports/*/csv/*": {
        # the generic CSV format carries the outreach run's id and time in every row
        "run_id": _EXPORT_RUN,
        "created_at": _EXPORT_TIME,
    },
}

_TS = "drop"

#: JSON files and JSON text columns: glob of the file path (or `schema.table.column`) -> field
#: path -> rule. Field paths are `/`-separated keys; `*` matches any key or list index.
#: Run ids in any string are replaced by ID_PATTERNS anyway; they are listed for the record.
JSON_VOLATILE: dict[str, dict[str, Volatile]] = {
    "exports/*/*/*/manifest.json": {
        "run_id": _label("export run id (ID_PATTERNS export-run)"),
        "generated_at": _drop("wall-clock time the export files were written (exporter.py)"),
        "diff/previous_run_id": _label("export run id of the previous export (ID_PATTERNS export-run)"),
        "source/lists_created_at": _drop("wall-clock time of the outreach run"),
        "source/scores_scored_at": _drop("wall-clock time of scoring"),
        "source/model_version": _label("model run id (ID_PATTERNS model-run)"),
    },
    "exports/*/csv/*/manifest.json": {
        # the generic CSV format's files hold run_id and created_at, so their checksums vary
        "files/*/sha256": _drop("checksum of a file holding run_id and created_at"),
        "diff/files/*/sha256": _drop("checksum of a file holding run_id and created_at"),
    },
    "models/current.json": {"run_id": _label("model run id (ID_PATTERNS model-run)")},
    "models/*/metadata.json": {
        "run_id": _label("model run id (ID_PATTERNS model-run)"),
        "trained_at": _drop("wall-clock time of training (ml/train.py)"),
        "data_fingerprint": _FINGERPRINT,
    },
    "published/status.json": {
        "*/run_id": _label("Dagster run id (ID_PATTERNS dagster-run)"),
        "*/started_at": _drop("wall-clock start of the run"),
        "*/finished_at": _drop("wall-clock end of the run"),
        "*/stages/*/seconds": _drop("duration of the stage"),
        "*/stages/*/peak_rss_mb": _drop("peak memory of the stage: varies with the allocator and timing"),
    },
    "meta.snapshot.info": {
        "published_at": _drop("wall-clock time of publishing (pipelines/publish.py)"),
        "run_id": _label("Dagster run id (ID_PATTERNS dagster-run)"),
        "watermarks/*._built_at": _drop("wall-clock time of a dbt build"),
    },
}

#: Landing files compared as a set of lines (header first), not byte for byte, with the reason.
UNORDERED_INPUTS: dict[str, str] = {
    "landing/*/increment-*.csv": _INCREMENT_WHY,
}

#: Files not compared, with the reason. Everything else under exports/ and models/ is.
SKIPPED_FILES: dict[str, str] = {
    "models/*/model.joblib": (
        "compressed pickle of the model and its metadata: differs between two runs of the same code "
        "(it embeds the run id, training time and data fingerprint) and depends on the module paths "
        "of retain's classes, which a refactor may move; what the model does is compared through "
        "ml.churn_scores, the metrics in ml.model_runs and models/*/metadata.json"
    ),
}

#: Parts of a data folder that are not outputs a user sees.
NOT_DUMPED = {
    "dagster": "Dagster's own run storage, logs and schedules",
    "warehouse.duckdb": "dumped table by table",
    "landing": "inputs: only their checksums are recorded (input:...)",
    "published": "only CURRENT, the snapshot it names and status.json: older snapshots are kept for rollback",
}

ID_REGEXES = {k: re.compile(r"(?<![0-9A-Za-z])" + p + r"(?![0-9A-Za-z])") for k, (p, _) in ID_PATTERNS.items()}
FLOAT_TYPES = {"DOUBLE", "FLOAT", "REAL"}


def table_rules(name: str) -> dict[str, Volatile]:
    """The column rules of `schema.table` (merged over every matching glob)."""
    rules: dict[str, Volatile] = {}
    for pattern, cols in TABLE_VOLATILE.items():
        if fnmatch.fnmatchcase(name, pattern):
            rules.update(cols)
    return rules


def file_column_rules(path: str) -> dict[str, Volatile]:
    rules: dict[str, Volatile] = {}
    for pattern, cols in FILE_COLUMN_VOLATILE.items():
        if fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(path, pattern + "/*"):
            rules.update(cols)
    return rules


def json_rules(name: str) -> dict[str, Volatile]:
    rules: dict[str, Volatile] = {}
    for pattern, fields in JSON_VOLATILE.items():
        if fnmatch.fnmatchcase(name, pattern):
            rules.update(fields)
    return rules


def skipped_reason(path: str) -> str | None:
    for pattern, why in SKIPPED_FILES.items():
        if fnmatch.fnmatchcase(path, pattern):
            return why
    return None


# --------------------------------------------------------------------------------------------
# Canonicalising ids, JSON and bytes
# --------------------------------------------------------------------------------------------


class IdMap:
    """Run ids and time-stamped names seen in a dump -> `<kind-N>` labels (sorted = chronological)."""

    def __init__(self) -> None:
        self.seen: dict[str, set[str]] = {k: set() for k in ID_PATTERNS}
        self.labels: dict[str, str] = {}

    def collect(self, text: str) -> None:
        for kind, rx in ID_REGEXES.items():
            self.seen[kind].update(rx.findall(text))

    def freeze(self) -> None:
        self.labels = {}
        for kind, ids in self.seen.items():
            for i, value in enumerate(sorted(ids), 1):
                self.labels[value] = f"<{kind}-{i}>"

    def sub(self, text: str) -> str:
        for rx in ID_REGEXES.values():
            text = rx.sub(lambda m: self.labels.get(m.group(0), "<unknown-id>"), text)
        return text

    def sub_bytes(self, data: bytes) -> bytes:
        for value in sorted(self.labels, key=len, reverse=True):
            data = data.replace(value.encode(), self.labels[value].encode())
        return data


def _path_match(path: tuple[str, ...], pattern: str) -> bool:
    parts = pattern.split("/")
    return len(parts) == len(path) and all(fnmatch.fnmatchcase(p, q) for p, q in zip(path, parts, strict=True))


def canon_json(obj, rules: dict[str, Volatile], ids: IdMap, volatile_values: dict | None = None, path=()):
    """`obj` with volatile fields replaced and run ids labelled. Collects the replaced values."""
    for pattern, rule in rules.items():
        if path and _path_match(path, pattern):
            if volatile_values is not None and isinstance(obj, str):
                volatile_values.setdefault(pattern, set()).add(obj)
            if obj is None:
                return None
            if rule.how == "label" and isinstance(obj, str) and ids.sub(obj) != obj:
                return ids.sub(obj)
            return f"<volatile {type(obj).__name__}>"
    if isinstance(obj, dict):
        return {k: canon_json(v, rules, ids, volatile_values, (*path, str(k))) for k, v in obj.items()}
    if isinstance(obj, list):
        return [canon_json(v, rules, ids, volatile_values, (*path, str(i))) for i, v in enumerate(obj)]
    if isinstance(obj, str):
        return ids.sub(obj)
    return obj


def canon_bytes(data: bytes, ids: IdMap, values: dict[str, tuple[str, list[str]]]) -> str:
    """SHA-256 of `data` with run ids and the given volatile values replaced by labels.

    `values`: column or field -> (how, its values in the file). A `label` value becomes
    `<column#rank>` (rank in sort order: ids and times sort chronologically); a `drop` value
    (a checksum, say, whose order means nothing) becomes `<column>`.
    """
    data = ids.sub_bytes(data)
    subs = []
    for column, (how, vals) in values.items():
        for rank, v in enumerate(sorted(vals), 1):
            if len(v) >= 6:  # never replace short values: they could occur anywhere
                subs.append((v, f"<{column}#{rank}>" if how == "label" else f"<{column}>"))
    for v, label in sorted(subs, key=lambda s: len(s[0]), reverse=True):
        data = data.replace(v.encode(), label.encode())
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------
# dump
# --------------------------------------------------------------------------------------------


def qi(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def ql(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class Dumper:
    def __init__(self, data_dir: Path, out: Path | None, verbose: bool = False) -> None:
        self.data_dir = data_dir
        self.out = out
        self.verbose = verbose
        self.con = duckdb.connect()
        self.objects: dict[str, dict] = {}
        self.ids = IdMap()
        self._n = 0
        self._json_cols: dict[str, dict[str, Volatile]] = {}

    # -- tables ---------------------------------------------------------------------------

    def _json_udf(self, key: str) -> str:
        """A DuckDB function canonicalising the JSON column `key` (for small tables only)."""
        fname = "canon_json_" + re.sub(r"\W", "_", key)
        if fname not in self._json_cols:
            rules = json_rules(key)
            ids = self.ids

            def fn(text: str | None) -> str | None:
                if text is None:
                    return None
                try:
                    return json.dumps(canon_json(json.loads(text), rules, ids))
                except ValueError:
                    return ids.sub(text)

            varchar = duckdb.sqltype("VARCHAR") if hasattr(duckdb, "sqltype") else "VARCHAR"
            self.con.create_function(fname, fn, [varchar], varchar)
            self._json_cols[fname] = rules
        return fname

    def dump_relation(self, name: str, source: str, rules: dict[str, Volatile], json_key_prefix: str = "",
                      file_values: bool = False) -> dict:
        """Hash (and copy) the canonical rows of `source` (a FROM clause). Returns the record."""
        t0 = time.perf_counter()
        described = self.con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
        columns = [[r[0], r[1]] for r in described]
        exprs, canon, volatile, lookups = [], [], {}, []
        for cname, _ in columns:
            q = qi(cname)
            rule = rules.get(cname)
            if rule is None:
                exprs.append(f"s.{q}")
                canon.append(cname)
                continue
            volatile[cname] = {"how": rule.how, "why": rule.why}
            if rule.how == "label":
                # rank of the value among the column's distinct values, through a small lookup table
                # (a window over the whole table would sort millions of rows)
                lookup = f"_rank_{self._n}"
                self._n += 1
                self.con.execute(
                    f"CREATE TEMP TABLE {lookup} AS SELECT v, dense_rank() OVER (ORDER BY v) AS r "
                    f"FROM (SELECT DISTINCT {q} AS v FROM {source} WHERE {q} IS NOT NULL)")
                lookups.append(lookup)
                exprs.append(f"(SELECT r FROM {lookup} WHERE v = s.{q}) AS {q}")
                canon.append(cname)
            elif rule.how == "path":
                dd = [str(self.data_dir.absolute()), str(self.data_dir.resolve())]
                e = f"s.{q}"
                for d in sorted(set(dd), key=len, reverse=True):
                    e = f"replace({e}, {ql(d)}, '$DATA_DIR')"
                for pattern, _ in ID_PATTERNS.values():
                    e = f"regexp_replace({e}, {ql(pattern)}, '<id>', 'g')"
                exprs.append(f"{e} AS {q}")
                canon.append(cname)
            elif rule.how == "sql":
                exprs.append(f"{rule.sql} AS {q}")
                canon.append(cname)
            elif rule.how == "json":
                exprs.append(f"{self._json_udf(json_key_prefix + cname)}(s.{q}::VARCHAR) AS {q}")
                canon.append(cname)
            elif rule.how != "drop":
                raise ValueError(f"unknown rule {rule.how!r} for {name}.{cname}")
        view = f"_canon_{self._n}"
        self._n += 1
        select = ", ".join(exprs) if exprs else "NULL AS _no_columns"
        self.con.execute(f"CREATE TEMP VIEW {view} AS SELECT {select} FROM {source} AS s")
        aggs = ["count(*)"]
        if canon:
            aggs.append(f"coalesce(sum(hash({', '.join(qi(c) for c in canon)})::HUGEINT), 0)::VARCHAR")
        else:
            aggs.append("'0'")
        for c in canon:
            aggs.append(f"coalesce(sum(hash({qi(c)})::HUGEINT), 0)::VARCHAR")
            aggs.append(f"count({qi(c)})")
        row = self.con.execute(f"SELECT {', '.join(aggs)} FROM {view}").fetchone()
        rows, content = row[0], row[1]
        col_hash = {c: row[2 + 2 * i] for i, c in enumerate(canon)}
        non_null = {c: row[3 + 2 * i] for i, c in enumerate(canon)}
        if volatile:
            vaggs = []
            for c in volatile:
                vaggs += [f"count({qi(c)})", f"count(DISTINCT {qi(c)})"]
            vrow = self.con.execute(f"SELECT {', '.join(vaggs)} FROM {source}").fetchone()
            for i, c in enumerate(volatile):
                volatile[c]["non_null"] = vrow[2 * i]
                volatile[c]["distinct"] = vrow[2 * i + 1]
        record = {
            "kind": "table",
            "rows": rows,
            "columns": columns,
            "content_hash": content,
            "column_hashes": col_hash,
            "non_null": non_null,
            "volatile": volatile,
            "parquet": None,
        }
        if file_values and volatile:
            # the distinct values of volatile columns, to blank them in the file's bytes
            record["_values"] = {
                c: [v for (v,) in self.con.execute(
                    f"SELECT DISTINCT {qi(c)}::VARCHAR FROM {source} WHERE {qi(c)} IS NOT NULL").fetchall()]
                for c in volatile
            }
        if self.out is not None:
            fname = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:120] + "-" + hashlib.md5(name.encode()).hexdigest()[:8]
            target = self.out / "tables" / f"{fname}.parquet"
            self.con.execute(f"COPY (SELECT * FROM {view}) TO {ql(str(target))} (FORMAT parquet, COMPRESSION zstd)")
            os.chmod(target, 0o600)
            record["parquet"] = f"tables/{fname}.parquet"
        self.con.execute(f"DROP VIEW {view}")
        for lookup in lookups:
            self.con.execute(f"DROP TABLE {lookup}")
        if self.verbose:
            print(f"  {name}: {rows:,} rows ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
        return record

    def dump_database(self, path: Path, alias: str, prefix: str, schemas: list[str] | None) -> None:
        self.con.execute(f"ATTACH {ql(str(path))} AS {alias} (READ_ONLY)")
        rels = self.con.execute(
            f"""
            SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = '{alias}'
            UNION ALL
            SELECT schema_name, view_name FROM duckdb_views() WHERE database_name = '{alias}' AND NOT internal
            ORDER BY 1, 2
            """
        ).fetchall()
        for schema, table in rels:
            if schemas and schema not in schemas:
                continue
            key = f"{schema}.{table}"
            rules = table_rules(key)
            self.objects[f"{prefix}:{key}"] = self.dump_relation(
                f"{prefix}:{key}", f"{alias}.{qi(schema)}.{qi(table)}", rules, json_key_prefix=f"{key}."
            )
        self.con.execute(f"DETACH {alias}")

    # -- files ----------------------------------------------------------------------------

    def canonical_path(self, rel: str) -> str:
        return self.ids.sub(rel)

    def dump_file(self, path: Path, rel: str) -> dict:
        name = self.canonical_path(rel)
        why = skipped_reason(rel) or skipped_reason(name)
        if why:
            return {"kind": "skipped", "why": why, "bytes": path.stat().st_size}
        data = path.read_bytes()
        suffix = path.name.lower()
        if suffix.endswith(".json"):
            rules = json_rules(name)
            try:
                obj = json.loads(data)
            except ValueError:
                return self._text_record(data)
            values: dict = {}
            content = canon_json(obj, rules, self.ids, values)
            numeric_volatile = _has_nonstring_volatile(obj, rules)
            return {
                "kind": "json",
                "content": content,
                # bytes only comparable when every volatile value is a string (replaced in place)
                "canonical_sha256": None if numeric_volatile else canon_bytes(
                    data, self.ids, {p: (rules[p].how, [json.dumps(v) for v in vals]) for p, vals in values.items()}),
                "volatile_fields": {p: r.why for p, r in rules.items()},
            }
        if suffix.endswith((".csv", ".csv.gz", ".arrow", ".parquet", ".feather")):
            rules = file_column_rules(name)
            source = self._file_source(path, suffix)
            if source is not None:
                record = self.dump_relation(f"file:{name}", source, rules, file_values=True)
                values = record.pop("_values", {})
                record["kind"] = "file-table"
                record["bytes"] = len(data)
                if suffix.endswith((".csv", ".csv.gz")):
                    record["canonical_sha256"] = canon_bytes(
                        data, self.ids, {c: (rules[c].how, vals) for c, vals in values.items()})
                return record
        return self._text_record(data)

    def _text_record(self, data: bytes) -> dict:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return {"kind": "bytes", "bytes": len(data), "canonical_sha256": canon_bytes(data, self.ids, {})}
        if len(text) <= 4096:
            return {"kind": "text", "content": self.ids.sub(text)}
        return {"kind": "bytes", "bytes": len(data), "canonical_sha256": canon_bytes(data, self.ids, {})}

    def _file_source(self, path: Path, suffix: str) -> str | None:
        p = ql(str(path))
        if suffix.endswith((".csv", ".csv.gz")):
            if path.stat().st_size == 0:
                return None
            # every value as the exact text in the file
            return f"read_csv({p}, header=true, all_varchar=true, delim=',', quote='\"', escape='\"')"
        if suffix.endswith(".parquet"):
            return f"read_parquet({p})"
        import pyarrow.feather as feather  # Arrow IPC files (.arrow / .feather)

        table = feather.read_table(str(path))
        view = f"_arrow_{self._n}"
        self._n += 1
        self.con.register(view, table)
        return view

    def collect_ids(self, files: list[tuple[Path, str]]) -> None:
        for path, rel in files:
            self.ids.collect(rel)
            text_like = path.name.endswith((".json", ".csv")) or "." not in path.name
            if text_like and path.stat().st_size <= 256 * 1024 * 1024:
                self.ids.collect(path.read_bytes().decode("utf-8", "replace"))
        self.ids.freeze()

    # -- all ------------------------------------------------------------------------------

    def run(self, schemas: list[str] | None, inputs: bool) -> dict:
        t0 = time.perf_counter()
        dd = self.data_dir
        files: list[tuple[Path, str]] = []
        for sub in ("exports", "models"):
            base = dd / sub
            if base.is_dir():
                files += [(p, p.relative_to(dd).as_posix()) for p in sorted(base.rglob("*")) if p.is_file()]
        published = dd / "published"
        current = None
        for fname in ("CURRENT", "status.json"):
            if (published / fname).is_file():
                files.append((published / fname, f"published/{fname}"))
        if (published / "CURRENT").is_file():
            current = published / (published / "CURRENT").read_text().strip()
            self.ids.collect(current.name)
        self.collect_ids(files)
        warehouse = dd / "warehouse.duckdb"  # the data folder given, whatever RETAIN_WAREHOUSE says
        if warehouse.is_file():
            self.dump_database(warehouse, "wh", "warehouse", schemas)
        else:
            print(f"warning: no warehouse at {warehouse}", file=sys.stderr)
        if current is not None and current.is_file():
            self.dump_database(current, "snap", "snapshot", None)
        for path, rel in files:
            self.objects[f"file:{self.canonical_path(rel)}"] = self.dump_file(path, rel)
        if inputs and (dd / "landing").is_dir():
            for p in sorted((dd / "landing").rglob("*")):
                if not p.is_file():
                    continue
                rel = p.relative_to(dd).as_posix()
                h = hashlib.sha256()
                unordered = next((why for g, why in UNORDERED_INPUTS.items() if fnmatch.fnmatchcase(rel, g)), None)
                if unordered:  # small files: the header, then the other lines sorted
                    lines = p.read_bytes().splitlines()
                    h.update(b"\n".join(lines[:1] + sorted(lines[1:])))
                else:
                    with p.open("rb") as f:
                        for chunk in iter(lambda f=f: f.read(1 << 22), b""):
                            h.update(chunk)
                record = {"kind": "bytes", "bytes": p.stat().st_size, "canonical_sha256": h.hexdigest()}
                if unordered:
                    record["compared_as"] = "set of lines: " + unordered
                self.objects[f"input:{rel}"] = record
        return {
            "format": FORMAT,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "data_dir": str(dd.resolve()),
            "duckdb_version": duckdb.__version__,
            "script_sha256": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
            "python": sys.version.split()[0],
            "seconds": round(time.perf_counter() - t0, 1),
            "id_labels": {v: k for k, v in self.ids.labels.items()},
            "not_dumped": NOT_DUMPED,
            "objects": self.objects,
        }


def _has_nonstring_volatile(obj, rules: dict[str, Volatile], path=()) -> bool:
    for pattern in rules:
        if path and _path_match(path, pattern) and obj is not None and not isinstance(obj, str):
            return True
    if isinstance(obj, dict):
        return any(_has_nonstring_volatile(v, rules, (*path, str(k))) for k, v in obj.items())
    if isinstance(obj, list):
        return any(_has_nonstring_volatile(v, rules, (*path, str(i))) for i, v in enumerate(obj))
    return False


def cmd_dump(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir)
    if not data_dir.is_dir():
        print(f"error: no data folder {data_dir}", file=sys.stderr)
        return 2
    out = Path(args.out)
    os.umask(0o077)
    if out.suffix == ".json":
        out.parent.mkdir(parents=True, exist_ok=True)
        summary_path, table_dir = out, None
    else:
        if out.exists() and any(out.iterdir()):
            if not (out / SUMMARY).is_file():
                print(f"error: {out} exists and is not a dump folder", file=sys.stderr)
                return 2
            for p in (out / "tables").glob("*.parquet"):
                p.unlink()
        (out / "tables").mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(out, 0o700)
        os.chmod(out / "tables", 0o700)
        summary_path, table_dir = out / SUMMARY, out
    schemas = [s for s in args.schemas.split(",") if s] if args.schemas else None
    dumper = Dumper(data_dir, table_dir, verbose=args.verbose)
    summary = dumper.run(schemas, inputs=not args.no_inputs)
    tmp = summary_path.with_name(summary_path.name + ".tmp")
    tmp.write_text(json.dumps(summary, indent=1, sort_keys=True, default=str))
    os.replace(tmp, summary_path)
    os.chmod(summary_path, 0o600)
    kinds: dict[str, int] = {}
    for name in summary["objects"]:
        kinds[name.split(":", 1)[0]] = kinds.get(name.split(":", 1)[0], 0) + 1
    print(f"dumped {len(summary['objects'])} objects ({', '.join(f'{v} {k}' for k, v in sorted(kinds.items()))}) "
          f"of {data_dir} to {out} in {summary['seconds']} s")
    return 0


# --------------------------------------------------------------------------------------------
# compare
# --------------------------------------------------------------------------------------------


def load_dump(path: Path) -> tuple[dict, Path | None]:
    if path.is_dir():
        return json.loads((path / SUMMARY).read_text()), path
    return json.loads(path.read_text()), None


def _short(value, width: int = 60) -> str:
    s = repr(value)
    return s if len(s) <= width else s[: width - 3] + "..."


class Comparer:
    def __init__(self, rel_tol: float, abs_tol: float, examples: int) -> None:
        self.rel_tol = rel_tol
        self.abs_tol = abs_tol
        self.tolerant = rel_tol > 0 or abs_tol > 0
        self.examples = examples
        self.con = duckdb.connect()

    # -- JSON -----------------------------------------------------------------------------

    def _num_close(self, a, b) -> bool:
        if a == b:
            return True
        if any(isinstance(x, bool) or not isinstance(x, int | float) for x in (a, b)):
            return False
        if math.isnan(a) and math.isnan(b):
            return True
        return abs(a - b) <= max(self.abs_tol, self.rel_tol * max(abs(a), abs(b)))

    def json_diff(self, a, b, path="") -> list[str]:
        if isinstance(a, dict) and isinstance(b, dict):
            out = []
            for k in list(a) + [k for k in b if k not in a]:
                p = f"{path}/{k}" if path else str(k)
                if k not in b:
                    out.append(f"{p}: only before ({_short(a[k])})")
                elif k not in a:
                    out.append(f"{p}: only after ({_short(b[k])})")
                else:
                    out += self.json_diff(a[k], b[k], p)
            return out
        if isinstance(a, list) and isinstance(b, list):
            out = []
            if len(a) != len(b):
                out.append(f"{path}: {len(a)} items before, {len(b)} after")
            for i, (x, y) in enumerate(zip(a, b, strict=False)):
                out += self.json_diff(x, y, f"{path}/{i}")
            return out
        if a == b and type(a) is type(b):
            return []
        if self.tolerant and self._num_close(a, b):
            return []
        return [f"{path}: {_short(a)} -> {_short(b)}"]

    # -- tables ---------------------------------------------------------------------------

    def table_diff(self, name: str, ra: dict, rb: dict, da: Path | None, db: Path | None) -> tuple[bool, list[str]]:
        """(equal, detail lines) for two table records whose hashes or shapes differ."""
        lines = []
        cols_a, cols_b = dict(map(tuple, ra["columns"])), dict(map(tuple, rb["columns"]))
        only_a = [c for c in cols_a if c not in cols_b]
        only_b = [c for c in cols_b if c not in cols_a]
        retyped = [f"{c} {cols_a[c]} -> {cols_b[c]}" for c in cols_a if c in cols_b and cols_a[c] != cols_b[c]]
        if ra["rows"] != rb["rows"]:
            lines.append(f"rows: {ra['rows']:,} -> {rb['rows']:,}")
        if only_a:
            lines.append("columns only before: " + ", ".join(only_a))
        if only_b:
            lines.append("columns only after: " + ", ".join(only_b))
        if retyped:
            lines.append("column types: " + "; ".join(retyped))
        if list(cols_a) != list(cols_b) and not only_a and not only_b:
            lines.append("column order differs")
        ha, hb = ra.get("column_hashes", {}), rb.get("column_hashes", {})
        differing = [c for c in ha if c in hb and ha[c] != hb[c]]
        nn_a, nn_b = ra.get("non_null", {}), rb.get("non_null", {})
        nulls = [f"{c} {nn_a[c]:,} -> {nn_b[c]:,}" for c in nn_a if c in nn_b and nn_a[c] != nn_b[c]]
        vol = []
        for c, va in ra.get("volatile", {}).items():
            vb = rb.get("volatile", {}).get(c)
            if vb is None:
                continue
            if _volatile_shape(va) != _volatile_shape(vb):
                vol.append(f"{c} (volatile, {va['how']}): non-null {va.get('non_null')} -> {vb.get('non_null')}, "
                           f"distinct {va.get('distinct')} -> {vb.get('distinct')}")
        if vol:
            lines.append("volatile columns: " + "; ".join(vol))
        if nulls and ra["rows"] == rb["rows"]:
            lines.append("non-null counts: " + "; ".join(nulls))
        pa = da / ra["parquet"] if da is not None and ra.get("parquet") else None
        pb = db / rb["parquet"] if db is not None and rb.get("parquet") else None
        if pa is None or pb is None or not pa.is_file() or not pb.is_file():
            if differing:
                lines.append("columns whose values differ: " + ", ".join(differing))
            elif ra["content_hash"] != rb["content_hash"] and not (only_a or only_b or retyped):
                lines.append("every column holds the same values, but rows combine them differently")
            lines.append("(no Parquet copies to show rows: dump with --out DIR)")
            return False, lines
        # the Parquet copies hold the canonical columns: dropped volatile columns are not there
        canon_a = {c: t for c, t in cols_a.items() if c in ha}
        canon_b = {c: t for c, t in cols_b.items() if c in hb}
        equal, more = self.rows_diff(pa, pb, canon_a, canon_b)
        if not equal and differing and not any(x.startswith("columns that differ") for x in more):
            lines.append("columns whose values differ: " + ", ".join(differing))
        lines += more
        equal = equal and not (only_a or only_b or retyped or vol or ra["rows"] != rb["rows"])
        return equal, lines

    def _eq(self, col: str, ta: str, tb: str) -> str:
        a, b = f"a.{qi(col)}", f"b.{qi(col)}"
        if ta != tb:
            a, b = f"{a}::VARCHAR", f"{b}::VARCHAR"
        exact = f"({a} IS NOT DISTINCT FROM {b})"
        if not self.tolerant:
            return exact
        tol = f"greatest({self.abs_tol!r}, {self.rel_tol!r} * greatest(abs(x), abs(y)))"
        if ta == tb and ta in FLOAT_TYPES:
            return f"({exact} OR (SELECT abs(x - y) <= {tol} FROM (SELECT {a} AS x, {b} AS y)))"
        if ta == tb and ta == "VARCHAR":  # numbers written in files
            return (f"({exact} OR (SELECT abs(x - y) <= {tol} FROM "
                    f"(SELECT TRY_CAST({a} AS DOUBLE) AS x, TRY_CAST({b} AS DOUBLE) AS y)))")
        return exact

    def _find_key(self, cols: list[str], types: dict[str, str]) -> list[str] | None:
        cands = [c for c in cols if types[c] not in FLOAT_TYPES and not types[c].endswith("[]")][:12]

        def unique(key: list[str]) -> bool:
            k = ", ".join(qi(c) for c in key)
            nn = " AND ".join(f"{qi(c)} IS NOT NULL" for c in key)
            q = "SELECT count(*) = count(DISTINCT ({k})) AND count(*) = count(*) FILTER (WHERE {nn}) FROM {t}"
            return all(self.con.execute(q.format(k=k, nn=nn, t=t)).fetchone()[0] for t in ("a", "b"))

        preferred = sorted(cands, key=lambda c: (not (c.endswith("_id") or c in ("__key", "key")), cands.index(c)))
        for c in preferred:
            if unique([c]):
                return [c]
        for size in (2, 3):
            for key in itertools.combinations(cands[:6], size):
                if unique(list(key)):
                    return list(key)
        return None

    def rows_diff(self, pa: Path, pb: Path, cols_a: dict, cols_b: dict) -> tuple[bool, list[str]]:
        con, n = self.con, self.examples
        con.execute(f"CREATE OR REPLACE TEMP VIEW a AS SELECT * FROM read_parquet({ql(str(pa))})")
        con.execute(f"CREATE OR REPLACE TEMP VIEW b AS SELECT * FROM read_parquet({ql(str(pb))})")
        common = [c for c in cols_a if c in cols_b]
        if not common:
            return False, ["no column in common"]
        lines: list[str] = []
        key = self._find_key(common, cols_a) if all(cols_a[c] == cols_b[c] for c in common) else None
        sel = ", ".join(qi(c) for c in common)
        if key is None and not self.tolerant:
            count = "SELECT count(*) FROM (SELECT {s} FROM {x} EXCEPT ALL SELECT {s} FROM {y})"
            only_a = con.execute(count.format(s=sel, x="a", y="b")).fetchone()[0]
            only_b = con.execute(count.format(s=sel, x="b", y="a")).fetchone()[0]
            if only_a == 0 and only_b == 0:
                return True, ["same rows (the hashes differ: different DuckDB versions?)"]
            lines.append(f"no unique key found; {only_a:,} rows only before, {only_b:,} rows only after "
                         "(in the columns both have)")
            for side, x, y, k in (("before", "a", "b", only_a), ("after", "b", "a", only_b)):
                if k:
                    ex = con.execute(f"SELECT {sel} FROM {x} EXCEPT ALL SELECT {sel} FROM {y} ORDER BY ALL LIMIT {n}")
                    names = [d[0] for d in ex.description]
                    for r in ex.fetchall():
                        lines.append(f"  only {side}: " + _short(dict(zip(names, r, strict=True)), 400))
            return False, lines
        if key is None:
            # align rows by sorting: exact columns first, floats last
            order = sorted(common, key=lambda c: cols_a[c] in FLOAT_TYPES)  # exact columns first (stable)
            ob = ", ".join(qi(c) for c in order)
            con.execute(f"CREATE OR REPLACE TEMP VIEW a AS SELECT row_number() OVER (ORDER BY {ob}) AS __n, * "
                        f"FROM read_parquet({ql(str(pa))})")
            con.execute(f"CREATE OR REPLACE TEMP VIEW b AS SELECT row_number() OVER (ORDER BY {ob}) AS __n, * "
                        f"FROM read_parquet({ql(str(pb))})")
            key = ["__n"]
            lines.append("no unique key found: rows aligned by sorting")
            types = dict(cols_a)
            types["__n"] = "BIGINT"
        else:
            types = dict(cols_a)
            lines.append("rows matched on " + ", ".join(key))
        on = " AND ".join(f"a.{qi(c)} IS NOT DISTINCT FROM b.{qi(c)}" for c in key)
        kcols = ", ".join(f"coalesce(a.{qi(c)}, b.{qi(c)}) AS {qi(c)}" for c in key)
        rest = [c for c in common if c not in key]
        eqs = {c: self._eq(c, cols_a[c], cols_b[c]) for c in rest}
        con.execute(f"""CREATE OR REPLACE TEMP TABLE j AS SELECT {kcols},
            a.{qi(key[0])} IS NULL AS _only_b, b.{qi(key[0])} IS NULL AS _only_a
            {''.join(f', NOT {e} AS {qi("_d_" + c)}' for c, e in eqs.items())}
            FROM a FULL OUTER JOIN b ON {on}""")
        counts = con.execute(
            "SELECT count(*) FILTER (WHERE _only_a), count(*) FILTER (WHERE _only_b)"
            + "".join(f", count(*) FILTER (WHERE {qi('_d_' + c)} AND NOT _only_a AND NOT _only_b)" for c in rest)
            + " FROM j").fetchone()
        only_a, only_b = counts[0], counts[1]
        diffs = {c: counts[2 + i] for i, c in enumerate(rest) if counts[2 + i]}
        if not (only_a or only_b or diffs):
            lines.append("same rows" + (" within the tolerance" if self.tolerant else
                                        " (the hashes differ: different DuckDB versions?)"))
            return True, lines
        kl = ", ".join(qi(c) for c in key)
        if only_a:
            lines.append(f"{only_a:,} rows only before, e.g. " + ", ".join(
                _short(r if len(r) > 1 else r[0], 80) for r in
                con.execute(f"SELECT {kl} FROM j WHERE _only_a ORDER BY {kl} LIMIT {n}").fetchall()))
        if only_b:
            lines.append(f"{only_b:,} rows only after, e.g. " + ", ".join(
                _short(r if len(r) > 1 else r[0], 80) for r in
                con.execute(f"SELECT {kl} FROM j WHERE _only_b ORDER BY {kl} LIMIT {n}").fetchall()))
        if diffs:
            lines.append("columns that differ (rows): " + ", ".join(f"{c} ({k:,})" for c, k in diffs.items()))
            dcols = list(diffs)
            any_diff = " OR ".join(f"j.{qi('_d_' + c)}" for c in dcols)
            bare_key = [c for c in key if c != "__n"] or key
            on_a = " AND ".join(f"a.{qi(c)} IS NOT DISTINCT FROM j.{qi(c)}" for c in key)
            on_b = " AND ".join(f"b.{qi(c)} IS NOT DISTINCT FROM j.{qi(c)}" for c in key)
            ex = con.execute(
                f"SELECT {', '.join('j.' + qi(c) for c in bare_key)}"
                + "".join(f", j.{qi('_d_' + c)}, a.{qi(c)}, b.{qi(c)}" for c in dcols)
                + f" FROM j JOIN a ON {on_a} JOIN b ON {on_b} WHERE NOT j._only_a AND NOT j._only_b AND ({any_diff})"
                + f" ORDER BY {', '.join('j.' + qi(c) for c in key)} LIMIT {n}").fetchall()
            for r in ex:
                kv = r[: len(bare_key)]
                parts = []
                for i, c in enumerate(dcols):
                    d, va, vb = r[len(bare_key) + 3 * i: len(bare_key) + 3 * i + 3]
                    if d:
                        parts.append(f"{c}: {_short(va)} -> {_short(vb)}")
                label = ", ".join(f"{c}={_short(v, 40)}" for c, v in zip(bare_key, kv, strict=True))
                lines.append(f"  {label}: " + "; ".join(parts))
        return False, lines

    # -- objects --------------------------------------------------------------------------

    def compare(self, name: str, ra: dict, rb: dict, da: Path | None, db: Path | None) -> tuple[str, list[str]]:
        """('identical' | 'different', detail lines)."""
        if ra["kind"] != rb["kind"]:
            return "different", [f"kind {ra['kind']} -> {rb['kind']}"]
        kind = ra["kind"]
        if kind == "skipped":
            return "not-compared", [ra["why"]]
        if kind in ("table", "file-table"):
            same_shape = ra["rows"] == rb["rows"] and ra["columns"] == rb["columns"]
            same_vol = all(_volatile_shape(v) == _volatile_shape(rb["volatile"].get(c, {}))
                           for c, v in ra.get("volatile", {}).items())
            same_bytes = ra.get("canonical_sha256") == rb.get("canonical_sha256")
            if same_shape and same_vol and ra["content_hash"] == rb["content_hash"] and same_bytes:
                return "identical", []
            if same_shape and same_vol and ra["content_hash"] == rb["content_hash"]:
                if self.tolerant:
                    return "identical", ["same rows, different bytes (ignored within a tolerance)"]
                return "different", ["same rows, different bytes: row order, quoting or number formats changed"]
            equal, lines = self.table_diff(name, ra, rb, da, db)
            if equal and not same_bytes and not self.tolerant:
                return "different", [*lines, "file bytes differ"]
            return ("identical" if equal else "different"), lines
        if kind == "json":
            diffs = self.json_diff(ra["content"], rb["content"])
            if diffs:
                cut = max(self.examples * 2, 10)
                return "different", diffs[:cut] + ([f"... {len(diffs) - cut} more"] if len(diffs) > cut else [])
            if ra.get("canonical_sha256") == rb.get("canonical_sha256"):
                return "identical", []
            if self.tolerant:
                return "identical", ["equal within the tolerance"]
            return "different", ["same fields and values, different bytes (formatting or key order)"]
        if kind == "text":
            if ra["content"] == rb["content"]:
                return "identical", []
            return "different", [f"{_short(ra['content'], 200)} -> {_short(rb['content'], 200)}"]
        # bytes
        if ra.get("canonical_sha256") == rb.get("canonical_sha256"):
            return "identical", []
        return "different", [f"{ra.get('bytes')} bytes -> {rb.get('bytes')} bytes, different content"]


def _volatile_shape(stats: dict) -> tuple:
    """What must match of a volatile column: its non-null count, and its distinct count unless it
    is dropped. A label's distinct count is structure (how many runs); a dropped column's (clock
    times, durations) is chance: two timings may round to the same value in one run only."""
    if stats.get("how") == "drop":
        return (stats.get("non_null"),)
    return stats.get("non_null"), stats.get("distinct")


def cmd_compare(args: argparse.Namespace) -> int:
    a, da = load_dump(Path(args.before))
    b, db = load_dump(Path(args.after))
    cmp = Comparer(args.rel_tol, args.abs_tol, args.examples)
    if a.get("duckdb_version") != b.get("duckdb_version"):
        print(f"note: dumped with DuckDB {a.get('duckdb_version')} and {b.get('duckdb_version')}: hashes may "
              "differ; tables are then re-checked from their Parquet copies")
    ignore = args.ignore or []
    names = sorted(set(a["objects"]) | set(b["objects"]))
    counts = {"identical": 0, "different": 0, "only-before": 0, "only-after": 0, "not-compared": 0, "ignored": 0}
    for name in names:
        if any(fnmatch.fnmatchcase(name, g) for g in ignore):
            counts["ignored"] += 1
            if not args.problems_only:
                print(f"ignored      {name}")
            continue
        ra, rb = a["objects"].get(name), b["objects"].get(name)
        if rb is None:
            counts["only-before"] += 1
            print(f"ONLY-BEFORE  {name}")
            continue
        if ra is None:
            counts["only-after"] += 1
            print(f"only-after   {name}  (an addition, not a failure)")
            continue
        status, lines = cmp.compare(name, ra, rb, da, db)
        counts[status] += 1
        if status == "not-compared":
            if not args.problems_only:
                print(f"not-compared {name}  ({lines[0]})")
        elif status == "identical":
            if not args.problems_only:
                rows = f"  ({ra['rows']:,} rows)" if "rows" in ra else ""
                print(f"identical    {name}{rows}" + (f"  [{'; '.join(lines)}]" if lines else ""))
        else:
            print(f"DIFFERENT    {name}")
            for line in lines:
                print(f"    {line}")
    failed = counts["different"] + counts["only-before"]
    print()
    print(", ".join(f"{v} {k}" for k, v in counts.items()))
    print("RESULT: " + ("DIFFERENT" if failed else "IDENTICAL") + f" ({args.before} vs {args.after})")
    return 1 if failed else 0


# --------------------------------------------------------------------------------------------
# volatile rules, printed
# --------------------------------------------------------------------------------------------


def cmd_volatile(args: argparse.Namespace) -> int:
    print("Run ids and time-stamped names (replaced in file paths and contents):")
    for kind, (pattern, why) in ID_PATTERNS.items():
        print(f"  {kind:12} {pattern}\n               {why}")
    print("\nTable columns (warehouse and snapshot):")
    for table, cols in TABLE_VOLATILE.items():
        for col, rule in cols.items():
            print(f"  {table}.{col} [{rule.how}]: {rule.why}")
    print("\nColumns of files read as tables:")
    for path, cols in FILE_COLUMN_VOLATILE.items():
        for col, rule in cols.items():
            print(f"  {path} {col} [{rule.how}]: {rule.why}")
    print("\nJSON fields:")
    for path, fields in JSON_VOLATILE.items():
        for field, rule in fields.items():
            print(f"  {path} {field} [{rule.how}]: {rule.why}")
    print("\nLanding files compared as sets of lines:")
    for path, why in UNORDERED_INPUTS.items():
        print(f"  {path}: {why}")
    print("\nFiles not compared:")
    for path, why in SKIPPED_FILES.items():
        print(f"  {path}: {why}")
    print("\nParts of the data folder not dumped:")
    for path, why in NOT_DUMPED.items():
        print(f"  {path}: {why}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.compare_outputs",
        description=__doc__.split("\n\n")[0],
        epilog="See bench/README.md, section 'Comparing outputs before and after a change'.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump", help="record a data folder's outputs canonically",
                       description="Record every output of a retain data folder canonically (see the module doc).")
    d.add_argument("--data-dir", required=True, help="the retain data folder (RETAIN_DATA_DIR of the run)")
    d.add_argument("--out", required=True,
                   help="a folder (summary dump.json plus a Parquet copy of each table, owner-only) or a file "
                        "ending in .json (summary only: compare can then not show differing rows)")
    d.add_argument("--schemas", default="",
                   help="comma-separated warehouse schemas to dump (default: every schema)")
    d.add_argument("--no-inputs", action="store_true", help="do not record the checksums of the landing files")
    d.add_argument("-v", "--verbose", action="store_true", help="print each table with its rows and seconds")
    d.set_defaults(func=cmd_dump)
    c = sub.add_parser("compare", help="compare two dumps; exit 1 if anything present before is missing or different",
                       description="Compare two dumps object by object. Exit code 1 when an object of BEFORE is "
                                   "missing or different in AFTER; objects only in AFTER are additions.")
    c.add_argument("before", help="dump folder (or .json file) of the code before the change")
    c.add_argument("after", help="dump folder (or .json file) of the code after the change")
    c.add_argument("--rel-tol", type=float, default=0.0,
                   help="relative tolerance for floats, e.g. 1e-12 (default 0: exact); numbers in CSV files too")
    c.add_argument("--abs-tol", type=float, default=0.0,
                   help="absolute tolerance for floats, for values near zero (default 0: exact)")
    c.add_argument("--examples", type=int, default=5, help="example differing rows to show per object (default 5)")
    c.add_argument("--ignore", action="append", metavar="GLOB",
                   help="skip objects whose name matches GLOB, e.g. 'file:published/status.json' (repeatable)")
    c.add_argument("--problems-only", action="store_true", help="print only objects that differ or are missing")
    c.set_defaults(func=cmd_compare)
    v = sub.add_parser("volatile", help="list the volatile columns and fields and why they vary",
                       description="Print the volatile columns, fields and file names, and why each varies.")
    v.set_defaults(func=cmd_volatile)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
