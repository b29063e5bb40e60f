"""retain's KPIs in pandas, the way an analyst would compute them in a notebook.

The same results as `bench/kpi_sql.py` (the `marts.kpi_monthly` set, `retention_cohorts`
and a customer-level summary like `dim_customers`), by the same definitions: read each
source's CSV files with `pd.read_csv`, parse timestamps to UTC, then groupby and merge.
Vectorised throughout (no per-row Python); months are handled as integer month numbers
(year * 12 + month - 1) because Period arithmetic goes through Python objects.

Customers are counted per person, as the marts count them: `resolve_identity` re-implements
retain's identity rule (docs/importing.md, "The marts count one customer per identity group")
for the contract files read here, and every `customer_id` is read through it.

Like the SQL version it reads every row once: generated data holds each key once, so this
equals staging's "latest version per key".

    python -m bench.kpi_pandas --landing data/bench/s/landing --out /tmp/kpi_pandas

Prints one JSON line: {"seconds": compute time without interpreter start-up, "rows": {...}}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import NEEDED, NORMALISED, RESULTS, source_files
from pipelines.core.contract import source
from pipelines.ingest.rules import EMAIL_RE, PHONE_DIGITS, PHONE_RE


def read_source(landing: Path, name: str) -> pd.DataFrame:
    """All CSV files of a source, needed columns only, typed: timestamps naive UTC, numbers float."""
    wanted = NEEDED[name]
    # ids and codes as text, numbers inferred by the reader, timestamps parsed below
    text = {c.name: str for c in source(name).columns if c.type in ("varchar", "timestamp", "date")}
    frames = [
        pd.read_csv(f, usecols=lambda c: c.strip() in wanted, dtype=text, keep_default_na=False, na_values=[""])
        for f in source_files(landing, name)
    ]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    df.columns = [c.strip() for c in df.columns]
    out = pd.DataFrame(index=df.index)
    for col_name in wanted:
        col = source(name).column(col_name)
        values = df[col_name] if col_name in df else pd.Series(np.nan, index=df.index, dtype=object)
        if col.type in ("timestamp", "date"):
            parsed = pd.to_datetime(values, utc=True, format="ISO8601")
            out[col_name] = parsed.dt.tz_convert(None).astype("datetime64[us]")
        elif col.type in ("decimal", "integer"):
            out[col_name] = pd.to_numeric(values)
        else:
            text = values.str.strip()
            if col_name in NORMALISED:
                text = text.str.lower()
            out[col_name] = text.replace("", np.nan)
    return out


def resolve_identity(customers: pd.DataFrame) -> pd.Series:
    """The customer id each customer key counts under: retain's identity rule, for contract files.

    The documented rule (docs/importing.md, "The marts count one customer per identity group"):
    a key with a usable email (trimmed, lower-cased, `x@y.z`-shaped, no space) belongs to its
    email's group; a key without one joins the email group of the same E.164 phone (`+` and 8-15
    digits, or `00` and 10-17 digits, the `00` dropped; else digits and ` ()./-` only), the
    smallest email key (`em_` + md5) when several share the phone, else the phone's own group,
    else stays alone; a group holding a contract customer takes its smallest contract id. Every
    key read here comes from the contract's `customers/` files, so every group takes its
    smallest customer id. (Platform ids join groups only in the warehouse's raw layer, which
    `bench/kpi_sql.py --warehouse` reads.) Returns a Series indexed by key.
    """
    # Arrow strings: their str methods run in C++ (RE2 regexes, as DuckDB's), not per value in Python
    keys = customers[["customer_id", "email", "phone"]].dropna(subset=["customer_id"]).astype("string[pyarrow]")
    # an email or phone failing the contract's `format:` is nulled, as ingestion nulls an invalid
    # optional value (docs/ingestion.md): it joins no group in raw either
    valid_email = keys["email"].str.fullmatch(EMAIL_RE).fillna(False).astype(bool)
    lo, hi = PHONE_DIGITS
    valid_phone = keys["phone"].str.fullmatch(PHONE_RE).fillna(False).astype(bool) & keys["phone"].str.count(
        r"[0-9]"
    ).between(lo, hi)
    keys = keys.assign(email=keys["email"].where(valid_email), phone=keys["phone"].where(valid_phone))
    email = keys["email"].str.strip(" ").str.lower()
    shaped_email = email.str.fullmatch(r"(?s).+@.+\..+").fillna(False).astype(bool)
    email = email.where(shaped_email & ~email.str.contains(" ", regex=False).fillna(True).astype(bool))
    phone = keys["phone"].str.strip(" ")
    digits = phone.str.replace(r"[^0-9]", "", regex=True)
    n = digits.str.len()
    shaped = phone.str.fullmatch(r"\+?[0-9][0-9 ()./-]+[0-9]").fillna(False).astype(bool)
    plus = shaped & phone.str.startswith("+").fillna(False).astype(bool) & n.between(8, 15)
    zeros = shaped & phone.str.startswith("00").fillna(False).astype(bool) & n.between(10, 17)
    e164 = ("+" + digits).where(plus, ("+" + digits.str[2:]).where(zeros))
    # per key its largest email and phone (a key may have several rows); sorting, not
    # groupby().max(), which runs Python per group on text
    rows = pd.DataFrame({"key": keys["customer_id"], "email": email, "phone": e164})
    per_key = pd.DataFrame(index=pd.Index(rows["key"].unique(), name="key"))
    for col in ("email", "phone"):
        last = rows.sort_values(["key", col], na_position="first").drop_duplicates("key", keep="last")
        per_key[col] = last.set_index("key")[col]
    per_key = per_key.astype("string[pyarrow]")  # text even when a column holds no value at all

    no_email = per_key["email"].isna()
    # the email of each phone, for keys without one; when several emails hold a phone that such
    # a key has, the smallest email key wins: only those few emails are hashed, to break the tie
    shared = per_key[~no_email].dropna(subset=["phone"]).drop_duplicates(["phone", "email"])
    tied = shared[shared["phone"].duplicated(keep=False) & shared["phone"].isin(per_key.loc[no_email, "phone"])]
    md5 = tied["email"].map(lambda e: hashlib.md5(e.encode()).hexdigest()[:20])
    first_email = pd.concat(
        [
            shared.drop_duplicates("phone", keep=False).set_index("phone")["email"],
            tied.assign(md5=md5).sort_values("md5").drop_duplicates("phone").set_index("phone")["email"],
        ]
    )
    via_phone = per_key["phone"].where(no_email).map(first_email).astype("string[pyarrow]")
    own = pd.Series("id:" + per_key.index, index=per_key.index)
    group = ("em:" + per_key["email"]).where(
        ~no_email,
        ("em:" + via_phone).where(via_phone.notna(), ("ph:" + per_key["phone"]).where(per_key["phone"].notna(), own)),
    )
    # the smallest key of each group (all are contract keys here)
    members = pd.DataFrame({"group": group.to_numpy(), "key": per_key.index.to_numpy()}).sort_values(["group", "key"])
    smallest = members.drop_duplicates("group").set_index("group")["key"]
    return group.map(smallest).rename("customer_id")


def month_index(ts: pd.Series) -> pd.Series:
    """Calendar month of each timestamp as an integer (year * 12 + month - 1); NaN for NaT."""
    return ts.dt.year * 12 + ts.dt.month - 1


def month_start(idx: pd.Series | np.ndarray) -> pd.Series:
    """The first day of each integer month."""
    idx = pd.Series(np.asarray(idx, dtype="int64"))
    return pd.to_datetime(pd.DataFrame({"year": idx // 12, "month": idx % 12 + 1, "day": 1}))


def ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    """num / den with NaN (NULL) where the denominator is 0 or missing."""
    return num / den.where(den > 0)


def compute(landing: Path) -> dict[str, pd.DataFrame]:
    """Read the landing files and compute the three results."""
    customers = read_source(landing, "customers")
    orders = read_source(landing, "orders")
    returns = read_source(landing, "returns")
    surveys = read_source(landing, "survey_responses")
    reviews = read_source(landing, "reviews")
    tickets = read_source(landing, "support_tickets")

    # one customer per person, as the marts count them; keys no customer row names stay
    identity = resolve_identity(customers)
    orders["customer_id"] = orders["customer_id"].map(identity).fillna(orders["customer_id"])
    tickets["customer_id"] = tickets["customer_id"].map(identity).fillna(tickets["customer_id"])
    customers = pd.DataFrame({"customer_id": customers["customer_id"].map(identity).dropna().unique()})

    valid = orders[orders["status"].fillna("placed") != "cancelled"].copy()
    valid["order_month"] = month_index(valid["ordered_at"])
    valid["delivery_month"] = month_index(valid["delivered_at"])
    as_of = orders["ordered_at"].max().normalize()
    last_order_month = as_of.year * 12 + as_of.month - 1

    # per customer; the second valid order (by time) makes a repeat customer
    valid = valid.sort_values(["customer_id", "ordered_at"], kind="stable")
    valid["nth"] = valid.groupby("customer_id").cumcount()
    cust = valid.groupby("customer_id").agg(
        orders_count=("order_id", "size"),
        lifetime_revenue=("total", "sum"),
        first_order_at=("ordered_at", "min"),
        last_order_at=("ordered_at", "max"),
    )
    cust["first_month"] = month_index(cust["first_order_at"])
    second_month = month_index(valid.loc[valid["nth"] == 1, "ordered_at"])
    customer_months = valid[["customer_id", "order_month"]].drop_duplicates()

    # the month spine: every month from the first to the last event (cancelled orders too)
    event_months = pd.concat(
        [
            month_index(orders["ordered_at"]),
            month_index(orders["delivered_at"]),
            month_index(surveys["responded_at"]),
            month_index(reviews["created_at"]),
            month_index(tickets["created_at"]),
        ]
    ).dropna()
    months = pd.Index(np.arange(int(event_months.min()), int(event_months.max()) + 1), name="month")

    k = pd.DataFrame(index=months)
    by_month = valid.groupby("order_month")
    k["orders"] = by_month.size()
    k["customers_ordering"] = by_month["customer_id"].nunique()
    k["revenue"] = by_month["total"].sum()
    k["new_customers"] = cust.groupby("first_month").size()
    k = k.fillna({"orders": 0, "customers_ordering": 0, "revenue": 0.0, "new_customers": 0})
    k["avg_order_value"] = ratio(k["revenue"], k["orders"])

    prev = customer_months.assign(order_month=customer_months["order_month"] + 1)
    returning = customer_months.merge(prev, on=["customer_id", "order_month"]).groupby("order_month").size()
    k["returning_customer_rate"] = ratio(returning.reindex(months, fill_value=0), k["customers_ordering"].shift(1))
    repeat_to_date = second_month.value_counts().reindex(months, fill_value=0).cumsum()
    k["repeat_purchase_rate"] = ratio(repeat_to_date, k["new_customers"].cumsum())

    delivered = valid[valid["delivered_at"].notna()].copy()
    delivered["promised"] = delivered["promised_delivery_date"].notna()
    delivered["on_time"] = delivered["promised"] & (
        delivered["delivered_at"].dt.normalize() <= delivered["promised_delivery_date"]
    )
    # a rejected return request is not a return
    kept_returns = returns.loc[returns["status"].fillna("") != "rejected", "order_id"]
    delivered["returned"] = delivered["order_id"].isin(kept_returns)
    d = delivered.groupby("delivery_month")[["promised", "on_time", "returned"]].sum()
    d["delivered"] = delivered.groupby("delivery_month").size()
    d = d.reindex(months)
    k["on_time_delivery_rate"] = ratio(d["on_time"], d["promised"])

    surveys["month"] = month_index(surveys["responded_at"])
    nps = surveys[surveys["survey_type"] == "nps"]
    nps_by = nps.assign(promoter=nps["score"] >= 9, detractor=nps["score"] <= 6).groupby("month")
    nps_counts = nps_by[["promoter", "detractor"]].sum().reindex(months)
    k["nps"] = 100 * ratio(nps_counts["promoter"] - nps_counts["detractor"], nps_by.size().reindex(months))
    csat = surveys[surveys["survey_type"] == "csat"]
    csat_by = csat.assign(satisfied=csat["score"] >= 4).groupby("month")
    k["csat"] = 100 * ratio(csat_by["satisfied"].sum().reindex(months), csat_by.size().reindex(months))
    k["avg_review_rating"] = reviews.groupby(month_index(reviews["created_at"]))["rating"].mean()

    tickets["month"] = month_index(tickets["created_at"])
    complaints = tickets[tickets["ticket_type"] == "complaint"].copy()
    complaints["resolved"] = complaints["resolved_at"].notna()
    complaints["hours_to_first_response"] = (
        complaints["first_response_at"] - complaints["created_at"]
    ).dt.total_seconds() / 3600
    complaints["hours_to_resolution"] = (complaints["resolved_at"] - complaints["created_at"]).dt.total_seconds() / 3600
    complaints["fcr"] = complaints["resolved"] & (complaints["agent_replies"] == 1) & (complaints["reopen_count"] == 0)
    c_by = complaints.groupby("month")
    c = pd.DataFrame(
        {
            "complaints": c_by.size(),
            "resolved": c_by["resolved"].sum(),
            "fcr": c_by["fcr"].sum(),
            "median_hours_to_first_response": c_by["hours_to_first_response"].median(),
            "median_hours_to_resolution": c_by["hours_to_resolution"].median(),
        }
    ).reindex(months)
    k["complaints"] = c["complaints"].fillna(0)
    k["complaint_resolution_rate"] = ratio(c["resolved"], c["complaints"])
    k["median_hours_to_first_response"] = c["median_hours_to_first_response"]
    k["median_hours_to_resolution"] = c["median_hours_to_resolution"]
    k["first_contact_resolution_rate"] = ratio(c["fcr"], c["resolved"])
    wismo = tickets[tickets["category"] == "wismo"].groupby("month").size().reindex(months, fill_value=0)
    k["wismo_per_100_orders"] = 100 * ratio(wismo, k["orders"])
    k["return_rate"] = ratio(d["returned"], d["delivered"])

    kpi_monthly = k.reset_index()
    kpi_monthly["month"] = month_start(kpi_monthly["month"])
    for col in ("orders", "customers_ordering", "new_customers", "complaints"):
        kpi_monthly[col] = kpi_monthly[col].astype("int64")
    kpi_monthly = kpi_monthly[
        [
            "month",
            "orders",
            "customers_ordering",
            "new_customers",
            "revenue",
            "avg_order_value",
            "returning_customer_rate",
            "repeat_purchase_rate",
            "on_time_delivery_rate",
            "nps",
            "csat",
            "avg_review_rating",
            "complaints",
            "complaint_resolution_rate",
            "median_hours_to_first_response",
            "median_hours_to_resolution",
            "first_contact_resolution_rate",
            "wismo_per_100_orders",
            "return_rate",
        ]
    ]

    # retention cohorts: every cohort x every month offset up to the latest order's month
    sizes = cust.groupby("first_month").size().rename("cohort_size").reset_index()
    span = (last_order_month - sizes["first_month"] + 1).clip(lower=0)
    grid = sizes.loc[sizes.index.repeat(span)].reset_index(drop=True)
    grid["months_since_first_order"] = grid.groupby("first_month").cumcount()
    active = customer_months.merge(cust[["first_month"]], left_on="customer_id", right_index=True)
    active["months_since_first_order"] = active["order_month"] - active["first_month"]
    active = active.groupby(["first_month", "months_since_first_order"]).size().rename("active_customers")
    cohorts = grid.merge(active.reset_index(), on=["first_month", "months_since_first_order"], how="left")
    cohorts["active_customers"] = cohorts["active_customers"].fillna(0).astype("int64")
    cohorts["retention_rate"] = cohorts["active_customers"] / cohorts["cohort_size"]
    cohorts["cohort_month"] = month_start(cohorts["first_month"])
    retention_cohorts = cohorts[
        ["cohort_month", "months_since_first_order", "cohort_size", "active_customers", "retention_rate"]
    ]

    complaint_counts = complaints.groupby("customer_id").size().rename("complaints_count")
    summary = customers[["customer_id"]].merge(cust, left_on="customer_id", right_index=True, how="left")
    summary = summary.merge(complaint_counts, left_on="customer_id", right_index=True, how="left")
    summary["orders_count"] = summary["orders_count"].fillna(0).astype("int64")
    summary["lifetime_revenue"] = summary["lifetime_revenue"].fillna(0.0)
    summary["complaints_count"] = summary["complaints_count"].fillna(0).astype("int64")
    summary["days_since_last_order"] = (as_of - summary["last_order_at"].dt.normalize()).dt.days
    summary = summary.sort_values("customer_id")[
        [
            "customer_id",
            "orders_count",
            "lifetime_revenue",
            "first_order_at",
            "last_order_at",
            "days_since_last_order",
            "complaints_count",
        ]
    ]
    return {"kpi_monthly": kpi_monthly, "retention_cohorts": retention_cohorts, "customers": summary}


def run(landing: Path, out: Path) -> dict:
    """Compute the KPIs from `landing`, write `<out>/<result>.parquet`; return seconds and row counts."""
    start = time.perf_counter()
    results = compute(landing)
    out.mkdir(parents=True, exist_ok=True)
    for name in RESULTS:
        results[name].to_parquet(out / f"{name}.parquet", index=False)
    return {"seconds": time.perf_counter() - start, "rows": {name: len(results[name]) for name in RESULTS}}


def main() -> None:
    """Command line: `python -m bench.kpi_pandas --landing DIR --out DIR`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--landing", type=Path, required=True, help="landing folder, one sub-folder per source")
    parser.add_argument("--out", type=Path, required=True, help="folder for the Parquet results")
    args = parser.parse_args()
    print(json.dumps(run(args.landing, args.out)), flush=True)


if __name__ == "__main__":
    main()
