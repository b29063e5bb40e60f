"""Write the generated shop as the files shop platforms export, instead of contract files.

`generate_platforms()` runs the same simulation as `generate()` (`pipelines.generate.simulate`:
same arguments, same customers, orders, messages, ...) and writes each chunk through DuckDB
into the vendors' formats under `out/<platform>/`:

- shopify: `orders_export.csv` (Admin "Export orders", 79 columns, shop-local times with an
  offset), `customers_export.csv` (Admin "Export customers"), `products_export.csv`
- klaviyo: `events.pages.jsonl` (`GET /api/events` JSON:API pages, one per line),
  `profiles_export.csv`
- zendesk: `tickets`, `users`, `ticket_metrics`, `satisfaction_ratings` as `<stream>.pages.jsonl`
  (API list pages, one per line)
- judgeme: `reviews_export.csv`
- delighted: `survey_responses.json`, `people.json` (API lists)

The mapping from contract fields to platform fields, and what a platform file cannot carry,
is in docs/generator.md ("Platform files"). Every query orders its rows by a unique key, so the
same arguments give byte-identical files.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa

import pipelines.generate as gen
from pipelines.core.contract import SOURCE_NAMES, source
from pipelines.core.warehouse import scratch
from pipelines.generate.catalog import CATEGORY_NAMES, catalogue
from pipelines.generate.writers import Part, select_sql, sql_string

DEFAULT_SHOP_TIMEZONE = "America/New_York"

#: platform -> file stem -> extension. Split runs write `<stem>-0000.<ext>`, ... per chunk.
PLATFORM_FILES: dict[str, dict[str, str]] = {
    "shopify": {"orders_export": "csv", "customers_export": "csv", "products_export": "csv"},
    "klaviyo": {"events.pages": "jsonl", "profiles_export": "csv"},
    "zendesk": {"tickets.pages": "jsonl", "users.pages": "jsonl", "ticket_metrics.pages": "jsonl",
                "satisfaction_ratings.pages": "jsonl"},
    "judgeme": {"reviews_export": "csv"},
    "delighted": {"survey_responses": "json", "people": "json"},
}
#: written once, not per chunk (the fixed product catalogue)
_ONCE = {("shopify", "products_export")}

# Shopify Admin "Export orders", the 79-column version (tests/fixtures/platforms/shopify/).
SHOPIFY_ORDER_COLUMNS = (
    "Name", "Email", "Financial Status", "Paid at", "Fulfillment Status", "Fulfilled at", "Accepts Marketing",
    "Currency", "Subtotal", "Shipping", "Taxes", "Total", "Discount Code", "Discount Amount", "Shipping Method",
    "Created at", "Lineitem quantity", "Lineitem name", "Lineitem price", "Lineitem compare at price",
    "Lineitem sku", "Lineitem requires shipping", "Lineitem taxable", "Lineitem fulfillment status",
    "Billing Name", "Billing Street", "Billing Address1", "Billing Address2", "Billing Company", "Billing City",
    "Billing Zip", "Billing Province", "Billing Country", "Billing Phone", "Shipping Name", "Shipping Street",
    "Shipping Address1", "Shipping Address2", "Shipping Company", "Shipping City", "Shipping Zip",
    "Shipping Province", "Shipping Country", "Shipping Phone", "Notes", "Note Attributes", "Cancelled at",
    "Payment Method", "Payment Reference", "Refunded Amount", "Vendor", "Outstanding Balance", "Employee",
    "Location", "Device ID", "Id", "Tags", "Risk Level", "Source", "Lineitem discount", "Tax 1 Name",
    "Tax 1 Value", "Tax 2 Name", "Tax 2 Value", "Tax 3 Name", "Tax 3 Value", "Tax 4 Name", "Tax 4 Value",
    "Tax 5 Name", "Tax 5 Value", "Phone", "Receipt Number", "Duties", "Billing Province Name",
    "Shipping Province Name", "Payment ID", "Payment Terms Name", "Next Payment Due At", "Payment References",
)
#: columns filled on every row of an order; all others only on its first row
SHOPIFY_LINE_COLUMNS = frozenset({
    "Name", "Email", "Created at", "Lineitem quantity", "Lineitem name", "Lineitem price",
    "Lineitem compare at price", "Lineitem sku", "Lineitem requires shipping", "Lineitem taxable",
    "Lineitem fulfillment status", "Vendor", "Lineitem discount", "Phone"})

# Id offsets: platform ids are the digits of the contract id plus a fixed offset, so they look
# like the vendor's ids and map back exactly (docs/generator.md).
SHOPIFY_ORDER_ID = 6_000_000_000_000
SHOPIFY_CUSTOMER_ID = 7_000_000_000_000
SHOPIFY_PRODUCT_ID = 8_000_000_000_000
ZENDESK_USER_ID = 9_000_000_000
ZENDESK_METRIC_ID = 8_000_000_000
ZENDESK_RATING_ID = 7_000_000_000
ZENDESK_ORDER_FIELD = 360_010_000_001  # the ticket custom field "Order number"
ZENDESK_API = "https://retain-demo.zendesk.com/api/v2"
KLAVIYO_PAGE = 200  # GET /api/events page[size] maximum
KLAVIYO_BATCH_PAGES = 250  # pages built per DuckDB statement (50,000 events): bounds memory
# sparse fieldsets (a documented JSON:API feature of Klaviyo's API) keep the pages small
KLAVIYO_EVENTS_URL = ("https://a.klaviyo.com/api/events/?include=profile%2Cmetric&sort=datetime"
                      "&fields%5Bevent%5D=timestamp%2Cdatetime%2Cevent_properties"
                      "&fields%5Bprofile%5D=email%2Cphone_number%2Cexternal_id&fields%5Bmetric%5D=name")
ZENDESK_PAGE = 100  # list endpoints' per_page maximum

KLAVIYO_METRICS = {
    "RcvEml": "Received Email", "OpnEml": "Opened Email", "ClkEml": "Clicked Email", "BncEml": "Bounced Email",
    "UnsEml": "Unsubscribed", "RcvSms": "Received SMS", "ClkSms": "Clicked SMS",
    "FldSms": "Failed to Deliver SMS", "UnsSms": "Unsubscribed from SMS Marketing",
    "RcvPsh": "Received Push", "OpnPsh": "Opened Push", "BncPsh": "Bounced Push",
}


def generate_platforms(
    out: Path,
    customers: int = 10_000,
    seed: int = 7,
    start: date = date(2023, 1, 1),
    end: date = date(2026, 10, 31),
    shop_timezone: str = DEFAULT_SHOP_TIMEZONE,
    clean: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Write the synthetic shop as platform export files; return records per `<platform>/<stem>`.

    The shop is the one `generate()` writes for the same customers, seed, start and end.
    Shopify times are local to `shop_timezone` (an IANA name) with their UTC offset. `clean`
    first removes earlier generated platform files; without it, generated files this run would
    not overwrite make it fail.
    """
    gen.check_shop_arguments(customers, start, end)
    try:
        ZoneInfo(shop_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown shop time zone {shop_timezone!r}; expected an IANA name like "
                         f"{DEFAULT_SHOP_TIMEZONE}") from None
    out = Path(out)
    chunks = math.ceil(customers / gen.CHUNK_CUSTOMERS)
    _prepare(out, chunks, clean)
    with _PlatformWriter(out, chunks, shop_timezone, progress) as writer:
        gen.simulate(writer, customers, seed, start, end, progress)
        return dict(writer.rows)


