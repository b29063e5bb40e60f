"""Row validation rules, generated from the data contract as SQL.

Nothing here knows a source by name: every rule comes from `pipelines.core.contract` (types,
required, allowed values, min/max, format, row checks, primary key). The loader hands in one
SQL expression per contract column that yields the file's raw text for that column (or NULL
when the file lacks the column); this module turns those into

- a typed expression per column (what lands in `raw.<source>`),
- one `_reason` struct per row, `{code, col, msg}`, NULL when the row is good: the first
  failing rule wins, columns in contract order, then the contract's row checks,
- for optional `format` columns, the test and message that null an invalid value after the
  row has loaded (`format_warning_sql`).

Everything is set-based: the expressions run inside one `CREATE TEMP TABLE ... AS SELECT`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from pipelines.core.contract import DATE_TYPES, Column, Source

#: Longest value (bytes) accepted in any column; longer ones quarantine the row. 1 MB is far
#: beyond any real field in these sources and keeps a runaway value (a whole file swallowed
#: into one field) out of the warehouse.
MAX_VALUE_BYTES = 1_000_000

#: Timestamps before this are treated as "unset" defaults (epoch zero and friends), not data.
EARLIEST_TIMESTAMP = "1970-01-02"

#: How far into the future a timestamp may lie (clock skew between systems).
FUTURE_TOLERANCE = timedelta(days=1)

#: SQL literal of the characters trimmed around values.
WHITESPACE = "' \t\r\n'"

#: Shown in messages: at most this many characters of a bad value.
SHOWN_CHARS = 60

EMAIL_RE = r"[^@\s]+@[^@\s]+\.[^@\s.]{2,}"
# E.164 preferred, but shops store phones with spaces, dashes, dots and brackets; a phone is
# valid when it has 6 to 15 digits and only those separators (and at most one leading +).
PHONE_RE = r"\+?[0-9][0-9 ()./-]{4,24}[0-9]"
PHONE_DIGITS = (6, 15)

#: ISO 3166-1 alpha-2 codes (the 249 assigned codes, as in the tz database's iso3166.tab).
_COUNTRY_TEXT = """AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT
    BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER
    ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID
    IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV
    LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR
    NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL
    SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC
    VE VG VI VN VU WF WS YE YT ZA ZM ZW"""
COUNTRY_CODES = frozenset(_COUNTRY_TEXT.split())

#: Formats whose values are personal data: messages show only a masked hint of the value.
PERSONAL_FORMATS = frozenset({"email", "phone"})

#: Row reason codes (quarantine) and what they mean; docs/ingestion.md has the same table.
REASON_CODES = {
    "malformed_row": "the CSV parser could not split the row (wrong number of fields, stray quote)",
    "malformed_json": "a JSON Lines line that is not a JSON object",
    "value_too_long": f"a value longer than {MAX_VALUE_BYTES:,} bytes",
    "missing_required": "a required column is empty",
    "invalid_type": "not a number / integer / boolean as the contract types the column",
    "invalid_timestamp": "not an ISO 8601 timestamp (or date)",
    "invalid_date": "not an ISO 8601 date",
    "not_allowed": "not one of the contract's allowed values",
    "out_of_range": "below the contract's min or above its max (numbers; required dates and timestamps)",
    "future_timestamp": "later than now + 1 day (a timestamp column without contract bounds)",
    "implausible_timestamp": f"before {EARLIEST_TIMESTAMP} (an unset default such as epoch zero; a timestamp "
                             "column without contract bounds)",
    "invalid_format": "a required email / phone / country that is not valid",
    "duplicate_key": "the primary key already appeared earlier in the same file",
}

#: Warning codes: the row loads, the value is nulled and recorded in raw._warnings.
WARNING_CODES = {
    "invalid_format": "an optional email / phone / country that is not valid; nulled",
    "out_of_range": "an optional date / timestamp outside the contract's min / max (9999-12-31, 1900-01-01); nulled",
}


def q(name: str) -> str:
    """Quote an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def lit(text: str) -> str:
    """Quote an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def shown(value_sql: str, personal: bool = False) -> str:
    """SQL for a bad value as shown in a message: quoted, shortened, masked if personal."""
    if personal:
        # Enough to recognise the value in the file, not enough to read the address.
        return f"('''' || left({value_sql}, 2) || '…'' (' || length({value_sql}) || ' characters)')"
    return (
        f"('''' || left({value_sql}, {SHOWN_CHARS}) || "
        f"CASE WHEN length({value_sql}) > {SHOWN_CHARS} THEN '…' ELSE '' END || '''')"
    )


def _reason(code: str, column: str | None, message_sql: str) -> str:
    col = "NULL::VARCHAR" if column is None else lit(column)
    return f"{{'code': {lit(code)}, 'col': {col}, 'msg': {message_sql}}}"


def format_valid_sql(fmt: str, v: str) -> str:
    """SQL that is true when the (trimmed) value `v` satisfies a contract `format`."""
    if fmt == "email":
        return f"regexp_full_match({v}, {lit(EMAIL_RE)})"
    if fmt == "phone":
        lo, hi = PHONE_DIGITS
        return (
            f"(regexp_full_match({v}, {lit(PHONE_RE)}) AND "
            f"length(regexp_replace({v}, '[^0-9]', '', 'g')) BETWEEN {lo} AND {hi})"
        )
    if fmt == "country":
        # One regex alternation (a DFA) instead of a 249-value IN list compared one by one.
        return f"regexp_full_match({v}, {lit('(?i)' + '|'.join(sorted(COUNTRY_CODES)))})"
    raise ValueError(f"unknown contract format {fmt!r}; expected email, phone or country")


FORMAT_NAMES = {"email": "email address", "phone": "phone number", "country": "ISO 3166-1 alpha-2 country code"}


def typed_sql(col: Column, v: str) -> str:
    """SQL turning the trimmed text `v` into the column's contract type (NULL if it can't)."""
    t = col.type
    if t == "varchar":
        if col.allowed:
            return f"lower({v})"
        if col.format == "country":
            return f"upper({v})"
        return v
    if t == "integer":
        # TRY_CAST('4.5' AS BIGINT) rounds to 5; a fractional value is not an integer.
        return (
            f"CASE WHEN TRY_CAST({v} AS DOUBLE) = round(TRY_CAST({v} AS DOUBLE)) "
            f"THEN TRY_CAST({v} AS BIGINT) END"
        )
    if t == "decimal":
        return f"TRY_CAST({v} AS {col.duckdb_type})"
    if t == "boolean":
        return f"TRY_CAST(trim({v}, {WHITESPACE}) AS BOOLEAN)"  # the one cast that refuses ' true '
    if t == "timestamp":
        # Parsed as TIMESTAMPTZ so offsets and Z are honoured; the session time zone is UTC, so
        # the cast back to TIMESTAMP gives naive UTC. A value without offset is taken as UTC.
        # A value ending in Z is UTC already: the plain TIMESTAMP cast (3x cheaper) is exact
        # for it; it would ignore any other offset, so those take the TIMESTAMPTZ path.
        return (
            f"CASE WHEN {v} LIKE '%Z' THEN TRY_CAST({v} AS TIMESTAMP) "
            f"ELSE TRY_CAST(TRY_CAST({v} AS TIMESTAMPTZ) AS TIMESTAMP) END"
        )
    if t == "date":
        return f"COALESCE(TRY_CAST({v} AS DATE), TRY_CAST(TRY_CAST({v} AS TIMESTAMP) AS DATE))"
    raise ValueError(f"no SQL for contract type {t!r}")


_TYPE_WORDS = {
    "integer": ("invalid_type", "is not an integer"),
    "decimal": ("invalid_type", "is not a decimal number (use . as the decimal point, no currency sign)"),
    "boolean": ("invalid_type", "is not a boolean (true/false)"),
    "timestamp": (
        "invalid_timestamp",
        "is not an ISO 8601 timestamp (e.g. 2024-05-01T14:30:00Z, 2024-05-01 14:30:00+02:00 or 2024-05-01)",
    ),
    "date": ("invalid_date", "is not an ISO 8601 date (e.g. 2024-05-01)"),
}


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


@dataclass(frozen=True)
class ColumnSql:
    """The SQL pieces for one contract column."""

    name: str
    value: str  # trimmed text, NULL when empty
    typed: str  # the typed value that loads
    checks: list[str]  # `WHEN <bad> THEN <reason struct>` branches, in order
    good: str | None  # cheap SQL true only if no check can fire (None: never fires)


def blank_sql(col: Column, v: str, t: str) -> str:
    """SQL true when the column has no value.

    Text columns arrive trimmed (NULL when nothing is left). Other columns are cast untrimmed,
    since TRY_CAST ignores surrounding spaces and trimming every value is costly; a value that
    fails the cast is blank if it is only whitespace (trim runs for those rows alone).
    """
    if col.type == "varchar":
        return f"{v} IS NULL"
    return f"({v} IS NULL OR ({t} IS NULL AND trim({v}, {WHITESPACE}) = ''))"


def column_sql(col: Column, v: str, t: str, now: datetime) -> ColumnSql:
    """Build the rules of one column.

    `v` names the file's text (trimmed for varchar columns, NULL when empty) and `t` the typed
    value, both as columns of an inner query, so each cast is written once.
    """
    name = col.name
    personal = col.format in PERSONAL_FORMATS
    blank = blank_sql(col, v, t)
    branches: list[str] = []
    # `good`: what a fine value satisfies, in one expression (see the loader's `_reason`).
    fine: list[str] = []
    if col.required:
        branches.append(
            f"WHEN {blank} THEN " + _reason("missing_required", name, lit(f"{name} is required but empty"))
        )
    if col.type in _TYPE_WORDS:
        code, words = _TYPE_WORDS[col.type]
        msg = f"{lit(name + ': ')} || {shown(v)} || {lit(' ' + words)}"
        branches.append(f"WHEN {t} IS NULL AND NOT {blank} THEN " + _reason(code, name, msg))
    if col.allowed:
        allowed = ", ".join(lit(a.lower()) for a in col.allowed)
        msg = f"{lit(name + ': ')} || {shown(v)} || {lit(' is not one of ' + ', '.join(col.allowed))}"
        branches.append(f"WHEN {t} NOT IN ({allowed}) THEN " + _reason("not_allowed", name, msg))
        fine.append(f"{t} IN ({allowed})")
    dated = col.type in DATE_TYPES and (col.min is not None or col.max is not None)
    if dated and col.required:  # optional ones: see range_warning_sql
        bad, msg = _date_range_sql(col, v, t, now)
        branches.append(f"WHEN {bad} THEN " + _reason("out_of_range", name, msg))
        fine.append(f"NOT ({bad})")
    if col.min is not None and not dated:
        msg = f"{lit(name + ': ')} || {t}::VARCHAR || {lit(' is below the minimum ' + _num(col.min))}"
        branches.append(f"WHEN {t} < {col.min} THEN " + _reason("out_of_range", name, msg))
        fine.append(f"{t} >= {col.min}")
    if col.max is not None and not dated:
        msg = f"{lit(name + ': ')} || {t}::VARCHAR || {lit(' is above the maximum ' + _num(col.max))}"
        branches.append(f"WHEN {t} > {col.max} THEN " + _reason("out_of_range", name, msg))
        fine.append(f"{t} <= {col.max}")
    if col.type == "timestamp" and not dated:  # contract bounds replace the generic ones
        limit = (now + FUTURE_TOLERANCE).replace(microsecond=0, tzinfo=None)
        msg = (
            f"{lit(name + ': ')} || {shown(v)} || "
            f"{lit(f' is in the future (later than {limit:%Y-%m-%d %H:%M} UTC, now + 1 day)')}"
        )
        branches.append(
            f"WHEN {t} > TIMESTAMP {lit(limit.isoformat(sep=' '))} THEN " + _reason("future_timestamp", name, msg)
        )
        msg = (
            f"{lit(name + ': ')} || {shown(v)} || "
            f"{lit(f' is before {EARLIEST_TIMESTAMP}: an unset default (epoch zero?), not a real time')}"
        )
        branches.append(
            f"WHEN {t} < TIMESTAMP {lit(EARLIEST_TIMESTAMP)} THEN " + _reason("implausible_timestamp", name, msg)
        )
        fine.append(f"{t} BETWEEN TIMESTAMP {lit(EARLIEST_TIMESTAMP)} AND TIMESTAMP {lit(limit.isoformat(sep=' '))}")
    if col.format and col.required:  # optional ones: see format_warning_sql
        bad = f"{v} IS NOT NULL AND NOT {format_valid_sql(col.format, v)}"
        words = f" is not a valid {FORMAT_NAMES[col.format]}"
        msg = f"{lit(name + ': ')} || {shown(v, personal)} || {lit(words)}"
        branches.append(f"WHEN {bad} THEN " + _reason("invalid_format", name, msg))
        fine.append(format_valid_sql(col.format, v))
    good = None
    if branches:
        # A present value that casts and passes every rule; an absent optional value. Anything
        # else (including a blank-but-not-NULL value) goes through the full CASE.
        present = " AND ".join([f"{t} IS NOT NULL", *fine])
        good = present if col.required else f"({v} IS NULL OR ({present}))"
    return ColumnSql(name=name, value=v, typed=t, checks=branches, good=good)


def _sql_moment(col: Column, moment: datetime) -> str:
    """SQL literal of a bound in the column's type."""
    if col.type == "date":
        return f"DATE {lit(moment.date().isoformat())}"
    return f"TIMESTAMP {lit(moment.replace(microsecond=0).isoformat(sep=' '))}"


