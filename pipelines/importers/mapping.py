"""Mapping files: how one kind of platform file maps onto the contract sources.

A mapping is one YAML file (`pipelines/importers/platforms/<platform>/<kind>.yaml` for the
built-in platforms, `_mapping*.yaml` next to the files for anything else). It says how to
recognise the file (`detect`), how to read it (`format`, `records`, `fill_down`), and, per
target contract source, one SQL expression per contract column over the platform's own
columns. Nothing here reads data: `compile_target` turns a mapping into SQL that
`pipelines.importers.driver` hands to the loader as a `_Plan`, so the contract's validation,
quarantine and ledger are the same for every input. See docs/importing.md.

Column expressions are SQL with `{Platform column}` placeholders:

- CSV: `{Lineitem price}` is that header column's text (matched trimmed, case-insensitively);
  `{Accepts Email Marketing|Accepts Marketing}` is the first of those the header has. A
  column the file lacks is NULL (list it in `detect.columns` to require it).
- JSON: `{customer.id}` is the text at that path of the record; in a target with
  `explode: {path: line_items, as: item}`, `{item.price}` is the element's field and
  `{item#}` the element's 1-based position; with a lookup named `profile` (below),
  `{profile.attributes.email}` is a field of the record it found.

Lookups (JSON) join a record to another record of the same file: an Airbyte stream
(`users` in a Zendesk file), an array the API page sideloads next to its records
(`included` of a Klaviyo page, `metric_sets` of a Zendesk page), or, when the file has none,
the same stream or array in the other files of the folder. A `table` lookup joins the latest
row already loaded into a contract source (to merge a record spread over several files). Target `quarantine` rules send
rows matching a condition to quarantine with the mapping's own reason (a value outside the
platform's scale, a record that is not an answer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipelines.core.contract import load_contract
from pipelines.ingest.rules import lit

#: Platforms with a landing folder of their own (`data/landing/<platform>/`).
PLATFORMS = (
    "shopify", "woocommerce", "klaviyo", "zendesk", "gorgias", "judgeme", "yotpo", "trustpilot", "okendo",
    "delighted",
)

#: Where the built-in mappings live: one folder per platform, one YAML per file kind.
BUILTIN_DIR = Path(__file__).with_name("platforms")

#: Name of a user mapping file inside a landing folder (`_mapping.yaml`, `_mapping_orders.yaml`).
USER_MAPPING_GLOB = "_mapping*.y*ml"

#: `{Platform column}`; `{2,}` and the like (regex quantifiers) are not placeholders.
PLACEHOLDER = re.compile(r"\{(?![0-9, ]*\})([^{}]+)\}")

_TOP_KEYS = {"platform", "kind", "title", "format", "records", "detect", "fill_down", "timezone", "targets",
             "source", "lost", "version", "lookups", "hook"}
_COLUMN_KEYS = {"sql", "from", "values", "default", "format", "label", "timezone", "customer"}
_TARGET_KEYS = {"where", "one_row_per", "pick", "prefer", "explode", "columns", "primary", "quarantine"}
_LOOKUP_KEYS = {"from", "key", "on"}
_RULE_KEYS = {"when", "code", "column", "message"}


class MappingError(ValueError):
    """A mapping file that is not valid; the message names the file and the key."""


@dataclass(frozen=True)
class ColumnMap:
    """How one contract column is computed from the platform row."""

    name: str  # contract column
    sql: str  # SQL template with {placeholders}
    label: str  # platform column name(s) shown in quarantine messages
    values: dict[str, str | None] | None = None  # platform value (lower-case) -> contract value
    default: str | None = None  # for values not in `values` (None: keep the value, so it is checked)
    keep_unmapped: bool = True
    format: str | None = None  # timestamps: strptime format, `epoch`, `epoch_ms`
    timezone: str | None = None  # offset-less times: shop | utc | an IANA name (default: the mapping's)
    platform_id: str | None = None  # customer keys: SQL of the platform's own customer id (kept in _extra)


@dataclass(frozen=True)
class Lookup:
    """Another record of the same file (or folder) that a JSON record refers to."""

    name: str  # alias: `{name.path}` in column templates
    sources: tuple[str, ...]  # Airbyte stream names / sideloaded array keys holding the records
    key: str  # SQL template over the looked-up record: its key (`table`: a column of that source)
    on: str  # SQL template over the row: the key it refers to
    table: str | None = None  # instead: the latest loaded row of this contract source (raw.<table>)


@dataclass(frozen=True)
class QuarantineRule:
    """Rows matching `when` are quarantined with this reason instead of loaded."""

    when: str  # SQL template (true: quarantine)
    code: str
    column: str  # platform column named in the reason
    message: str  # text; `{placeholders}` are replaced by the row's values


@dataclass(frozen=True)
class Target:
    """One contract source a platform file feeds."""

    source: str
    columns: tuple[ColumnMap, ...]
    where: str | None = None
    one_row_per: str | None = None
    pick: str = "first"  # first | last: which platform row of a `one_row_per` group gives the values
    prefer: str | None = None  # SQL: rows where it is true win over the others, before `pick`
    explode: tuple[str, str] | None = None  # (JSON path of the array, alias)
    primary: bool = False  # malformed platform rows are quarantined here (one target per file)
    quarantine: tuple[QuarantineRule, ...] = ()


@dataclass(frozen=True)
class Mapping:
    """One kind of platform file."""

    platform: str
    kind: str
    title: str
    format: str  # csv | json
    path: Path
    targets: tuple[Target, ...]
    detect_columns: tuple[str, ...] = ()  # csv: header names that must all be present
    detect_keys: tuple[str, ...] = ()  # json: keys the records have
    detect_streams: tuple[str, ...] = ()  # json: Airbyte stream names of this kind
    records: str | None = None  # json document: path of the record array ('' = top level)
    fill_down: tuple[str, tuple[str, ...]] | None = None  # (group column, columns filled from its first row)
    timezone: str = "shop"
    lost: str = ""
    lookups: tuple[Lookup, ...] = ()  # json: other records joined by key (see the module docstring)
    hook: Path | None = None  # a Python file whose prepare(con, table, path) runs on the staged rows

    @property
    def name(self) -> str:
        """`<platform>/<kind>`: the format label recorded in the ledger."""
        return f"{self.platform}/{self.kind}"

    @property
    def primary_target(self) -> Target:
        """The target malformed rows are quarantined in: the one marked `primary`, else the first not exploded."""
        for t in self.targets:
            if t.primary and not t.explode:
                return t
        return next(t for t in self.targets if not t.explode)

    def placeholders(self) -> set[str]:
        """Every `{...}` reference of the mapping and its detect columns (CSV: the platform columns it stages)."""
        found: set[str] = set()
        for t in self.targets:
            rules = [x for r in t.quarantine for x in (r.when, r.message)]
            texts = [t.where, t.one_row_per, t.prefer, *(c.sql for c in t.columns), *(c.platform_id for c in t.columns),
                     *rules]
            for text in texts:
                if text:
                    found.update(PLACEHOLDER.findall(text))
        if self.fill_down:
            found.add(self.fill_down[0])
            found.update(self.fill_down[1])
        found.update(self.detect_columns)  # what identifies the file is staged too (hooks may read it)
        return found


def _fail(path: Path, where: str, message: str) -> MappingError:
    return MappingError(f"{path}: {where}: {message}")


def _strings(value, path: Path, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(path, where, "expected a list of names")
    return tuple(value)


def _customer_sql(spec: dict, path: Path, where: str) -> tuple[str, str | None]:
    """SQL templates of a customer key and of the platform's own customer id (None if not given).

    The key is the normalised email's `em_` key, else the platform id, else the phone's `ph_`
    key, else the fallback: email first, so that the same person gets the same key from every
    platform and every file, whatever order they are loaded in (docs/importing.md).
    """
    unknown = set(spec) - {"id", "email", "phone", "fallback", "id_prefix"}
    if unknown:
        raise _fail(path, where, f"unknown keys {sorted(unknown)}; expected id, email, phone, fallback, id_prefix")
    from pipelines.importers.identity import email_key_sql, phone_key_sql

    parts = []
    platform_id = None
    if spec.get("email"):
        parts.append(email_key_sql(spec["email"]))
    if spec.get("id"):
        prefix = spec.get("id_prefix", "")
        # Shopify writes a leading ' (for spreadsheets); some JSON ids arrive as floats (123.0)
        ident = f"NULLIF(NULLIF(regexp_replace(trim({spec['id']}), '^''|\\.0$', '', 'g'), ''), '0')"
        platform_id = f"{lit(prefix)} || {ident}" if prefix else ident
        parts.append(platform_id)
    if spec.get("phone"):
        parts.append(phone_key_sql(spec["phone"]))
    if spec.get("fallback"):
        parts.append(spec["fallback"])
    if not parts:
        raise _fail(path, where, "a customer key needs at least one of id, email, phone, fallback")
    return ("COALESCE(" + ", ".join(parts) + ")" if len(parts) > 1 else parts[0]), platform_id


def _column(name: str, spec, path: Path, where: str, contract_type: str) -> ColumnMap:
    if isinstance(spec, str):
        spec = {"sql": spec}
    if not isinstance(spec, dict):
        raise _fail(path, where, "expected an SQL template string or a mapping with `from` or `sql`")
    unknown = set(spec) - _COLUMN_KEYS
    if unknown:
        raise _fail(path, where, f"unknown keys {sorted(unknown)}; expected {sorted(_COLUMN_KEYS)}")
    platform_id = None
    given = [k for k in ("sql", "from", "customer") if k in spec]
    if len(given) != 1:
        raise _fail(path, where, "give exactly one of `from` (a platform column), `sql` or `customer`")
    if "from" in spec:
        froms = _strings(spec["from"], path, where + ".from")
        sql = "{" + "|".join(froms) + "}"
        label = spec.get("label") or froms[0]
    elif "customer" in spec:
        if not isinstance(spec["customer"], dict):
            raise _fail(path, where + ".customer", "expected id / email / phone / fallback")
        sql, platform_id = _customer_sql(spec["customer"], path, where + ".customer")
        refs = PLACEHOLDER.findall(sql)
        label = spec.get("label") or (refs[0].split("|")[0] if refs else name)
    else:
        sql = str(spec["sql"])
        refs = PLACEHOLDER.findall(sql)
        label = spec.get("label") or (refs[0].split("|")[0] if refs else name)
    values = spec.get("values")
    if values is not None:
        if not isinstance(values, dict):
            raise _fail(path, where + ".values", "expected platform value: contract value")
        values = {str(k).strip().lower(): (None if v is None else str(v)) for k, v in values.items()}
    fmt = spec.get("format")
    if fmt is not None and contract_type not in ("timestamp", "date"):
        raise _fail(path, where + ".format",
                    f"only timestamp and date columns take a format ({name} is {contract_type})")
    return ColumnMap(
        name=name, sql=sql, label=str(label), values=values,
        default=None if spec.get("default") is None else str(spec["default"]),
        keep_unmapped="default" not in spec, format=fmt, timezone=spec.get("timezone"), platform_id=platform_id,
    )


def load_mapping(path: Path, platform: str | None = None) -> Mapping:
    """Read and validate one mapping file. Raises MappingError naming the file and key."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise MappingError(f"{path}: cannot be read as YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise MappingError(f"{path}: expected a YAML mapping at the top")
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise _fail(path, "top level", f"unknown keys {sorted(unknown)}; expected {sorted(_TOP_KEYS)}")
    contract = load_contract()
    fmt = doc.get("format")
    if fmt not in ("csv", "json"):
        raise _fail(path, "format", f"{fmt!r}: expected csv or json")
    detect = doc.get("detect") or {}
    if not isinstance(detect, dict) or set(detect) - {"columns", "keys", "streams"}:
        raise _fail(path, "detect", "expected columns (csv header names), keys (json record keys), streams")
    d_cols = _strings(detect.get("columns"), path, "detect.columns")
    d_keys = _strings(detect.get("keys"), path, "detect.keys")
    d_streams = _strings(detect.get("streams"), path, "detect.streams")
    if fmt == "csv" and not d_cols:
        raise _fail(path, "detect.columns", "a CSV mapping names the header columns that identify the file")
    if fmt == "json" and not (d_keys or d_streams):
        raise _fail(path, "detect", "a JSON mapping names record keys and/or Airbyte stream names")
    fill = doc.get("fill_down")
    fill_down = None
    if fill is not None:
        if not isinstance(fill, dict) or not fill.get("by") or not fill.get("columns"):
            raise _fail(path, "fill_down", "expected by: <group column> and columns: [...]")
        fill_down = (str(fill["by"]), _strings(fill["columns"], path, "fill_down.columns"))
    tz = str(doc.get("timezone", "shop"))
    targets_doc = doc.get("targets")
    lookups = _lookups(doc.get("lookups"), path, fmt)
    # `targets: {}`: a kind read only through other kinds' lookups (Zendesk ticket metrics)
    if not isinstance(targets_doc, dict) or not (targets_doc or "targets" in doc):
        raise _fail(path, "targets", "expected one entry per contract source the file feeds")
    targets = []
    for src_name, tdoc in targets_doc.items():
        if src_name not in contract:
            raise _fail(path, f"targets.{src_name}", f"not a contract source; expected one of {', '.join(contract)}")
        if not isinstance(tdoc, dict) or not isinstance(tdoc.get("columns"), dict):
            raise _fail(path, f"targets.{src_name}", "expected columns: {contract column: expression}")
        unknown = set(tdoc) - _TARGET_KEYS
        if unknown:
            raise _fail(path, f"targets.{src_name}", f"unknown keys {sorted(unknown)}; expected {sorted(_TARGET_KEYS)}")
        src = contract[src_name]
        cols = []
        for cname, cspec in tdoc["columns"].items():
            if cname not in src.column_names:
                raise _fail(path, f"targets.{src_name}.columns.{cname}",
                            f"not a column of {src_name}; expected one of {', '.join(src.column_names)}")
            cols.append(_column(cname, cspec, path, f"targets.{src_name}.columns.{cname}", src.column(cname).type))
        missing = [c for c in src.required_columns if c not in tdoc["columns"]]
        if missing:
            raise _fail(path, f"targets.{src_name}", f"required contract columns not mapped: {', '.join(missing)}")
        explode = tdoc.get("explode")
        if explode is not None:
            if fmt != "json" or not isinstance(explode, dict) or not explode.get("path") or not explode.get("as"):
                raise _fail(path, f"targets.{src_name}.explode", "JSON only; expected path: <array> and as: <alias>")
            explode = (str(explode["path"]), str(explode["as"]))
        pick = tdoc.get("pick", "first")
        if pick not in ("first", "last"):
            raise _fail(path, f"targets.{src_name}.pick", "expected first or last")
        targets.append(Target(
            source=src_name, columns=tuple(cols), where=tdoc.get("where"), one_row_per=tdoc.get("one_row_per"),
            pick=pick, prefer=tdoc.get("prefer"), explode=explode, primary=bool(tdoc.get("primary", False)),
            quarantine=_rules(tdoc.get("quarantine"), path, f"targets.{src_name}.quarantine"),
        ))
    if targets and all(t.explode for t in targets):
        raise _fail(path, "targets", "one target must read whole records (no explode): rows that cannot be "
                                     "parsed are quarantined there")
    hook = None
    if doc.get("hook") is not None:
        hook = (Path(path).parent / str(doc["hook"])).resolve()
        if hook.suffix != ".py" or not hook.is_file():
            raise _fail(path, "hook", f"{doc['hook']!r}: expected a .py file next to the mapping")
    plat = str(doc.get("platform") or platform or path.parent.name)
    return Mapping(
        platform=plat, kind=str(doc.get("kind") or path.stem.lstrip("_")), title=str(doc.get("title") or path.stem),
        format=fmt, path=Path(path), targets=tuple(targets), detect_columns=d_cols, detect_keys=d_keys,
        detect_streams=d_streams, records=None if doc.get("records") is None else str(doc["records"]),
        fill_down=fill_down, timezone=tz, lost=str(doc.get("lost") or ""), lookups=lookups, hook=hook,
    )


