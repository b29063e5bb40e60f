"""Customer 360: find a customer (exact id or email in the snapshot, an email's beginning in the
warehouse for the support role), their masked profile, score and timeline, and their unmasked
contact details read from the warehouse at the moment they are shown (never cached).

A whole email address is found in the snapshot through its `email_sha256`; the snapshot holds
no plain emails. The pages write every search and reveal to the audit log.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from dashboards.data.connection import WarehouseUnavailable, has, query, table_columns, warehouse_connection
from pipelines.core.privacy import email_sha256, mask_email, mask_phone, mask_text

#: Columns of a search result.
SEARCH_COLUMNS = ["customer_id", "email", "country", "orders_count"]


def looks_like_email(text: str) -> bool:
    """Whether `text` could be a whole email address (something@domain), for the exact email search."""
    local, at, domain = (text or "").strip().partition("@")
    return bool(local and at and domain and " " not in text.strip())


def find_customers(con: duckdb.DuckDBPyConnection, text: str, limit: int = 20) -> pd.DataFrame:
    """Customers whose id equals `text`, or whose email is exactly `text` (case and spaces around it ignored).

    The snapshot holds no plain emails: an email is matched through `email_sha256`, the hash
    of the trimmed, lower-cased address, computed the same way from what was typed. Emails in
    the result are the snapshot's, masked. The beginning of an email is searched in the
    warehouse instead, for the support role only (`search_emails`).
    """
    text = (text or "").strip()
    if not text or not has(con, "marts.dim_customers"):
        return pd.DataFrame(columns=SEARCH_COLUMNS)
    by_email = looks_like_email(text) and "email_sha256" in table_columns(con, "marts.dim_customers")
    return query(
        con,
        f"""
        select customer_id, {mask_email("email")} as email, country, orders_count
        from marts.dim_customers
        where customer_id = $text {f"or email_sha256 = {email_sha256('$text')}" if by_email else ""}
        order by customer_id = $text desc, customer_id
        limit $limit
        """,
        {"text": text, "limit": limit},
    )


def customer_360(con: duckdb.DuckDBPyConnection, customer_id: str) -> dict:
    """One customer's profile, churn score with reasons, and event timeline, contact details masked.

    Unmasked contact details are never read from the snapshot: see `contact_details`.
    """
    if not has(con, "marts.dim_customers"):
        return {"available": False}
    email, phone = mask_email("email"), mask_phone("phone")
    first, last = "left(first_name, 1) || '.'", "left(last_name, 1) || '.'"
    profile = query(
        con,
        f"""
        select * replace ({email} as email, {phone} as phone, {first} as first_name, {last} as last_name)
        from marts.dim_customers where customer_id = $customer_id
        """,
        {"customer_id": customer_id},
    )
    if profile.empty:
        return {"available": True, "found": False}
    out = {"available": True, "found": True, "profile": profile.iloc[0].to_dict(), "score": None, "timeline": None}
    if has(con, "ml.churn_scores"):
        score = query(
            con, "select * from ml.churn_scores where customer_id = $customer_id", {"customer_id": customer_id}
        )
        out["score"] = None if score.empty else score.iloc[0].to_dict()
    if out["score"] is not None and has(con, "marts.customer_action_tiers"):
        tier = query(
            con,
            """select action_tier, action_rank, value_at_risk from marts.customer_action_tiers
               where customer_id = $customer_id and scores_as_of_date = $as_of""",
            {"customer_id": customer_id, "as_of": out["score"]["as_of_date"]},
        )
        out["action"] = None if tier.empty else tier.iloc[0].to_dict()
    if out["score"] is not None and has(con, "ml.uplift_scores"):
        out["uplift"] = query(
            con,
            """select u.play, u.uplift, u.p_order_if_contacted, u.p_order_if_held_out, u.uplift_rank, n.ranked
               from ml.uplift_scores u
               join (select play, count(*) as ranked from ml.uplift_scores group by play) n using (play)
               where u.customer_id = $customer_id order by u.play""",
            {"customer_id": customer_id},
        )
    if has(con, "marts.customer_segments"):
        seg = query(
            con, "select * from marts.customer_segments where customer_id = $customer_id", {"customer_id": customer_id}
        )
        out["segment"] = None if seg.empty else seg.iloc[0].to_dict()
    if has(con, "marts.fct_customer_events"):
        detail = mask_text("detail")
        out["timeline"] = query(
            con,
            f"""
            select event_at, event_type, channel, title, {detail} as detail, amount, score, order_id
            from marts.fct_customer_events where customer_id = $customer_id
            order by event_at desc
            """,
            {"customer_id": customer_id},
        )
    return out


#: What Customer 360 reveals, from marts.dim_customers.
CONTACT_FIELDS = ("email", "phone", "first_name", "last_name")


def contact_details(customer_id: str) -> dict | None:
    """One customer's unmasked contact fields from the warehouse (None if the customer is not there)."""
    with warehouse_connection() as con:
        present = set(table_columns(con, "marts.dim_customers"))
        if not present:
            raise WarehouseUnavailable("the warehouse has no marts.dim_customers yet: run `retain run`")
        fields = [f for f in CONTACT_FIELDS if f in present]
        row = query(con, f"select {', '.join(fields)} from marts.dim_customers where customer_id = $customer_id",
                    {"customer_id": customer_id})
    return None if row.empty else row.iloc[0].to_dict()


def search_emails(prefix: str, limit: int = 20) -> pd.DataFrame:
    """Customers whose email in the warehouse starts with `prefix` (case-insensitive), emails masked.

    For the support role only: it tells which addresses exist, so the page writes each search
    to the audit log. The snapshot cannot answer it (its emails are masked), so this reads
    the warehouse on a connection of its own, closed again as soon as the rows are read.
    """
    prefix = (prefix or "").strip()
    if not prefix:
        return pd.DataFrame(columns=SEARCH_COLUMNS)
    pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    with warehouse_connection() as con:
        present = table_columns(con, "marts.dim_customers")
        if "email" not in present:
            raise WarehouseUnavailable("the warehouse has no marts.dim_customers yet: run `retain run`")
        extra = ", ".join(f"{c}" if c in present else f"null as {c}" for c in ("country", "orders_count"))
        return query(
            con,
            f"""
            select customer_id, {mask_email("email")} as email, {extra}
            from marts.dim_customers
            where lower(email) like lower($pattern) escape '\\'
            order by customer_id
            limit $limit
            """,
            {"pattern": pattern, "limit": limit},
        )