def date_range_text(col: Column, now: datetime) -> str:
    """The allowed range of a date / timestamp column as shown in messages: the resolved
    moments, then the contract's bounds when they are relative (`now+1d`)."""
    lo, hi = col.date_range(now)
    fmt = "%Y-%m-%d" if col.type == "date" else "%Y-%m-%d %H:%M"
    shown_lo = "any time" if lo is None else lo.strftime(fmt)
    shown_hi = "any time" if hi is None else hi.strftime(fmt)
    text = f"{shown_lo} … {shown_hi}" + (" UTC" if col.type == "timestamp" else "")
    written = [str(b) for b in (col.min, col.max) if b is not None]
    if any(b.startswith("now") for b in written):
        text += f" (contract: {'' if col.min is None else col.min} … {'' if col.max is None else col.max})"
    return text


def _date_range_sql(col: Column, v: str, t: str, now: datetime) -> tuple[str, str]:
    """(condition, message) SQL for a date / timestamp value outside the contract's min / max."""
    lo, hi = col.date_range(now)
    outside = []
    if lo is not None:
        outside.append(f"{t} < {_sql_moment(col, lo)}")
    if hi is not None:
        outside.append(f"{t} > {_sql_moment(col, hi)}")
    bad = "(" + " OR ".join(outside) + ")"
    msg = f"{lit(col.name + ': ')} || {shown(v)} || {lit(' is outside the allowed range ' + date_range_text(col, now))}"
    return bad, msg