def _lookups(spec, path: Path, fmt: str) -> tuple[Lookup, ...]:
    if spec is None:
        return ()
    if fmt != "json" or not isinstance(spec, dict):
        raise _fail(path, "lookups", "JSON only; expected name: {from: [streams or arrays], key: ..., on: ...}")
    out = []
    for name, lk in spec.items():
        if isinstance(lk, dict) and True in lk:  # YAML 1.1 reads a bare `on:` key as true
            lk = {("on" if k is True else k): v for k, v in lk.items()}
        if isinstance(lk, dict) and set(lk) == {"stream", "key", "match"}:  # paths: {stream, key, match}
            lk = {"from": lk["stream"], "key": "{" + str(lk["key"]) + "}", "on": "{" + str(lk["match"]) + "}"}
        if isinstance(lk, dict) and set(lk) == {"table", "key", "on"}:
            contract = load_contract()
            if lk["table"] not in contract or lk["key"] not in contract[lk["table"]].column_names:
                raise _fail(path, f"lookups.{name}", "table: a contract source; key: one of its columns")
            out.append(Lookup(str(name), (), str(lk["key"]), str(lk["on"]), table=str(lk["table"])))
            continue
        if not isinstance(lk, dict) or set(lk) != _LOOKUP_KEYS:
            raise _fail(path, f"lookups.{name}",
                        "expected from (stream / array names), key and on; or table (a contract source), key and on")
        out.append(Lookup(str(name), _strings(lk["from"], path, f"lookups.{name}.from"), str(lk["key"]),
                          str(lk["on"])))
    return tuple(out)