def platform_file(out: Path, platform: str, stem: str, chunk: int, chunks: int) -> Path:
    """Path of one generated platform file (split runs add `-NNNN` per chunk)."""
    ext = PLATFORM_FILES[platform][stem]
    if chunks == 1 or (platform, stem) in _ONCE:
        return out / platform / f"{stem}.{ext}"
    return out / platform / f"{stem}-{chunk:04d}.{ext}"


def generated_platform_files(out: Path) -> list[Path]:
    """Files under `out/<platform>/` that look like generate_platforms output."""
    found = []
    for platform, stems in PLATFORM_FILES.items():
        folder = out / platform
        if not folder.is_dir():
            continue
        pattern = re.compile("^(" + "|".join(rf"{re.escape(s)}(-\d{{4}})?\.{re.escape(e)}"
                                             for s, e in stems.items()) + ")$")
        found += sorted(p for p in folder.iterdir() if p.is_file() and pattern.match(p.name))
    return found


def _prepare(out: Path, chunks: int, clean: bool) -> None:
    existing = generated_platform_files(out)
    if clean:
        for path in existing:
            path.unlink()
        return
    targets = {platform_file(out, p, s, i, chunks) for p, stems in PLATFORM_FILES.items() for s in stems
               for i in range(chunks)}
    stale = [p for p in existing if p not in targets]
    if stale:
        raise FileExistsError(
            f"{out} already holds generated platform files this run would not replace "
            f"({', '.join(p.name for p in stale[:3])}); pass clean=True to remove them first")


