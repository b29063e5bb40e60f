"""Export formats: the columns each CRM or ad platform imports, as SQL over one play's list.

Every format is a list of `(header, SQL expression, kind)` evaluated over `export_source`, the
run's list for one play joined with the customer's current contact details. `kind` decides the
safety treatment:

* `text` — trimmed and CSV-injection neutralised (a leading `'` before `=`, `+`, `-`, `@`,
  tab or carriage return, OWASP);
* `e164` — a validated E.164 phone (`+` and 8-15 digits): left as is, so the `+` survives;
* `hash` — SHA-256 hex of a normalised value (never raw personal data);
* `number` — a plain number.

Consent and data minimisation: the contact files of marketing formats carry a customer's email
only with email marketing consent and their phone only with SMS marketing consent, so a file
never hands a tool an address it may not use. The play's own channel always has consent (else
the customer was suppressed). `csv` is retain's own working list and carries every list
column plus the contact details the team needs (for support_queue plays the support team
contacts the customer about their complaint, which needs no marketing consent).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

#: Columns of `export_source`: the list row, the customer's current contact details (validated
#: and normalised), and the flags re-checked at export time.
EXPORT_SOURCE_SQL = """
SELECT l.run_id, l.play, l.customer_id, l.channel, l.action, l.template, l.priority, l.rank,
       l.risk_tier, l.churn_probability, l.clv_12m, l.reasons, l.as_of_date, l.created_at,
       l.next_product_1_id, l.next_product_1_name, l.next_product_2_id, l.next_product_2_name,
       l.next_product_3_id, l.next_product_3_name,
       nullif(trim(d.first_name), '') AS first_name,
       nullif(trim(d.last_name), '') AS last_name,
       retain_email(d.email) AS email,
       retain_e164(d.phone, d.country) AS phone,
       retain_country(d.country) AS country,
       nullif(trim(d.postal_code), '') AS postal_code,
       lower(coalesce(d.email_marketing_consent, '')) AS email_consent,
       lower(coalesce(d.sms_marketing_consent, '')) AS sms_consent,
       d.erasure_requested_at IS NOT NULL AS erasure_requested,
       coalesce(d.is_test_account, false) AS is_test_account
FROM exports.outreach_lists l
JOIN marts.dim_customers d ON d.customer_id = l.customer_id
WHERE l.run_id = $run_id AND ($play::VARCHAR IS NULL OR l.play = $play)
"""

#: Re-checked when the files are written: consent or an erasure request can change between
#: building the list and exporting it, and no file may contain such a customer.
STILL_CONTACTABLE_SQL = """
NOT erasure_requested AND NOT is_test_account AND CASE channel
    WHEN 'email' THEN email_consent = 'subscribed' AND email IS NOT NULL
    WHEN 'sms' THEN sms_consent = 'subscribed' AND phone IS NOT NULL
    ELSE email IS NOT NULL OR phone IS NOT NULL END
