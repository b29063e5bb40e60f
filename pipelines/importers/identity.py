"""One customer across platforms: customer keys, and the identity table that resolves them.

Keys (what a platform row's `customer_id` becomes in `raw.*`, deterministic per row):

- the platform's own customer id when the file has one (Shopify, WooCommerce; a helpdesk or
  review tool's id carries its platform as a prefix, e.g. `zendesk:123`),
- else `em_` + the first 20 hex digits of md5(normalised email) (trim + lower-case),
- else `ph_` + md5 of the E.164 phone,
- else a fallback the mapping names (e.g. `anon_shopify_<order id>`: an order nobody can be
  tied to is kept as its own customer, never dropped).

Resolution (`resolve`, run at the end of every `retain ingest`, over everything in `raw`):
every key seen in `raw.customers` with a normalised email or E.164 phone joins the group of
that email (else phone); each group's retain customer id is the smallest shop-platform
customer id in it (Shopify, WooCommerce or the contract's own `customers/` folder), else its
`em_`/`ph_` key. A row is *matched* when its group holds any customer record from the shop
(an account, or a buyer of a shop order); otherwise it is kept under its own key and counted
as unmatched. The whole table is recomputed from the raw layer each time, so it does not depend on the
order files were loaded in and is the same from run to run. dbt reads it
(`int_customer_identity`) and the marts join through it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb

from pipelines.ingest.rules import lit, q

#: Platforms whose customer ids are the shop's own: they win a group.
SHOP_PLATFORMS = ("shopify", "woocommerce")

#: Contract sources with a customer_id, whose match rate is measured.
MATCHED_SOURCES = ("orders", "messages", "survey_responses", "reviews", "support_tickets")


def normalised_email_sql(x: str) -> str:
    """SQL: the email trimmed and lower-cased, NULL unless it looks like an address."""
    e = f"lower(trim({x}))"
    # no {n,m} quantifiers: mapping templates use braces for platform columns
    return f"CASE WHEN regexp_full_match({e}, '[^@\\s]+@[^@\\s]+\\.[^@\\s.][^@\\s.]+') THEN {e} END"


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


IDENTITY_DDL = [
    """CREATE TABLE IF NOT EXISTS raw._customer_identity (
        customer_key VARCHAR NOT NULL,
        platform VARCHAR NOT NULL,
        email_normalised VARCHAR,
        phone_e164 VARCHAR,
        customer_id VARCHAR NOT NULL,
        is_shop_customer BOOLEAN NOT NULL,
        resolved_at TIMESTAMP NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS raw._identity_match (
        source VARCHAR NOT NULL,
        platform VARCHAR NOT NULL,
        rows BIGINT NOT NULL,
        matched BIGINT NOT NULL,
        unmatched BIGINT NOT NULL,
        match_rate DOUBLE,
        resolved_at TIMESTAMP NOT NULL
    )""",
]


def _platform_sql(file_col: str) -> str:
    """SQL: the platform a raw row came from (its landing folder), `retain` for contract folders."""
    from pipelines.contract import SOURCE_NAMES

    folder = f"split_part({file_col}, '/', 1)"
    names = ", ".join(f"'{n}'" for n in SOURCE_NAMES)
    return f"CASE WHEN {folder} IN ({names}) THEN 'retain' ELSE {folder} END"


def resolve(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Recompute `raw._customer_identity` and `raw._identity_match` from the raw layer.

    Returns the match rows (source, platform, rows, matched, unmatched, match_rate). A row is
    matched when its customer resolves to a shop customer (a Shopify / WooCommerce customer
    or one from the contract's `customers/` folder); unmatched rows stay in the warehouse
    under their own key and are counted here.
    """
    for ddl in IDENTITY_DDL:
        con.execute(ddl)
    now = datetime.now(UTC).replace(tzinfo=None)
    plat = _platform_sql("_source_file")
    shop = "platform IN ('retain', " + ", ".join(f"'{p}'" for p in SHOP_PLATFORMS) + ")"
    # the shop's own id: not a key derived from an email, a phone or an anonymous order
    own_id = "NOT (customer_key LIKE 'em\\_%' ESCAPE '\\' OR customer_key LIKE 'ph\\_%' ESCAPE '\\' " \
             "OR customer_key LIKE 'anon\\_%' ESCAPE '\\')"
    con.begin()
    try:
        con.execute("DELETE FROM raw._customer_identity")
        con.execute(
            f"""INSERT INTO raw._customer_identity
            WITH keys AS (
                SELECT customer_id AS customer_key, any_value({plat}) AS platform,
                       max({normalised_email_sql('email')}) AS email_normalised,
                       max({e164_sql('phone')}) AS phone_e164
                FROM raw.customers GROUP BY customer_id
            ),
            flagged AS (SELECT *, {shop} AS from_shop, {shop} AND {own_id} AS is_shop FROM keys),
            by_email AS (
                SELECT email_normalised, min(customer_key) FILTER (WHERE is_shop) AS shop_id,
                       bool_or(from_shop) AS has_shop
                FROM flagged WHERE email_normalised IS NOT NULL GROUP BY 1
            ),
            by_phone AS (
                SELECT phone_e164, min(customer_key) FILTER (WHERE is_shop) AS shop_id,
                       bool_or(from_shop) AS has_shop
                FROM flagged WHERE phone_e164 IS NOT NULL GROUP BY 1
            )
            SELECT f.customer_key, f.platform, f.email_normalised, f.phone_e164,
                   CASE WHEN f.is_shop THEN f.customer_key
                        ELSE COALESCE(e.shop_id, p.shop_id,
                                      CASE WHEN f.email_normalised IS NOT NULL
                                           THEN 'em_' || left(md5(f.email_normalised), 20) END,
                                      CASE WHEN f.phone_e164 IS NOT NULL
                                           THEN 'ph_' || left(md5(f.phone_e164), 20) END,
                                      f.customer_key) END,
                   f.from_shop OR coalesce(e.has_shop, FALSE) OR coalesce(p.has_shop, FALSE), ?
            FROM flagged f
            LEFT JOIN by_email e USING (email_normalised)
            LEFT JOIN by_phone p USING (phone_e164)""",
            [now],
        )
        con.execute("DELETE FROM raw._identity_match")
        for src in MATCHED_SOURCES:
            con.execute(
                f"""INSERT INTO raw._identity_match
                SELECT {lit(src)} AS source, {plat} AS platform, count(*) AS rows,
                       count(*) FILTER (WHERE i.is_shop_customer) AS matched,
                       count(*) FILTER (WHERE i.is_shop_customer IS NOT TRUE) AS unmatched,
                       count(*) FILTER (WHERE i.is_shop_customer) / count(*) AS match_rate, ?
                FROM raw.{q(src)} r LEFT JOIN raw._customer_identity i ON i.customer_key = r.customer_id
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