class _PlatformWriter:
    """Collects one chunk's contract tables, then writes every platform file of that chunk."""

    def __init__(self, out: Path, chunks: int, shop_timezone: str, progress: Callable[[str, int], None] | None):
        self.out, self.chunks, self.progress = out, chunks, progress
        self.rows: dict[str, int] = {f"{p}/{s}": 0 for p, stems in PLATFORM_FILES.items() for s in stems}
        self.parts: dict[str, Part] = {}
        self.con = scratch()
        for setting in ("SET TimeZone = 'UTC'", "SET preserve_insertion_order = true",
                        "SET enable_progress_bar = false"):
            self.con.execute(setting)
        self._macros(shop_timezone)
        self.con.register("products", _products_table())

    def __enter__(self) -> _PlatformWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.con.close()

    # the ChunkSink protocol
    def start_chunk(self, chunk: int) -> None:
        """Nothing is in flight between chunks: each is written in end_chunk."""
        self.parts = {}

    def submit(self, chunk: int, name: str, part: Part) -> None:
        """Keep the part until the chunk's other sources are built."""
        self.parts[name] = part

    def end_chunk(self, chunk: int) -> None:
        """Load the chunk's contract tables into DuckDB and write every platform file of it."""
        con = self.con
        for name in SOURCE_NAMES:
            con.register(f"raw_{name}", self.parts[name].table)
            kind = "VIEW" if name == "messages" else "TABLE"  # messages are read once: no copy
            con.execute(f"CREATE OR REPLACE TEMP {kind} c_{name} AS "
                        f"{select_sql(source(name), self.parts[name], f'raw_{name}')}")
        writers = [
            ("shopify", "orders_export", self._shopify_orders),
            ("shopify", "customers_export", self._shopify_customers),
            ("klaviyo", "profiles_export", self._klaviyo_profiles),
            ("klaviyo", "events.pages", self._klaviyo_events),
            ("zendesk", "tickets.pages", self._zendesk_tickets),
            ("zendesk", "users.pages", self._zendesk_users),
            ("zendesk", "ticket_metrics.pages", self._zendesk_metrics),
            ("zendesk", "satisfaction_ratings.pages", self._zendesk_ratings),
            ("judgeme", "reviews_export", self._judgeme_reviews),
            ("delighted", "survey_responses", self._delighted_responses),
            ("delighted", "people", self._delighted_people),
        ]
        if chunk == 0:
            writers.insert(2, ("shopify", "products_export", self._shopify_products))
        for platform, stem, write in writers:
            path = platform_file(self.out, platform, stem, chunk, self.chunks)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            try:
                n = write(tmp)
                os.replace(tmp, path)
            finally:
                if tmp.exists():
                    tmp.unlink()
            key = f"{platform}/{stem}"
            self.rows[key] += n
            if self.progress:
                self.progress(key, self.rows[key])
        for name in SOURCE_NAMES:
            con.execute(f"DROP {'VIEW' if name == 'messages' else 'TABLE'} c_{name}")
            con.unregister(f"raw_{name}")
        self.parts = {}

    # --- helpers --------------------------------------------------------------------------------
    def _macros(self, tz: str) -> None:
        tz = tz.replace("'", "''")
        for sql in (
            f"CREATE TEMP MACRO shop_local(ts) AS timezone('{tz}', ts AT TIME ZONE 'UTC')",
            "CREATE TEMP MACRO utc_offset(ts) AS date_diff('minute', ts, shop_local(ts))",
            # Shopify's export format: shop-local time and its offset, `2025-03-08 23:10:00 -0500`
            "CREATE TEMP MACRO shop_time(ts) AS strftime(shop_local(ts), '%Y-%m-%d %H:%M:%S') || ' ' "
            "|| CASE WHEN utc_offset(ts) < 0 THEN '-' ELSE '+' END "
            "|| lpad((abs(utc_offset(ts)) // 60)::VARCHAR, 2, '0') "
            "|| lpad((abs(utc_offset(ts)) % 60)::VARCHAR, 2, '0')",
            "CREATE TEMP MACRO iso_z(ts) AS strftime(ts, '%Y-%m-%dT%H:%M:%SZ')",
            "CREATE TEMP MACRO unix_s(ts) AS epoch(ts)::BIGINT",
            "CREATE TEMP MACRO num(id) AS CAST(substr(id, 2) AS BIGINT)",  # C10000001 -> 10000001
            "CREATE TEMP MACRO order_name(id) AS '#' || substr(id, 2)",  # O100000001 -> #100000001
            "CREATE TEMP MACRO money(x) AS CAST(CAST(x AS DECIMAL(18, 2)) AS VARCHAR)",
            "CREATE TEMP MACRO minutes(t0, t1) AS CAST(round(date_diff('second', t0, t1) / 60.0) AS BIGINT)",
            f"CREATE TEMP MACRO zendesk_user(cid) AS {ZENDESK_USER_ID} + num(cid)",
            # Zendesk rates a ticket good or bad: 4-5 of the contract's 1-5 are good
            "CREATE TEMP MACRO good_or_bad(score) AS CASE WHEN score >= 4 THEN 'good' WHEN score >= 1 THEN 'bad' END",
        ):
            self.con.execute(sql)

    def _copy_csv(self, sql: str, path: Path) -> int:
        """Write a query as CSV with a header; return the rows written (COPY reports them)."""
        return self.con.execute(f"COPY ({sql}) TO {sql_string(path)} (FORMAT csv, HEADER true)").fetchone()[0]

    def _copy_json_list(self, sql: str, path: Path) -> int:
        """Write a query as one JSON list of objects; return the rows written."""
        return self.con.execute(f"COPY ({sql}) TO {sql_string(path)} (FORMAT json, ARRAY true)").fetchone()[0]

    def _count(self, sql: str) -> int:
        return self.con.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0]

    def _copy_pages(self, records_sql: str, key: str, per_page: int, url: str, path: Path) -> int:
        """One API list page per line: `{key: [...], next_page, previous_page, count}`.

        `records_sql` selects `k` (a unique sort key) and `rec` (the record struct).
        """
        sql = f"""
            WITH r AS (SELECT rec, row_number() OVER (ORDER BY k) AS rn FROM ({records_sql})),
            p AS (SELECT (rn - 1) // {per_page} AS page, list(rec ORDER BY rn) AS items FROM r GROUP BY page),
            n AS (SELECT count(*) AS total, max((rn - 1) // {per_page}) AS last FROM r)
            SELECT items AS "{key}",
                   CASE WHEN page < last THEN '{url}?page=' || (page + 2) || '&per_page={per_page}' END AS next_page,
                   CASE WHEN page > 0 THEN '{url}?page=' || page || '&per_page={per_page}' END AS previous_page,
                   total AS count
            FROM p, n ORDER BY page"""
        self.con.execute(f"COPY ({sql}) TO {sql_string(path)} (FORMAT json)")
        return self._count(records_sql)

    # --- shopify ------------------------------------------------------------------------------------
    def _shopify_orders(self, path: Path) -> int:
        order_cols = {
            "Name": "order_name(order_id)",
            "Email": "email",
            "Financial Status": "financial_status",
            "Paid at": "CASE WHEN status NOT IN ('placed', 'cancelled') THEN shop_time(ordered_at) END",
            "Fulfillment Status": "CASE WHEN shipped_at IS NULL THEN 'unfulfilled' ELSE 'fulfilled' END",
            "Fulfilled at": "shop_time(shipped_at)",
            "Accepts Marketing": "CASE WHEN email_marketing_consent = 'subscribed' THEN 'yes' ELSE 'no' END",
            "Currency": "currency",
            "Subtotal": "money(subtotal - discount)",  # Shopify's subtotal is after discounts
            "Shipping": "money(shipping)",
            "Taxes": "money(tax)",
            "Total": "money(total)",
            "Discount Code": "discount_code",
            "Discount Amount": "money(discount)",
            "Shipping Method": "carrier",
            "Created at": "shop_time(ordered_at)",
            "Lineitem quantity": "quantity",
            "Lineitem name": "product_name",
            "Lineitem price": "money(unit_price)",
            "Lineitem sku": "product_id",
            "Lineitem requires shipping": "CASE WHEN sales_channel = 'pos' THEN 'false' ELSE 'true' END",
            "Lineitem taxable": "'true'",
            "Lineitem fulfillment status": "CASE WHEN shipped_at IS NULL THEN 'pending' ELSE 'fulfilled' END",
            "Billing Name": "billing_name",
            "Billing Zip": "zip",
            "Billing Country": "country",
            "Billing Phone": "phone",
            "Shipping Name": "CASE WHEN sales_channel <> 'pos' THEN billing_name END",
            "Shipping Zip": "CASE WHEN sales_channel <> 'pos' THEN zip END",
            "Shipping Country": "CASE WHEN sales_channel <> 'pos' THEN country END",
            "Shipping Phone": "CASE WHEN sales_channel <> 'pos' THEN phone END",
            "Cancelled at": "CASE WHEN status = 'cancelled' THEN shop_time(updated_at) END",
            "Payment Method": "CASE WHEN status <> 'placed' THEN 'Shopify Payments' END",
            "Payment Reference": "payment_ref",
            "Refunded Amount": "money(refunded)",
            "Vendor": "'Retain Demo Goods'",
            "Outstanding Balance": "money(CASE WHEN status = 'placed' THEN total ELSE 0 END)",
            "Employee": "CASE WHEN sales_channel = 'pos' THEN 'Shop Staff' END",
            "Location": "CASE WHEN sales_channel = 'pos' THEN 'Flagship Store' END",
            "Id": f"({SHOPIFY_ORDER_ID} + num(order_id))::VARCHAR",
            "Risk Level": "'Low'",
            "Source": "CASE sales_channel WHEN 'web' THEN 'web' WHEN 'app' THEN 'iphone' WHEN 'marketplace' "
                      "THEN 'amazon' WHEN 'pos' THEN 'pos' WHEN 'phone' THEN 'shopify_draft_order' END",
            "Lineitem discount": "'0.00'",
            "Tax 1 Name": "CASE WHEN tax > 0 THEN CASE WHEN country = 'US' THEN 'Sales Tax' ELSE 'VAT' END END",
            "Tax 1 Value": "CASE WHEN tax > 0 THEN money(tax) END",
            "Phone": "phone",
            "Payment ID": "payment_ref",
            "Payment References": "payment_ref",
        }
        cols = []
        for name in SHOPIFY_ORDER_COLUMNS:
            expr = order_cols.get(name, "NULL")
            if name not in SHOPIFY_LINE_COLUMNS and expr != "NULL":
                expr = f"CASE WHEN line_number = 1 THEN {expr} END"
            cols.append(f'CAST({expr} AS VARCHAR) AS "{name}"')
        sql = f"""
            WITH refunds AS (
                SELECT order_id, sum(refund_amount) AS refunded FROM c_returns
                WHERE refund_amount IS NOT NULL GROUP BY order_id),
            o AS (
                SELECT o.*, c.email, c.phone, c.country, c.email_marketing_consent,
                       nullif(trim(coalesce(c.first_name, '') || ' ' || coalesce(c.last_name, '')), '')
                           AS billing_name,
                       '''' || c.postal_code AS zip,
                       coalesce(r.refunded, 0) AS refunded,
                       CASE WHEN o.status <> 'placed' THEN 'c' || substr(o.order_id, 2) || '.1' END AS payment_ref,
                       CASE WHEN o.status = 'cancelled' THEN 'voided'
                            WHEN o.status = 'placed' THEN 'pending'
                            WHEN coalesce(r.refunded, 0) > 0 AND r.refunded >= o.total THEN 'refunded'
                            WHEN coalesce(r.refunded, 0) > 0 THEN 'partially_refunded'
                            ELSE 'paid' END AS financial_status
                FROM c_orders o LEFT JOIN c_customers c USING (customer_id) LEFT JOIN refunds r USING (order_id))
            SELECT {', '.join(cols)}
            FROM c_order_items i JOIN o USING (order_id)
            ORDER BY i.order_id, i.line_number"""
        return self._copy_csv(sql, path)

    def _shopify_customers(self, path: Path) -> int:
        sql = f"""
            WITH refunds AS (
                SELECT order_id, sum(refund_amount) AS refunded FROM c_returns
                WHERE refund_amount IS NOT NULL GROUP BY order_id),
            spent AS (
                SELECT customer_id, count(*) AS orders, sum(total - coalesce(refunded, 0)) AS spent
                FROM c_orders LEFT JOIN refunds USING (order_id) WHERE status <> 'cancelled' GROUP BY customer_id)
            SELECT ({SHOPIFY_CUSTOMER_ID} + num(customer_id))::VARCHAR AS "Customer ID",
                   first_name AS "First Name", last_name AS "Last Name", email AS "Email",
                   CASE WHEN email_marketing_consent = 'subscribed' THEN 'yes' ELSE 'no' END
                       AS "Accepts Email Marketing",
                   NULL AS "Default Address Company", NULL AS "Default Address Address1",
                   NULL AS "Default Address Address2", NULL AS "Default Address City",
                   NULL AS "Default Address Province Code", country AS "Default Address Country Code",
                   '''' || postal_code AS "Default Address Zip", phone AS "Default Address Phone",
                   phone AS "Phone",
                   CASE WHEN sms_marketing_consent = 'subscribed' THEN 'yes' ELSE 'no' END
                       AS "Accepts SMS Marketing",
                   money(coalesce(spent, 0)) AS "Total Spent", coalesce(orders, 0) AS "Total Orders",
                   NULL AS "Note", 'no' AS "Tax Exempt",
                   CASE WHEN is_test_account THEN 'test' END AS "Tags"
            FROM c_customers LEFT JOIN spent USING (customer_id)
            ORDER BY customer_id"""
        return self._copy_csv(sql, path)

    def _shopify_products(self, path: Path) -> int:
        sql = """
            SELECT handle AS "Handle", product_name AS "Title", NULL AS "Body (HTML)",
                   'Retain Demo Goods' AS "Vendor", NULL AS "Product Category", category AS "Type",
                   NULL AS "Tags", 'true' AS "Published", 'Title' AS "Option1 Name",
                   'Default Title' AS "Option1 Value", product_id AS "Variant SKU",
                   money(price_eur / 100) AS "Variant Price", 'active' AS "Status"
            FROM products ORDER BY product_id"""
        return self._copy_csv(sql, path)

    # --- klaviyo ------------------------------------------------------------------------------------
    def _klaviyo_profiles(self, path: Path) -> int:
        sql = """
            SELECT '01K' || lpad(substr(customer_id, 2), 23, '0') AS "Klaviyo ID", email AS "Email",
                   phone AS "Phone Number", first_name AS "First Name", last_name AS "Last Name",
                   customer_id AS "External ID", country AS "Country", postal_code AS "Zip Code",
                   upper(email_marketing_consent) AS "Email Marketing Consent",
                   NULL AS "Email Marketing Consent Timestamp",
                   upper(sms_marketing_consent) AS "SMS Marketing Consent",
                   NULL AS "SMS Marketing Consent Timestamp",
                   strftime(created_at, '%Y-%m-%d %H:%M:%S') AS "Profile Created On", NULL AS "Last Active"
            FROM c_customers ORDER BY customer_id"""
        return self._copy_csv(sql, path)

    def _klaviyo_events(self, path: Path) -> int:
        """Events of the chunk's outbound email, SMS and push messages, as API pages one per line.

        Pages are built and appended in batches of KLAVIYO_BATCH_PAGES, so memory stays bounded
        however many events a chunk has.
        """
        con = self.con
        # one event per message and step: 0 sent (received / bounced), 1 opened, 2 clicked, 3 unsubscribed
        con.execute("""
            CREATE OR REPLACE TEMP TABLE k_events AS
            WITH m AS (
                SELECT message_id, customer_id, channel, campaign, delivered_at,
                       unnest([{'k': 0, 'ts': sent_at}, {'k': 1, 'ts': opened_at}, {'k': 2, 'ts': clicked_at},
                               {'k': 3, 'ts': unsubscribed_at}]) AS step
                FROM c_messages
                WHERE direction = 'outbound' AND message_type <> 'support_reply'
                  AND channel IN ('email', 'sms', 'push')),
            e AS (
                SELECT message_id, customer_id, campaign, step.k AS k, step.ts AS ts,
                       CASE channel
                         WHEN 'email' THEN CASE step.k WHEN 0 THEN CASE WHEN delivered_at IS NULL THEN 'BncEml'
                                                                       ELSE 'RcvEml' END
                                                       WHEN 1 THEN 'OpnEml' WHEN 2 THEN 'ClkEml' ELSE 'UnsEml' END
                         WHEN 'sms' THEN CASE step.k WHEN 0 THEN CASE WHEN delivered_at IS NULL THEN 'FldSms'
                                                                     ELSE 'RcvSms' END
                                                     WHEN 2 THEN 'ClkSms' WHEN 3 THEN 'UnsSms' END
                         ELSE CASE step.k WHEN 0 THEN CASE WHEN delivered_at IS NULL THEN 'BncPsh' ELSE 'RcvPsh' END
                                          WHEN 1 THEN 'OpnPsh' END
                       END AS metric_id
                FROM m WHERE step.ts IS NOT NULL),
            numbered AS (
                SELECT *, row_number() OVER (ORDER BY ts, message_id, k) AS rn FROM e WHERE metric_id IS NOT NULL)
            SELECT * FROM numbered ORDER BY rn""")  # stored in rn order: range filters skip row groups
        n = con.execute("SELECT count(*) FROM k_events").fetchone()[0]
        pages = math.ceil(n / KLAVIYO_PAGE)
        metric_names = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in KLAVIYO_METRICS.items())
        base = KLAVIYO_EVENTS_URL
        batch_sql = f"""
            WITH p AS (SELECT *, (rn - 1) // {KLAVIYO_PAGE} AS page,
                              '01K' || lpad(substr(customer_id, 2), 23, '0') AS profile_id
                       FROM k_events WHERE rn > $first AND rn <= $last),
            d AS (
                SELECT page, list({{
                    'type': 'event', 'id': (num(message_id) * 10 + k)::VARCHAR,
                    'attributes': {{'timestamp': unix_s(ts),
                                    'event_properties': {{'Campaign Name': campaign, '$message': message_id}},
                                    'datetime': strftime(ts, '%Y-%m-%dT%H:%M:%S+00:00')}},
                    'relationships': {{'profile': {{'data': {{'type': 'profile', 'id': profile_id}}}},
                                       'metric': {{'data': {{'type': 'metric', 'id': metric_id}}}}}}
                }} ORDER BY rn) AS data
                FROM p GROUP BY page),
            im AS (
                SELECT page, list(to_json({{'type': 'metric', 'id': metric_id,
                                            'attributes': {{'name': CASE metric_id {metric_names} END}}}})
                                  ORDER BY metric_id) AS inc
                FROM (SELECT DISTINCT page, metric_id FROM p) GROUP BY page),
            ip AS (
                SELECT pp.page, list(to_json({{
                    'type': 'profile', 'id': pp.profile_id,
                    'attributes': {{'email': c.email, 'phone_number': c.phone, 'external_id': c.customer_id}}
                }}) ORDER BY pp.customer_id) AS inc
                FROM (SELECT DISTINCT page, customer_id, profile_id FROM p) pp JOIN c_customers c USING (customer_id)
                GROUP BY pp.page)
            SELECT d.data,
                   {{'self': '{base}' || CASE WHEN d.page > 0 THEN '&page%5Bcursor%5D=' || d.page ELSE '' END,
                    'next': CASE WHEN d.page < {pages - 1} THEN '{base}&page%5Bcursor%5D=' || (d.page + 1) END,
                    'prev': CASE WHEN d.page > 0 THEN '{base}&page%5Bcursor%5D=' || (d.page - 1) END}} AS links,
                   list_concat(im.inc, ip.inc) AS included
            FROM d JOIN im USING (page) JOIN ip USING (page)
            ORDER BY d.page"""
        part = path.with_name(path.name + ".part")
        batch = KLAVIYO_PAGE * KLAVIYO_BATCH_PAGES
        try:
            with open(path, "wb") as target:
                for first in range(0, n, batch):
                    sql = batch_sql.replace("$first", str(first)).replace("$last", str(first + batch))
                    con.execute(f"COPY ({sql}) TO {sql_string(part)} (FORMAT json)")
                    with open(part, "rb") as piece:
                        shutil.copyfileobj(piece, target, 4 << 20)
        finally:
            part.unlink(missing_ok=True)
            con.execute("DROP TABLE k_events")
        return n

    # --- zendesk ------------------------------------------------------------------------------------
    def _zendesk_tickets(self, path: Path) -> int:
        sql = f"""
            SELECT ticket_id AS k, {{
                'url': '{ZENDESK_API}/tickets/' || num(ticket_id) || '.json', 'id': num(ticket_id),
                'via': {{'channel': CASE channel WHEN 'email' THEN 'email' WHEN 'chat' THEN 'chat'
                                   WHEN 'phone' THEN 'voice' WHEN 'social' THEN 'facebook' WHEN 'web_form' THEN 'web'
                                   END}},
                'created_at': iso_z(created_at), 'updated_at': iso_z(updated_at),
                'type': CASE ticket_type WHEN 'complaint' THEN 'problem' WHEN 'question' THEN 'question'
                        WHEN 'request' THEN 'task' END,
                'subject': CASE category WHEN 'wismo' THEN 'Where is my order?'
                           WHEN 'late_delivery' THEN 'My order is late' WHEN 'damaged_item' THEN 'Item arrived damaged'
                           WHEN 'wrong_item' THEN 'Wrong item received' WHEN 'return_refund' THEN 'Refund still missing'
                           WHEN 'billing' THEN 'Question about my invoice'
                           WHEN 'product_question' THEN 'Question about a product' ELSE 'Other request' END,
                'priority': priority, 'status': status,
                'requester_id': zendesk_user(customer_id), 'submitter_id': zendesk_user(customer_id),
                'tags': [category, ticket_type],
                'custom_fields': [{{'id': {ZENDESK_ORDER_FIELD}, 'value': order_name(order_id)}}],
                'satisfaction_rating': {{'score': coalesce(good_or_bad(satisfaction_score), 'unoffered')}}
            }} AS rec FROM c_support_tickets"""
        return self._copy_pages(sql, "tickets", ZENDESK_PAGE, f"{ZENDESK_API}/tickets.json", path)

    def _zendesk_users(self, path: Path) -> int:
        sql = f"""
            SELECT zendesk_user(customer_id) AS k, {{
                'url': '{ZENDESK_API}/users/' || zendesk_user(customer_id) || '.json',
                'id': zendesk_user(customer_id),
                'name': nullif(trim(coalesce(first_name, '') || ' ' || coalesce(last_name, '')), ''),
                'email': email, 'phone': phone, 'created_at': iso_z(created_at), 'updated_at': iso_z(updated_at),
                'role': 'end-user', 'external_id': customer_id, 'active': true
            }} AS rec
            FROM c_customers WHERE customer_id IN (SELECT customer_id FROM c_support_tickets)"""
        return self._copy_pages(sql, "users", ZENDESK_PAGE, f"{ZENDESK_API}/users.json", path)

    def _zendesk_metrics(self, path: Path) -> int:
        sql = f"""
            SELECT ticket_id AS k, {{
                'url': '{ZENDESK_API}/ticket_metrics/' || ({ZENDESK_METRIC_ID} + num(ticket_id)) || '.json',
                'id': {ZENDESK_METRIC_ID} + num(ticket_id), 'ticket_id': num(ticket_id),
                'created_at': iso_z(created_at), 'updated_at': iso_z(updated_at),
                'replies': agent_replies, 'reopens': reopen_count, 'solved_at': iso_z(resolved_at),
                'reply_time_in_minutes': {{'calendar': minutes(created_at, first_response_at),
                                           'business': NULL::BIGINT}},
                'first_resolution_time_in_minutes': {{'calendar': minutes(created_at, resolved_at),
                                                      'business': NULL::BIGINT}},
                'full_resolution_time_in_minutes': {{'calendar': minutes(created_at, resolved_at),
                                                     'business': NULL::BIGINT}}
            }} AS rec FROM c_support_tickets"""
        return self._copy_pages(sql, "ticket_metrics", ZENDESK_PAGE, f"{ZENDESK_API}/ticket_metrics.json", path)

    def _zendesk_ratings(self, path: Path) -> int:
        sql = f"""
            SELECT ticket_id AS k, {{
                'url': '{ZENDESK_API}/satisfaction_ratings/' || ({ZENDESK_RATING_ID} + num(ticket_id)) || '.json',
                'id': {ZENDESK_RATING_ID} + num(ticket_id), 'requester_id': zendesk_user(customer_id),
                'ticket_id': num(ticket_id), 'score': good_or_bad(satisfaction_score),
                'comment': NULL::VARCHAR, 'created_at': iso_z(updated_at), 'updated_at': iso_z(updated_at)
            }} AS rec FROM c_support_tickets WHERE satisfaction_score IS NOT NULL"""
        return self._copy_pages(sql, "satisfaction_ratings", ZENDESK_PAGE,
                                f"{ZENDESK_API}/satisfaction_ratings.json", path)

    # --- judge.me -----------------------------------------------------------------------------------
    def _judgeme_reviews(self, path: Path) -> int:
        sql = f"""
            SELECT r.title, r.body, r.rating,
                   strftime(r.created_at, '%Y-%m-%d %H:%M:%S') || ' UTC' AS review_date,
                   CASE r.source WHEN 'site' THEN 'web' WHEN 'email' THEN 'email' WHEN 'marketplace' THEN 'import'
                   END AS source,
                   'ok' AS curated,
                   nullif(trim(coalesce(c.first_name, '') || ' ' || coalesce(left(c.last_name, 1) || '.', '')), '')
                       AS reviewer_name,
                   c.email AS reviewer_email,
                   ({SHOPIFY_PRODUCT_ID} + num(r.product_id))::VARCHAR AS product_id,
                   p.handle AS product_handle,
                   NULL AS reply, NULL AS reply_date, NULL AS picture_urls, NULL AS ip_address,
                   c.country AS location, NULL AS metaobject_handle
            FROM c_reviews r LEFT JOIN c_customers c USING (customer_id) LEFT JOIN products p USING (product_id)
            ORDER BY r.review_id"""
        return self._copy_csv(sql, path)

    # --- delighted ----------------------------------------------------------------------------------
    def _delighted_responses(self, path: Path) -> int:
        sql = """
            SELECT substr(response_id, 2) AS id, substr(customer_id, 2) AS person, survey_type, score, comment,
                   'https://app.delighted.com/r/' || substr(response_id, 2) AS permalink,
                   unix_s(responded_at) AS created_at, unix_s(responded_at) AS updated_at,
                   {'Customer ID': customer_id, 'Order ID': order_name(order_id), 'Delighted Source': 'Email'}
                       AS person_properties,
                   []::VARCHAR[] AS notes, []::VARCHAR[] AS tags, []::VARCHAR[] AS additional_answers
            FROM c_survey_responses ORDER BY response_id"""
        return self._copy_json_list(sql, path)

    def _delighted_people(self, path: Path) -> int:
        sql = """
            WITH s AS (
                SELECT customer_id, min(coalesce(sent_at, responded_at)) AS first_sent,
                       max(coalesce(sent_at, responded_at)) AS last_sent, max(responded_at) AS last_responded
                FROM c_survey_responses GROUP BY customer_id)
            SELECT substr(customer_id, 2) AS id,
                   nullif(trim(coalesce(c.first_name, '') || ' ' || coalesce(c.last_name, '')), '') AS name,
                   c.email, c.phone AS phone_number, unix_s(s.first_sent) AS created_at,
                   unix_s(s.last_sent) AS last_sent_at, unix_s(s.last_responded) AS last_responded_at,
                   NULL::BIGINT AS next_survey_scheduled_at
            FROM s JOIN c_customers c USING (customer_id) ORDER BY customer_id"""
        return self._copy_json_list(sql, path)


def _products_table() -> pa.Table:
    """The fixed catalogue with the Shopify handle each product gets (`linen-shirt`)."""
    catl = catalogue()
    return pa.table({
        "product_id": catl.product_id,
        "product_name": catl.product_name,
        "category": [CATEGORY_NAMES[c] for c in catl.category],
        "handle": [re.sub("[^a-z0-9]+", "-", n.lower()).strip("-") for n in catl.product_name],
        "price_eur": pa.array(catl.price_eur, pa.int64()),
    })


__all__ = ["generate_platforms", "generated_platform_files", "platform_file", "PLATFORM_FILES",
           "SHOPIFY_ORDER_COLUMNS", "DEFAULT_SHOP_TIMEZONE"]