def range_warning_sql(col: Column, value: str, now: datetime) -> tuple[str, str]:
    """(condition, message) SQL for an optional date / timestamp column whose loaded value lies
    outside the contract's range (a placeholder such as 9999-12-31 or 1900-01-01, usually).

    Such a value is nulled after the row loads and the message recorded in raw._warnings.
    """
    bad, msg = _date_range_sql(col, f"{value}::VARCHAR", value, now)
    return f"{value} IS NOT NULL AND {bad}", f"{msg} || '; the value was left empty'"


def format_warning_sql(col: Column, value: str) -> tuple[str, str]:
    """(condition, message) SQL for an optional `format` column whose loaded value is invalid.

    Such a value is nulled after the row loads and the message recorded in raw._warnings.
    """
    bad = f"{value} IS NOT NULL AND NOT {format_valid_sql(col.format, value)}"
    msg = (
        f"{lit(col.name + ': ')} || {shown(value, col.format in PERSONAL_FORMATS)} || "
        f"{lit(f' is not a valid {FORMAT_NAMES[col.format]}; the value was left empty')}"
    )
    return bad, msg


def row_check_branches(src: Source) -> list[str]:
    """`WHEN` branches for the contract's row checks, evaluated on the typed columns.

    A check whose condition is NULL (an optional column is empty) passes: only a definite
    FALSE quarantines. The message lists the values of the columns the condition mentions.
    """
    branches = []
    for chk in src.checks:
        mentioned = [c for c in src.column_names if re.search(rf"\b{re.escape(c)}\b", chk.condition)]
        values = " || ', ' || ".join(
            f"{lit(c + '=')} || COALESCE({q(c)}::VARCHAR, 'empty')" for c in mentioned
        ) or "''"
        msg = f"{lit(chk.message + ' (')} || {values} || ')'"
        branches.append(
            f"WHEN NOT COALESCE(({chk.condition}), TRUE) THEN "
            + _reason(chk.code, ", ".join(mentioned) or None, msg)
        )
    return branches


def too_long_branch(raw_sql: str, label: str) -> str:
    """`WHEN` branch quarantining a raw value longer than MAX_VALUE_BYTES."""
    msg = (
        f"{lit(label + ': the value is ')} || strlen({raw_sql}) || "
        f"{lit(f' bytes long; the limit is {MAX_VALUE_BYTES:,}')}"
    )
    return f"WHEN strlen({raw_sql}) > {MAX_VALUE_BYTES} THEN " + _reason("value_too_long", label, msg)
