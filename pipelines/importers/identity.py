"""One customer across platforms: customer keys, and the identity table that records them.

Keys (what a platform row's `customer_id` becomes in `raw.*`; decided per row, so the same
from run to run and whatever order files arrive in):

- `em_` + the first 20 hex digits of md5(normalised email) (trim + lower-case) when the row
  has a usable email: the same person gets the same key from Shopify's orders export, its
  customers export, the API, WooCommerce or a helpdesk, with no lookup at all,
- else the platform's own customer id (Shopify ids as they are, WooCommerce `wc_<id>`,
  other tools prefixed with their platform),
- else `ph_` + md5 of the E.164 phone,
- else a fallback the mapping names (e.g. `anon_shopify_<order id>`: an order nobody can be
  tied to is kept as its own customer, never dropped).

The platform's own id is kept next to the key (`_extra.platform_customer_id`).

`resolve` (run at the end of every full ingest and by the Dagster asset
`raw/_customer_identity`) recomputes `raw._customer_identity` from the whole raw layer: per
key its platform, platform customer id, normalised email, E.164 phone and the retain customer
id it resolves to (its email's key; a key without email joins the email key of the same
platform id, else of the same phone, else the phone's own `ph_` key; otherwise itself; a
group holding a contract customer resolves to the contract's id; the platform id of a person
keyed by email is a key too), and `raw._identity_match`, each
source's match rate. dbt staging reads every `customer_id` through it (`macros/identity.sql`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb

from pipelines.ingest.rules import lit, q
from pipelines.ingest.schema import IDENTITY_DDL

#: Platforms whose customer ids are the shop's own: they win a group.
SHOP_PLATFORMS = ("shopify", "woocommerce")

#: `_extra` key of raw.customers holding the platform's own customer id (see mapping `customer:`).
PLATFORM_ID_KEY = "platform_customer_id"

#: Contract sources with a customer_id, whose match rate is measured.
MATCHED_SOURCES = ("orders", "messages", "survey_responses", "reviews", "support_tickets")


def normalised_email_sql(x: str) -> str:
    """SQL: the email trimmed and lower-cased, NULL unless it looks like an address."""
    e = f"lower(trim({x}))"
    # something@something.tld without spaces: LIKE is several times cheaper than a regex here
    # (and the loader validates email columns with the full rule anyway)
    return f"CASE WHEN {e} LIKE '%_@_%._%' AND NOT contains({e}, ' ') THEN {e} END"


def e164_sql(x: str) -> str:
    """SQL: the phone as E.164 (`+` and 8 to 15 digits), NULL when it has no country code.

    `+1 613-555-0127` and `0016135550127` become `+16135550127`; a national number without
    a country code (`0151 1234567`) cannot be made E.164 without guessing, so it is NULL.
    """
    t = f"trim({x})"
    digits = f"regexp_replace({t}, '[^0-9]', '', 'g')"
    return (
        f"CASE WHEN regexp_full_match({t}, '\\+?[0-9][0-9 ()./-]+[0-9]') THEN "
        f"CASE WHEN {t} LIKE '+%' AND length({digits}) BETWEEN 8 AND 15 THEN '+' || {digits} "
        f"WHEN {t} LIKE '00%' AND length({digits}) BETWEEN 10 AND 17 THEN '+' || substr({digits}, 3) END END"
    )


def email_key_sql(x: str) -> str:
    """SQL: `em_<md5 prefix>` of the normalised email, NULL without a usable email."""
    return f"('em_' || left(md5({normalised_email_sql(x)}), 20))"


def phone_key_sql(x: str) -> str:
    """SQL: `ph_<md5 prefix>` of the E.164 phone, NULL without one."""
    return f"('ph_' || left(md5({e164_sql(x)}), 20))"




def _platform_sql(file_col: str) -> str:
    """SQL: the platform a raw row came from (its landing folder), `retain` for contract folders."""
    from pipelines.core.contract import SOURCE_NAMES

    folder = f"split_part({file_col}, '/', 1)"
    names = ", ".join(f"'{n}'" for n in SOURCE_NAMES)
    return f"CASE WHEN {folder} IN ({names}) THEN 'retain' ELSE {folder} END"


def resolve(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Recompute `raw._customer_identity` and `raw._identity_match` from the raw layer.

    Returns the match rows (source, platform, rows, matched, unmatched, match_rate). A row is
    matched when its customer is a shop customer: the customer's group (same key, else same
    E.164 phone as a key with an email) holds a customer record from Shopify, WooCommerce or
    the contract's `customers/` folder. Unmatched rows stay under their own key and are counted.
    """
    for ddl in IDENTITY_DDL:
        con.execute(ddl)
    now = datetime.now(UTC).replace(tzinfo=None)
    plat = _platform_sql("_source_file")
    shop = "platform IN ('retain', " + ", ".join(f"'{p}'" for p in SHOP_PLATFORMS) + ")"
    derived = ("customer_key LIKE 'em\\_%' ESCAPE '\\' OR customer_key LIKE 'ph\\_%' ESCAPE '\\' "
               "OR customer_key LIKE 'anon\\_%' ESCAPE '\\'")
    con.begin()
    try:
        con.execute("DELETE FROM raw._customer_identity")
        con.execute(
            f"""INSERT INTO raw._customer_identity
            WITH named AS (
                SELECT customer_id AS customer_key, {plat} AS platform, email, phone,
                       _extra->>'$.{PLATFORM_ID_KEY}' AS platform_customer_id
                FROM raw.customers
            ),
            keys AS (
                SELECT customer_key, min(platform) AS platform, bool_or({shop}) AS from_shop,
                       bool_or(platform = 'retain') AS from_contract,
                       max({normalised_email_sql('email')}) AS email_normalised,
                       max({e164_sql('phone')}) AS phone_e164,
                       max(platform_customer_id) AS platform_customer_id
                FROM (
                    SELECT * FROM named
                    UNION ALL
                    -- the platform's own id of a person keyed by email is a key too: rows of
                    -- other files that name the person by that id alone (a Zendesk requester
                    -- id, a Delighted person) resolve through it
                    SELECT platform_customer_id, platform, email, phone, platform_customer_id FROM named
                    WHERE platform_customer_id IS NOT NULL AND platform_customer_id <> customer_key
                ) GROUP BY customer_key
            ),
            -- a key without an email joins the email key of the same platform customer id (a
            -- Shopify id seen elsewhere with an email), else of the same phone (the smallest one), else
            -- the phone's own ph_ key (no-email keys of one phone: one customer)
            by_platform_id AS (
                SELECT platform_customer_id, min('em_' || left(md5(email_normalised), 20)) AS email_key
                FROM keys WHERE platform_customer_id IS NOT NULL AND email_normalised IS NOT NULL GROUP BY 1
            ),
            by_phone AS (
                SELECT phone_e164, min('em_' || left(md5(email_normalised), 20)) AS email_key
                FROM keys WHERE phone_e164 IS NOT NULL AND email_normalised IS NOT NULL GROUP BY 1
            ),
            resolved AS (
                SELECT k.*,
                       CASE WHEN k.email_normalised IS NOT NULL THEN 'em_' || left(md5(k.email_normalised), 20)
                            ELSE COALESCE(i.email_key, p.email_key, 'ph_' || left(md5(k.phone_e164), 20),
                                          k.customer_key) END AS resolved_id
                FROM keys k
                LEFT JOIN by_platform_id i ON i.platform_customer_id = k.customer_key
                LEFT JOIN by_phone p ON p.phone_e164 = k.phone_e164
            )
            SELECT customer_key, platform,
                   COALESCE(platform_customer_id, CASE WHEN NOT ({derived}) THEN customer_key END),
                   email_normalised, phone_e164,
                   -- a group holding a contract customer keeps the contract's id (contract files
                   -- alone keep their ids; platform rows of the same person join them)
                   COALESCE(min(customer_key) FILTER (WHERE from_contract) OVER (PARTITION BY resolved_id),
                            resolved_id),
                   bool_or(from_shop) OVER (PARTITION BY resolved_id), ?
            FROM resolved""",
            [now],
        )
        con.execute("DELETE FROM raw._identity_match")
        for src in MATCHED_SOURCES:
            # count per file and customer first (millions of messages, thousands of files and
            # customers), then look the customers up
            con.execute(
                f"""INSERT INTO raw._identity_match
                SELECT {lit(src)} AS source, {plat} AS platform, sum(n) AS rows,
                       coalesce(sum(n) FILTER (WHERE i.is_shop_customer), 0) AS matched,
                       coalesce(sum(n) FILTER (WHERE i.is_shop_customer IS NOT TRUE), 0) AS unmatched,
                       coalesce(sum(n) FILTER (WHERE i.is_shop_customer), 0) / sum(n) AS match_rate, ?
                FROM (SELECT _source_file, customer_id, count(*) AS n FROM raw.{q(src)} GROUP BY ALL) r
                LEFT JOIN raw._customer_identity i ON i.customer_key = r.customer_id
                GROUP BY ALL""",
                [now],
            )
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return match_rates(con)


