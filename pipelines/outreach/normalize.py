"""Address validation, E.164 phones, platform hashing and CSV-injection safety, as DuckDB SQL.

Everything here runs inside DuckDB so a list of a million customers is normalised in one
vectorised query: `install_macros(con)` creates `TEMP MACRO`s on the connection (this works on
read-only connections too, because temporary objects live in the connection's own catalog).
The Python helpers (`to_e164`, `normalize_email`, …) run the very same macros on an in-memory
DuckDB, so tests, docs and the exports can never disagree.

E.164 normalisation (no `phonenumbers` dependency, on purpose kept small):

1. strip spaces, tabs, `-`, `.`, `(`, `)`, `/` and the `(0)` that European numbers often carry
   after the country code (`+49 (0)151 …`);
2. `+…` is taken as international, `00…` becomes `+…`;
3. otherwise the number is national and needs the customer's ISO country: one leading trunk
   prefix (`0` in most countries, `1` in the North American plan, `8` in Russia, `06` in
   Hungary; none in Italy, Spain, Portugal, …) is dropped and the calling code is put in front.
   A number that starts with the country's calling code and is long enough to hold a full
   national number after it is taken as international written without `+` (`4915112345678`);
4. the result must look like E.164: `+`, 8 to 15 digits, first digit not 0; `+1` numbers must
   have exactly ten digits after the `1` with an area code that does not start with 0 or 1.

Anything else (letters, extensions, unknown country for a national number) is invalid, which
suppresses the customer for SMS with reason `invalid_address`. Countries missing from
`CALLING_CODES` still work for numbers written with `+` or `00`.
"""

from __future__ import annotations

import hashlib
import threading
from functools import lru_cache

import duckdb

from pipelines.core.warehouse import scratch

#: ISO 3166-1 alpha-2 -> (calling code, trunk prefix dropped from national numbers).
CALLING_CODES: dict[str, tuple[str, str]] = {
    # North American numbering plan: trunk prefix 1 equals the calling code.
    "US": ("1", "1"), "CA": ("1", "1"), "PR": ("1", "1"),
    # Europe
    "DE": ("49", "0"), "AT": ("43", "0"), "CH": ("41", "0"), "LI": ("423", ""),
    "FR": ("33", "0"), "BE": ("32", "0"), "NL": ("31", "0"), "LU": ("352", ""),
    "GB": ("44", "0"), "IE": ("353", "0"), "IT": ("39", ""), "SM": ("378", ""),
    "VA": ("39", ""), "MC": ("377", ""), "ES": ("34", ""), "PT": ("351", ""),
    "DK": ("45", ""), "SE": ("46", "0"), "NO": ("47", ""), "FI": ("358", "0"),
    "IS": ("354", ""), "PL": ("48", ""), "CZ": ("420", ""), "SK": ("421", "0"),
    "HU": ("36", "06"), "RO": ("40", "0"), "BG": ("359", "0"), "GR": ("30", ""),
    "HR": ("385", "0"), "SI": ("386", "0"), "RS": ("381", "0"), "BA": ("387", "0"),
    "EE": ("372", ""), "LV": ("371", ""), "LT": ("370", "8"), "MT": ("356", ""),
    "CY": ("357", ""), "TR": ("90", "0"), "UA": ("380", "0"), "RU": ("7", "8"),
    # Rest of the world
    "AU": ("61", "0"), "NZ": ("64", "0"), "JP": ("81", "0"), "KR": ("82", "0"),
    "CN": ("86", "0"), "HK": ("852", ""), "SG": ("65", ""), "IN": ("91", "0"),
    "IL": ("972", "0"), "AE": ("971", "0"), "SA": ("966", "0"), "ZA": ("27", "0"),
    "BR": ("55", "0"), "MX": ("52", ""), "AR": ("54", "0"), "CL": ("56", ""),
    "CO": ("57", ""), "PE": ("51", "0"),
}

#: Common non-ISO spellings mapped to ISO 3166-1 alpha-2 (Mailchimp and Google want ISO).
COUNTRY_ALIASES = {"UK": "GB", "EL": "GR"}

#: Cell prefixes that make spreadsheet programs evaluate a cell (OWASP CSV injection), plus
#: their full-width forms, which some spreadsheet locales treat the same way.
INJECTION_PREFIXES = "=+-@\t\r＝＋－＠"