"""

# Identifiers a marketing file may carry (see the module docstring).
MK_EMAIL = "CASE WHEN email_consent = 'subscribed' THEN email END"
MK_PHONE = "CASE WHEN sms_consent = 'subscribed' THEN phone END"

EXCEL_MAX_ROWS = 1_048_576  # rows per sheet, header included


@dataclass(frozen=True)
class Column:
    """One output column: header, SQL expression over `export_source`, and kind (see module doc)."""

    header: str
    expr: str
    kind: str = "text"


@dataclass(frozen=True)
class ExportFormat:
    """A file layout that one tool imports."""

    name: str
    title: str
    columns: tuple[Column, ...]
    channels: tuple[str, ...]
    max_rows_per_file: int | None = None
    hashed: bool = False
    #: Rows with none of these columns filled are left out (nothing to match on).
    identifiers: tuple[str, ...] = ()
    #: Start the file with a UTF-8 byte order mark (for files people open in Excel).
    bom: bool = False
    #: Columns that describe the run, not the customer: a row whose other values are the same
    #: as in the previous export is not `changed` when only these differ.
    diff_ignores: tuple[str, ...] = ()

    @property
    def headers(self) -> list[str]:
        """Column headers in file order."""
        return [c.header for c in self.columns]


def _custom(prefix: str = "retain_", suffix: str = "", title_case: bool = False) -> tuple[Column, ...]:
    def name(base: str) -> str:
        if title_case:
            base = "_".join(part.capitalize() if part != "clv" else "CLV" for part in base.split("_"))
        return f"{prefix}{base}{suffix}"

    return (
        Column(name("customer_id"), "customer_id"),
        Column(name("play"), "play"),
        Column(name("churn_risk"), "risk_tier"),
        Column(name("clv_12m"), "round(clv_12m, 2)", "number"),
        Column(name("reason"), "reasons"),
    )


def _next_products(name) -> tuple[Column, ...]:
    """The recommended next products (name and id, ranks 1-3) as custom columns named by `name(i, part)`.

    Only the formats whose tools take custom properties carry them (csv, HubSpot, Klaviyo,
    Mailchimp merge fields); they are empty for plays without `recommend_products`.
    """
    return tuple(
        Column(name(i, part), f"next_product_{i}_{part}") for i in (1, 2, 3) for part in ("name", "id")
    )


CSV = ExportFormat(
    name="csv",
    title="CSV (every list column)",
    channels=("email", "sms", "support_queue"),
    bom=True,
    # The run's id and date, and the position in the list (one newcomer moves everyone below).
    diff_ignores=("run_id", "rank", "as_of_date", "created_at"),
    columns=(
        Column("run_id", "run_id"),
        Column("play", "play"),
        Column("priority", "priority", "number"),
        Column("rank", "rank", "number"),
        Column("customer_id", "customer_id"),
        Column("channel", "channel"),
        Column("action", "action"),
        Column("template", "template"),
        Column("risk_tier", "risk_tier"),
        Column("churn_probability", "round(churn_probability, 4)", "number"),
        Column("clv_12m", "round(clv_12m, 2)", "number"),
        Column("reasons", "reasons"),
        *_next_products(lambda i, part: f"next_product_{i}" + ("_id" if part == "id" else "")),
        Column("first_name", "first_name"),
        Column("last_name", "last_name"),
        Column("email", "email"),
        Column("phone", "phone", "e164"),
        Column("country", "country"),
        Column("as_of_date", "strftime(as_of_date, '%Y-%m-%d')"),
        Column("created_at", "strftime(created_at, '%Y-%m-%dT%H:%M:%SZ')"),
    ),
)

HUBSPOT = ExportFormat(
    name="hubspot",
    title="HubSpot contacts import",
    channels=("email", "sms"),
    max_rows_per_file=EXCEL_MAX_ROWS - 1,
    columns=(
        Column("Email", MK_EMAIL),
        Column("First Name", "first_name"),
        Column("Last Name", "last_name"),
        Column("Phone Number", MK_PHONE, "e164"),
        *_custom(),
        *_next_products(lambda i, part: f"retain_next_product_{i}" + ("_id" if part == "id" else "")),
    ),
)

KLAVIYO = ExportFormat(
    name="klaviyo",
    title="Klaviyo list import",
    channels=("email", "sms"),
    # Klaviyo takes files up to 50 MB; 200,000 rows stay well below it.
    max_rows_per_file=200_000,
    columns=(
        Column("Email", MK_EMAIL),
        Column("Phone Number", MK_PHONE, "e164"),
        Column("First Name", "first_name"),
        Column("Last Name", "last_name"),
        Column("Email Marketing Consent", f"CASE WHEN ({MK_EMAIL}) IS NOT NULL THEN 'SUBSCRIBED' END"),
        Column("SMS Marketing Consent", f"CASE WHEN ({MK_PHONE}) IS NOT NULL THEN 'SUBSCRIBED' END"),
        *_custom(),
        *_next_products(lambda i, part: f"retain_next_product_{i}" + ("_id" if part == "id" else "")),
    ),
)

SALESFORCE = ExportFormat(
    name="salesforce",
    title="Salesforce Contacts (Data Import Wizard)",
    channels=("email", "sms"),
    max_rows_per_file=50_000,
    columns=(
        Column("FirstName", "first_name"),
        # LastName is required for a Salesforce contact.
        Column("LastName", "coalesce(last_name, '[not provided]')"),
        Column("Email", MK_EMAIL),
        Column("Phone", MK_PHONE, "e164"),
        Column("HasOptedOutOfEmail", "CASE WHEN email_consent = 'subscribed' THEN 'false' ELSE 'true' END"),
        *_custom(prefix="Retain_", suffix="__c", title_case=True),
    ),
)

MAILCHIMP = ExportFormat(
    name="mailchimp",
    title="Mailchimp audience import",
    channels=("email",),
    columns=(
        Column("Email Address", MK_EMAIL),
        Column("First Name", "first_name"),
        Column("Last Name", "last_name"),
        Column("Country", "country"),
        Column("Tags", "'retain,retain_' || play || coalesce(',churn_risk_' || risk_tier, '')"),
        # merge fields: create them in the audience first (docs/outreach-and-exports.md)
        *_next_products(lambda i, part: f"Next Product {i}" + (" ID" if part == "id" else "")),
    ),
)

GOOGLE = ExportFormat(
    name="google_customer_match",
    title="Google Ads Customer Match (hashed)",
    channels=("email", "sms"),
    hashed=True,
    identifiers=("Email", "Phone"),
    columns=(
        Column("Email", f"retain_sha256(retain_email_google({MK_EMAIL}))", "hash"),
        Column("Phone", f"retain_sha256({MK_PHONE})", "hash"),
        Column("First Name", "retain_sha256(lower(first_name))", "hash"),
        Column("Last Name", "retain_sha256(lower(last_name))", "hash"),
        Column("Country", "country"),
        Column("Zip", "postal_code"),
    ),
)

META = ExportFormat(
    name="meta_custom_audience",
    title="Meta Custom Audience customer list (hashed)",
    channels=("email", "sms"),
    hashed=True,
    identifiers=("email", "phone"),
    columns=(
        Column("email", f"retain_sha256({MK_EMAIL})", "hash"),
        # Meta: digits with the country code, no '+' and no leading zeros (E.164 has none).
        Column("phone", f"retain_sha256(replace({MK_PHONE}, '+', ''))", "hash"),
        Column("fn", "retain_sha256(retain_meta_name(first_name))", "hash"),
        Column("ln", "retain_sha256(retain_meta_name(last_name))", "hash"),
        Column("country", "retain_sha256(lower(country))", "hash"),
        Column("zip", "retain_sha256(retain_meta_zip(postal_code, country))", "hash"),
    ),
)

_ALL = (CSV, HUBSPOT, KLAVIYO, SALESFORCE, MAILCHIMP, GOOGLE, META)
EXPORT_FORMATS: dict[str, ExportFormat] = {f.name: f for f in _ALL}
#: Format names, in the order `--format all` writes them.
FORMATS: tuple[str, ...] = tuple(EXPORT_FORMATS)


def get_format(name: str) -> ExportFormat:
    """The format called `name`; ValueError naming the formats there are."""
    if name not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {name!r}; formats: {', '.join(FORMATS)}")
    return EXPORT_FORMATS[name]


def _column_sql(col: Column) -> str:
    if col.kind == "text":
        return f"retain_csv_safe(nullif(trim(CAST(({col.expr}) AS VARCHAR)), ''))"
    if col.kind == "e164":
        # Only a value that is E.164 may skip the injection treatment; anything else is dropped.
        return f"CASE WHEN retain_e164_valid(({col.expr})) THEN ({col.expr}) END"
    if col.kind == "hash":
        return f"CAST(({col.expr}) AS VARCHAR)"
    if col.kind == "number":
        return f"({col.expr})"
    raise ValueError(f"unknown column kind {col.kind!r}")


def value_column(col: Column) -> str:
    """The name under which `prepared_columns_sql` computes a column's value (same SQL, same name)."""
    return "__v_" + hashlib.sha256(_column_sql(col).encode()).hexdigest()[:16]