def match_rates(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """(source, platform, rows, matched, unmatched, match_rate) per source and platform, as last resolved."""
    have = con.execute(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = 'raw' AND table_name = '_identity_match'"
    ).fetchone()
    if not have:
        return []
    return con.execute(
        "SELECT source, platform, rows, matched, unmatched, match_rate FROM raw._identity_match "
        "ORDER BY source, platform"
    ).fetchall()


def rekeyed_tables(con: duckdb.DuckDBPyConnection, tables: list[tuple[str, str]]) -> list[str]:
    """Of `tables` (schema, name: the incremental dbt models), those holding a customer id that
    `raw._customer_identity` now resolves to another id: a later file linked two keys, so
    their rows must be re-keyed (the dbt step then rebuilds them, docs/importing.md)."""
    have = {(s, t) for s, t in con.execute(
        "SELECT table_schema, table_name FROM information_schema.columns WHERE column_name = 'customer_id'"
    ).fetchall()}
    if ("raw", "_customer_identity") not in have:
        return []
    stale = []
    for schema, name in tables:
        if (schema, name) in have and con.execute(
            f"""SELECT 1 FROM (SELECT DISTINCT customer_id FROM {q(schema)}.{q(name)}) t
            JOIN raw._customer_identity i ON i.customer_key = t.customer_id AND i.customer_id <> i.customer_key
            LIMIT 1"""
        ).fetchone():
            stale.append(f"{schema}.{name}")
    return stale