def _rules(spec, path: Path, where: str) -> tuple[QuarantineRule, ...]:
    if spec is None:
        return ()
    if not isinstance(spec, list):
        raise _fail(path, where, "expected a list of {when, code, column, message}")
    out = []
    for i, r in enumerate(spec):
        if not isinstance(r, dict) or set(r) != _RULE_KEYS:
            raise _fail(path, f"{where}[{i}]", "expected when (SQL), code, column and message")
        out.append(QuarantineRule(str(r["when"]), str(r["code"]), str(r["column"]), str(r["message"])))
    return tuple(out)


def builtin_mappings(platform: str) -> list[Mapping]:
    """The built-in mappings of a platform, in file name order."""
    folder = BUILTIN_DIR / platform
    if not folder.is_dir():
        return []
    return [load_mapping(p, platform) for p in sorted(folder.glob("*.yaml"))]


def user_mappings(folder: Path) -> list[Mapping]:
    """The `_mapping*.yaml` files of a landing folder (for tools retain has no importer for)."""
    if not folder.is_dir():
        return []
    return [load_mapping(p, folder.name) for p in sorted(folder.glob(USER_MAPPING_GLOB))]


def mappings_for(folder: Path) -> list[Mapping]:
    """Every mapping that applies to a landing folder: its own `_mapping*.yaml` first, then built-ins."""
    return user_mappings(folder) + builtin_mappings(folder.name)