def prepared_columns_sql(formats: Iterable[ExportFormat]) -> str:
    """`<expr> AS __v_…` for every distinct column expression of `formats`, to add to `export_source`.

    Formats share most values (the names in five formats, the consent-checked email in six):
    computed once here, each format's file is then a projection (`rows_sql(fmt, prepared=True)`).
    """
    seen: dict[str, str] = {}
    for fmt in formats:
        for col in fmt.columns:
            seen.setdefault(value_column(col), _column_sql(col))
    return ",\n       ".join(f"{expr} AS {name}" for name, expr in seen.items())


def rows_sql(fmt: ExportFormat, prepared: bool = False) -> str:
    """SELECT over `export_source` (a CTE): `__key`, `__rank`, the format's columns and `__row`, in list order.

    `__row` is the MD5 of the row's values (as JSON) except `diff_ignores`, so the next export
    finds changed rows by comparing one value per customer. `prepared=True` reads the values `prepared_columns_sql`
    added to `export_source` instead of computing them.
    """
    cols = ",\n       ".join(
        f'{value_column(c) if prepared else _column_sql(c)} AS "{c.header}"' for c in fmt.columns
    )
    where = ""
    if fmt.identifiers:
        where = "WHERE " + " OR ".join(f'"{h}" IS NOT NULL' for h in fmt.identifiers)
    values = ", ".join(f'CAST("{c.header}" AS VARCHAR)' for c in fmt.columns if c.header not in fmt.diff_ignores)
    return f"""
SELECT *, md5(to_json([{values}])) AS __row FROM (
    SELECT customer_id AS __key, rank AS __rank,
           {cols}
    FROM export_source
) {where}
ORDER BY __rank, __key
"""