_EMAIL_ATOM = "[a-z0-9!#$%&'*+/=?^_`{|}~-]"
#: Valid (lower-cased) email: the local part starts with a letter, digit or underscore (so a
#: valid address can never start a formula), no empty dot-separated parts, a dotted domain
#: with a letters-only top-level label.
EMAIL_PATTERN = (
    rf"[a-z0-9_](?:{_EMAIL_ATOM}|\.{_EMAIL_ATOM})*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)
E164_PATTERN = r"\+[1-9][0-9]{7,14}"


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _map_literal(pairs: dict[str, str]) -> str:
    return "MAP {" + ", ".join(f"{_sql_str(k)}: {_sql_str(v)}" for k, v in pairs.items()) + "}"


def macro_sql() -> list[str]:
    """The `CREATE OR REPLACE TEMP MACRO` statements behind every normalisation in retain exports."""
    codes = _map_literal({k: v[0] for k, v in CALLING_CODES.items()})
    trunks = _map_literal({k: v[1] for k, v in CALLING_CODES.items() if v[1]})
    aliases = _map_literal(COUNTRY_ALIASES)
    # DuckDB macros are substituted textually, so a parameter used three times is computed
    # three times. `list_transform([expr], lambda v: ...)[1]` binds an expensive argument
    # once (a "let"), which keeps the E.164 and hashing macros cheap on millions of rows.
    return [
        # Country: trimmed upper-case ISO alpha-2, aliases mapped, anything else NULL.
        f"""CREATE OR REPLACE TEMP MACRO retain_country(c) AS (
            list_transform([upper(trim(c))], lambda _u:
                CASE WHEN regexp_full_match(coalesce({aliases}[_u], _u), '[A-Z]{{2}}')
                     THEN coalesce({aliases}[_u], _u) END)[1])""",
        # Email: trimmed, lower-case, validated; NULL when invalid.
        f"""CREATE OR REPLACE TEMP MACRO retain_email(e) AS (
            list_transform([lower(trim(e))], lambda _e:
                CASE WHEN length(_e) <= 254 AND length(split_part(_e, '@', 1)) <= 64
                      AND regexp_full_match(_e, {_sql_str(EMAIL_PATTERN)}) THEN _e END)[1])""",
        # Google Customer Match: for gmail.com / googlemail.com the dots before @ go.
        """CREATE OR REPLACE TEMP MACRO retain_email_google(e) AS (
            list_transform([retain_email(e)], lambda _g:
                CASE WHEN split_part(_g, '@', 2) IN ('gmail.com', 'googlemail.com')
                     THEN replace(split_part(_g, '@', 1), '.', '') || '@' || split_part(_g, '@', 2)
                     ELSE _g END)[1])""",
        f"CREATE OR REPLACE TEMP MACRO retain_calling_code(c) AS ({codes}[retain_country(c)])",
        f"CREATE OR REPLACE TEMP MACRO retain_trunk_prefix(c) AS (coalesce({trunks}[retain_country(c)], ''))",
        r"""CREATE OR REPLACE TEMP MACRO retain_phone_clean(p) AS (
            regexp_replace(replace(trim(p), '(0)', ''), '[ \t\-.()/]', '', 'g'))""",
        r"""CREATE OR REPLACE TEMP MACRO retain_e164_candidate(s, cc, trunk) AS (
            CASE WHEN s IS NULL OR s = '' THEN NULL
                 WHEN starts_with(s, '+') THEN s
                 WHEN starts_with(s, '00') THEN '+' || s[3:]
                 WHEN cc IS NULL THEN NULL
                 WHEN trunk <> '' AND starts_with(s, trunk) THEN '+' || cc || s[length(trunk) + 1:]
                 WHEN trunk <> '' AND starts_with(s, cc) AND length(s) - length(cc) >= 8 THEN '+' || s
                 ELSE '+' || cc || s END)""",
        rf"""CREATE OR REPLACE TEMP MACRO retain_e164_valid(x) AS (
            coalesce(regexp_full_match(x, '{E164_PATTERN}')
                     AND (NOT starts_with(x, '+1') OR regexp_full_match(x, '\+1[2-9][0-9]{{9}}')), false))""",
        """CREATE OR REPLACE TEMP MACRO retain_e164(p, c) AS (
            list_transform(
                [{'s': retain_phone_clean(p), 'cc': retain_calling_code(c), 'tr': retain_trunk_prefix(c)}],
                lambda _x: list_transform([retain_e164_candidate(_x.s, _x.cc, _x.tr)], lambda _y:
                    CASE WHEN retain_e164_valid(_y) THEN _y END)[1])[1])""",
        # SHA-256 hex of a normalised value; NULL or empty stays NULL (never the hash of '').
        """CREATE OR REPLACE TEMP MACRO retain_sha256(v) AS (
            list_transform([v], lambda _h:
                CASE WHEN _h IS NULL OR _h = '' THEN NULL ELSE sha256(nfc_normalize(_h)) END)[1])""",
        # Meta names: lower-case letters only (any script), no spaces or punctuation.
        r"""CREATE OR REPLACE TEMP MACRO retain_meta_name(n) AS (
            regexp_replace(lower(nfc_normalize(trim(n))), '[^\p{L}]', '', 'g'))""",
        # Meta zip: lower-case, no spaces or dashes; US zips keep the first five digits.
        r"""CREATE OR REPLACE TEMP MACRO retain_meta_zip(z, c) AS (
            list_transform([regexp_replace(lower(trim(z)), '[\s\-]', '', 'g')], lambda _z:
                CASE WHEN retain_country(c) = 'US' THEN left(_z, 5) ELSE _z END)[1])""",
        # OWASP CSV injection: prefix a quote to text cells that a spreadsheet would evaluate.
        # (A lookup of the first character: a regular expression per cell costs seconds at 1M rows.)
        f"""CREATE OR REPLACE TEMP MACRO retain_csv_safe(v) AS (
            list_transform([v], lambda _c:
                CASE WHEN _c <> '' AND contains({_sql_str(INJECTION_PREFIXES)}, left(_c, 1))
                     THEN '''' || _c ELSE _c END)[1])""",
    ]


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Create the `retain_*` normalisation macros on `con` (idempotent, read-only safe)."""
    for stmt in macro_sql():
        con.execute(stmt)


@lru_cache(maxsize=1)
def _scratch() -> duckdb.DuckDBPyConnection:
    con = scratch()
    install_macros(con)
    return con


_LOCK = threading.Lock()


def _one(sql: str, *params: object) -> object:
    # Temporary macros belong to one connection, so the scratch connection is shared (locked)
    # rather than opening cursors, which would not see them.
    with _LOCK:
        return _scratch().execute(sql, list(params)).fetchall()[0][0]


def to_e164(number: str | None, country: str | None) -> str | None:
    """Normalise a phone number to E.164 (`+4915112345678`) using the customer's ISO country, or None."""
    return _one("SELECT retain_e164(?::VARCHAR, ?::VARCHAR)", number, country)


def normalize_email(email: str | None) -> str | None:
    """Trimmed, lower-case email if it is valid, else None."""
    return _one("SELECT retain_email(?::VARCHAR)", email)


def google_email(email: str | None) -> str | None:
    """The email as Google Customer Match normalises it before hashing (gmail dots removed)."""
    return _one("SELECT retain_email_google(?::VARCHAR)", email)


def neutralize_cell(value: str | None) -> str | None:
    """The CSV-injection-safe form of a text cell (a leading `'` before `=`, `+`, `-`, `@`, tab, CR)."""
    return _one("SELECT retain_csv_safe(?::VARCHAR)", value)


def sha256_hex(value: str) -> str:
    """SHA-256 hex of a UTF-8 string, as the hashed export formats write it."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def mask_email(email: str | None) -> str:
    """`jane.doe@example.com` -> `j***@e***.com`, for log messages (emails are personal data)."""
    if not email or "@" not in email:
        return "***"
    local, _, domain = email.strip().partition("@")
    host, dot, tld = domain.rpartition(".")
    host = host or tld
    return f"{local[:1]}***@{host[:1]}***{dot}{tld if dot else ''}"


def mask_phone(phone: str | None) -> str:
    """`+4915112345678` -> `+49*******678`, for log messages."""
    if not phone:
        return "***"
    p = phone.strip()
    return p[:3] + "*" * max(len(p) - 6, 3) + p[-3:]