def filled(x: str) -> str:
    """SQL: text `x` without surrounding spaces, NULL when nothing is left (`NULLIF(trim(x), '')`).

    A staged CSV column (`c7`) is trimmed only when it starts or ends with a space: trim()
    allocates a new string for every value, and almost no value needs it. Other SQL is
    trimmed as it is (it would be computed once per test).
    """
    if re.fullmatch(r"c\d+", x):
        return f"CASE WHEN {x} LIKE ' %' OR {x} LIKE '% ' THEN NULLIF(trim({x}), '') ELSE NULLIF({x}, '') END"
    return f"NULLIF(trim({x}), '')"


def _first_filled(parts: list[str]) -> str:
    """SQL: the first of several alternatives that is not empty (exports write "" for nothing)."""
    return "COALESCE(" + ", ".join(filled(p) for p in parts) + ")"


@dataclass
class Columns:
    """Resolves `{...}` placeholders to SQL for one read file."""

    kind: str  # csv | json
    csv_columns: dict[str, str] = field(default_factory=dict)  # lower-case header -> staged column
    record: str = "_rec"  # json: SQL of the record
    aliases: dict[str, str] = field(default_factory=dict)  # json explode alias -> SQL of the element

    def ref(self, name: str) -> str:
        """SQL of one placeholder's text (NULL if the file has no such column)."""
        alts = [a.strip() for a in name.split("|")]
        if self.kind == "csv":
            found = [self.csv_columns[a.lower()] for a in alts if a.lower() in self.csv_columns]
            if not found:
                return "NULL::VARCHAR"
            return found[0] if len(found) == 1 else _first_filled(found)
        parts = [self._json(a) for a in alts]
        return parts[0] if len(parts) == 1 else _first_filled(parts)

    def _json(self, path: str) -> str:
        head, _, rest = path.partition(".")
        if head.endswith("#") and head[:-1] in self.aliases:
            return f"{head[:-1]}_n::VARCHAR"
        if head in self.aliases:
            base = self.aliases[head]
            return f"json_extract_string({base}, {lit('$.' + rest)})" if rest else f"({base})::VARCHAR"
        return f"json_extract_string({self.record}, {lit('$.' + path)})"

    def render(self, template: str) -> str:
        """The template with every placeholder replaced by its SQL."""
        return PLACEHOLDER.sub(lambda m: "(" + self.ref(m.group(1)) + ")", template)

    def render_text(self, template: str) -> str:
        """SQL of a text with `{placeholders}` replaced by the row's values (blank when missing)."""
        parts, pos = [], 0
        for m in PLACEHOLDER.finditer(template):
            parts += [lit(template[pos:m.start()]), f"coalesce(({self.ref(m.group(1))})::VARCHAR, '')"]
            pos = m.end()
        parts.append(lit(template[pos:]))
        return "(" + " || ".join(parts) + ")"
