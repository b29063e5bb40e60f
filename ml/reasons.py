"""Why a customer is at risk: the top factors raising their churn probability, in plain words.

Derived from the model, not from a fixed list. For each driver group (recency, complaints,
NPS, ...) the group's features are set to their reference values (the median, or most
common category, of retained customers in training) and the risk is predicted again; the
drop in risk is that group's contribution for the customer. One batch prediction per group over the rows where the
group differs from the reference (elsewhere the contribution is exactly zero), so the cost
is a handful of vectorised predictions whatever the number of customers.

Only groups whose actual values raise the risk (positive contribution above
`min_contribution`) become reasons, the largest first, and each text quotes the customer's
own values ("no order for 210 days, 2.3x their usual gap").
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from ml._threads import threads_for
from ml.registry import MISSING_CATEGORY, ModelArtifact
from ml.whatif import WhatIf

#: Below this many rows the groups' what-ifs run one after another (threads would cost more).
PARALLEL_GROUP_ROWS = 50_000


def risk_and_contributions(
    artifact: ModelArtifact, frame: pd.DataFrame, base_risk: np.ndarray | None = None
) -> tuple[np.ndarray, pd.DataFrame]:
    """(churn probability per row, contributions), through `ml.whatif` when the model allows it.

    A contribution is, per row and driver group, the risk now minus the risk with the group at
    its reference values.

    Both are bit for bit what `ModelArtifact.predict_risk` and `plain_contributions` give;
    the plain computation is the fallback for models `ml.whatif` does not reproduce.
    """
    frame = frame.reset_index(drop=True)
    with threads_for(len(frame)):
        what_if = WhatIf.for_artifact(artifact, frame)
        if what_if is None:
            risk = artifact.predict_risk(frame) if base_risk is None else np.asarray(base_risk, dtype=float)
            return risk, _plain_contributions(artifact, frame, risk)
        return _tree_contributions(artifact, what_if, frame, base_risk)


def plain_contributions(artifact: ModelArtifact, frame: pd.DataFrame, base_risk: np.ndarray | None = None
                        ) -> pd.DataFrame:
    """`risk_and_contributions`' contributions the direct way: one prediction per group where it differs."""
    with threads_for(len(frame)):
        return _plain_contributions(artifact, frame.reset_index(drop=True), base_risk)


def _differs(artifact: ModelArtifact, X: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """Rows where any of the group's features is known and not at its reference value."""
    differs = np.zeros(len(X), dtype=bool)
    for c in cols:
        ref = artifact.reference[c]
        if c in artifact.categorical:
            values = X[c].to_numpy(dtype=object)
            differs |= (values != ref) & (values != MISSING_CATEGORY)
        else:
            values = X[c].to_numpy(dtype=float)
            differs |= ~np.isnan(values) & (np.isnan(ref) | (values != ref))
    return differs


def _tree_contributions(
    artifact: ModelArtifact, what_if: WhatIf, frame: pd.DataFrame, base_risk: np.ndarray | None
) -> tuple[np.ndarray, pd.DataFrame]:
    X = artifact.model_input(frame)
    Z = artifact.transform(X, prepared=True)
    binned = what_if.bin(Z)
    del Z
    leaves = what_if.leaves(binned)
    risk = what_if.risk(what_if.raw(leaves))
    if base_risk is not None and not np.array_equal(risk, np.asarray(base_risk, dtype=float)):
        # a caller's own baseline: measure against it, the plain way
        base = np.asarray(base_risk, dtype=float)
        return base, _plain_contributions(artifact, frame, base)
    ref_bins = what_if.reference_bins(artifact.transform(pd.DataFrame([artifact.reference])[artifact.features]))
    groups = artifact.metadata.get("explain_groups") or list(artifact.groups)
    values = np.zeros((len(X), len(artifact.groups)))
    names = list(artifact.groups)

    def contribute(group: str) -> None:
        cols = artifact.groups[group]
        rows = np.flatnonzero(_differs(artifact, X, cols))
        if len(rows) == 0:
            return
        changed, raw = what_if.swapped_raw(binned, leaves, rows, cols, ref_bins)
        # rows whose leaves do not change keep their risk: their contribution is exactly 0
        values[changed, names.index(group)] = risk[changed] - what_if.risk(raw)

    # Groups are independent (each writes its own column) and their tree walks and numpy work
    # release the GIL: one thread per core over the groups.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = min(cores, len(groups)) if len(X) >= PARALLEL_GROUP_ROWS else 1
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(contribute, groups))
    else:
        for group in groups:
            contribute(group)
    return risk, pd.DataFrame(values, columns=names)


def _plain_contributions(artifact: ModelArtifact, frame: pd.DataFrame, base_risk: np.ndarray | None) -> pd.DataFrame:
    X = artifact.model_input(frame).reset_index(drop=True)
    # encode once; each what-if only overwrites a group's columns in the encoded matrix
    Z = artifact.transform(X, prepared=True).reset_index(drop=True)
    reference = artifact.transform(pd.DataFrame([artifact.reference])[artifact.features]).iloc[0]
    base = artifact.risk_from_transformed(Z) if base_risk is None else np.asarray(base_risk, dtype=float)
    groups = artifact.metadata.get("explain_groups") or list(artifact.groups)
    out = pd.DataFrame(0.0, index=X.index, columns=list(artifact.groups))
    for group in groups:
        cols = artifact.groups[group]
        rows = np.flatnonzero(_differs(artifact, X, cols))
        if len(rows) == 0:
            continue
        swapped = Z.iloc[rows].copy()
        for c in cols:
            swapped[c] = reference[c]
        out.loc[rows, group] = base[rows] - artifact.risk_from_transformed(swapped)
    return out


def _num(series: pd.Series, digits: int = 0) -> pd.Series:
    """Numbers as text: integers without decimals, others rounded."""
    values = series.astype(float).round(digits)
    return values.astype(int).astype(str) if digits == 0 else values.astype(str)


def _plural(n: pd.Series, one: str, many: str) -> pd.Series:
    return pd.Series(np.where(n.astype(float) == 1, one, many), index=n.index)


def _recency(f: pd.DataFrame) -> pd.Series:
    text = "no order for " + _num(f["days_since_last_order"]) + " days"
    text = text.where(f["order_count"] > 1, text + " since their only order")
    has_gap = f["overdue_ratio"].notna() & (f["overdue_ratio"] >= 1)
    gap_text = text + ", " + _num(f["overdue_ratio"], 1) + "x their usual gap"
    return gap_text.where(has_gap, text)


def _frequency(f: pd.DataFrame) -> pd.Series:
    few = "only " + _num(f["order_count"]) + " " + _plural(f["order_count"], "order", "orders") + " so far"
    rare = "orders rarely: about every " + _num(f["gap_mean_days"].fillna(0)) + " days"
    return few.where((f["order_count"] <= 2) | f["gap_mean_days"].isna(), rare)


def _tenure(f: pd.DataFrame) -> pd.Series:
    return "first order " + _num(f["tenure_days"]) + " days ago"


def _trend(f: pd.DataFrame) -> pd.Series:
    base = (_num(f["orders_last_90d"]) + " " + _plural(f["orders_last_90d"], "order", "orders")
            + " in the last 90 days")
    pace = base + " (" + _num(f["order_trend_ratio"].fillna(0) * 100) + "% of their earlier pace)"
    return pace.where(f["order_trend_ratio"].notna(), base)


def _spend(f: pd.DataFrame) -> pd.Series:
    return ("average order " + _num(f["avg_order_value"]) + ", " + _num(f["spend_last_365d"])
            + " spent in the last 12 months")


def _discount(f: pd.DataFrame) -> pd.Series:
    return _num(f["discounted_order_share"] * 100) + "% of orders used a discount"


def _returns(f: pd.DataFrame) -> pd.Series:
    text = _num(f["return_count"]) + " " + _plural(f["return_count"], "return", "returns") + " requested"
    return ("returned the last order; " + text).where(f["last_order_returned"] > 0, text)


def _delivery(f: pd.DataFrame) -> pd.Series:
    text = (_num(f["late_deliveries"]) + " late " + _plural(f["late_deliveries"], "delivery", "deliveries")
            + " (up to " + _num(f["max_delay_days"].fillna(0)) + " days late)")
    text = text.where(f["late_deliveries"] > 0, "no late delivery so far")
    return text.where(f["last_order_late"] != 1, "last order arrived late; " + text)


def _last_order_complaint(f: pd.DataFrame) -> pd.Series:
    hours = f["last_order_complaint_hours"].fillna(0)
    open_text = "complaint about the last order unresolved for " + _num(hours / 24) + " days"
    slow = hours >= 48
    done = ("complaint about the last order took " + _num(hours / 24) + " days to resolve").where(
        slow, "complaint about the last order (resolved in " + _num(hours) + " hours)")
    return open_text.where(f["last_order_complaint_open"] > 0, done)


def _post_purchase(f: pd.DataFrame) -> pd.Series:
    return pd.Series("no how-to guide or thank-you email after the last order", index=f.index)


def _wismo(f: pd.DataFrame) -> pd.Series:
    return (_num(f["wismo_tickets"]) + " 'where is my order' "
            + _plural(f["wismo_tickets"], "contact", "contacts"))


def _complaints(f: pd.DataFrame) -> pd.Series:
    return (_num(f["complaint_count"]) + " " + _plural(f["complaint_count"], "complaint", "complaints")
            + " (" + _num(f["complaints_last_90d"].fillna(0)) + " in the last 90 days)")


def _unresolved(f: pd.DataFrame) -> pd.Series:
    open_text = "complaint unresolved for " + _num(f["days_unresolved"].fillna(0)) + " days"
    many = f["unresolved_complaints"] > 1
    open_text = open_text.where(~many, _num(f["unresolved_complaints"]) + " complaints unresolved, oldest for "
                                + _num(f["days_unresolved"].fillna(0)) + " days")
    return open_text.where(f["unresolved_complaints"] > 0, "no open complaint")


def _resolution(f: pd.DataFrame) -> pd.Series:
    text = "support took " + _num(f["avg_hours_to_resolution"].fillna(0)) + " hours on average to resolve"
    tickets = _num(f["ticket_count"]) + " support " + _plural(f["ticket_count"], "ticket", "tickets")
    return text.where(f["avg_hours_to_resolution"].notna(), tickets)


def _nps(f: pd.DataFrame) -> pd.Series:
    score = f["last_order_nps"].fillna(f["last_nps"])
    label = pd.Series(np.where(score <= 6, "detractor", np.where(score <= 8, "passive", "promoter")), index=f.index)
    return "last NPS " + _num(score.fillna(0)) + " (" + label + ")"


def _csat(f: pd.DataFrame) -> pd.Series:
    return "last CSAT " + _num(f["last_csat"].fillna(0)) + " of 5"


def _reviews(f: pd.DataFrame) -> pd.Series:
    return ("last review " + _num(f["last_rating"].fillna(0)) + " stars (average "
            + _num(f["avg_rating"].fillna(0), 1) + ")").where(f["last_rating"].notna(), "no product review")


def _engagement(f: pd.DataFrame) -> pd.Series:
    opened = ("opened " + _num(f["opens_90d"]) + " of " + _num(f["emails_90d"]) + " emails in the last 90 days")
    last = opened + ", last open " + _num(f["days_since_last_open"].fillna(0)) + " days ago"
    text = last.where(f["days_since_last_open"].notna(), opened + ", never opened one")
    return text.where(f["emails_90d"] > 0, "no emails received in the last 90 days")


def _unsubscribed(f: pd.DataFrame) -> pd.Series:
    return pd.Series(np.where(f["has_unsubscribed"] > 0, "unsubscribed from emails", "still subscribed"),
                     index=f.index)


_CONSENT_WORDS = {
    "unsubscribed": "unsubscribed from marketing emails",
    "no_marketing": "gets no marketing emails (no consent or not mailed in 90 days)",
    "receives_marketing": "receives marketing emails",
}


def _consent(f: pd.DataFrame) -> pd.Series:
    values = f["email_consent"].astype(str)
    return values.map(_CONSENT_WORDS).fillna("email consent: " + values)


def _category(label: str, column: str):
    def text(f: pd.DataFrame) -> pd.Series:
        return label + " " + f[column].astype(str)
    return text


TEMPLATES = {
    "recency": _recency, "frequency": _frequency, "tenure": _tenure, "trend": _trend, "spend": _spend,
    "discount": _discount, "returns": _returns, "delivery": _delivery, "wismo": _wismo,
    "last_order_complaint": _last_order_complaint, "post_purchase": _post_purchase,
    "complaints": _complaints, "unresolved": _unresolved, "resolution": _resolution, "nps": _nps,
    "csat": _csat, "reviews": _reviews, "engagement": _engagement, "unsubscribed": _unsubscribed,
    "consent": _consent, "channel": _category("buys via", "last_sales_channel"),
    "country": _category("country", "country"),
}


#: When a group may be worded as a reason at all. The model decides whether and how much a
#: group raises the risk; these rules only keep the wording honest ("no order for 0 days"
#: or "0 complaints" is never a reason, even where an interaction makes it add risk).
ELIGIBLE = {
    "recency": lambda f: f["days_since_last_order"] >= 30,
    "trend": lambda f: f["order_trend_ratio"].fillna(1.0) < 1.0,
    "returns": lambda f: f["return_count"] > 0,
    "delivery": lambda f: f["late_deliveries"] > 0,
    "wismo": lambda f: f["wismo_tickets"] > 0,
    "complaints": lambda f: f["complaint_count"] > 0,
    "unresolved": lambda f: f["unresolved_complaints"] > 0,
    "resolution": lambda f: f["avg_hours_to_resolution"].notna(),
    "nps": lambda f: f["last_nps"].notna() | f["last_order_nps"].notna(),
    "last_order_complaint": lambda f: f["last_order_complaint"] > 0,
    "post_purchase": lambda f: (f["last_order_how_to"] == 0) & (f["last_order_thank_you"] == 0),
    "csat": lambda f: f["last_csat"].notna(),
    "reviews": lambda f: f["last_rating"].notna(),
    "engagement": lambda f: f["emails_90d"] > 0,
    "unsubscribed": lambda f: f["has_unsubscribed"] > 0,
}


def risk_and_explain(
    artifact: ModelArtifact,
    frame: pd.DataFrame,
    top_n: int = 3,
    min_contribution: float = 0.005,
    base_risk: np.ndarray | None = None,
) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    """(churn probability, reasons, contributions) for each row of a `build_features` frame.

    `reasons` has columns reason_1..reason_{top_n} (None where fewer groups raise the risk by
    at least `min_contribution`, an absolute probability); `contributions` is the per-group
    risk change behind them (zero where the group cannot be worded as a reason, see
    `ELIGIBLE`). The probability comes on the way, at no extra cost.
    """
    frame = frame.reset_index(drop=True)
    risk, contrib = risk_and_contributions(artifact, frame, base_risk)
    return risk, _reasons(frame, contrib, top_n, min_contribution), contrib


def _reasons(frame: pd.DataFrame, contrib: pd.DataFrame, top_n: int, min_contribution: float) -> pd.DataFrame:
    """Reason texts from contributions (zeroing those of groups `ELIGIBLE` rules out, in place)."""
    for group, rule in ELIGIBLE.items():
        if group in contrib:
            contrib[group] = contrib[group].where(rule(frame).to_numpy(dtype=bool), 0.0)
    groups = np.array(contrib.columns)
    values = contrib.to_numpy()
    order = np.argsort(-values, axis=1, kind="stable")[:, :top_n]
    top_values = np.take_along_axis(values, order, axis=1)
    reasons = pd.DataFrame(index=frame.index)
    for k in range(top_n):
        column = np.full(len(frame), None, dtype=object)
        if k < values.shape[1]:
            chosen = groups[order[:, k]]
            keep = top_values[:, k] >= min_contribution
            for group in np.unique(chosen[keep]):
                rows = np.flatnonzero(keep & (chosen == group))
                column[rows] = TEMPLATES[group](frame.iloc[rows]).to_numpy()
        reasons[f"reason_{k + 1}"] = column
    return reasons


def reason_summary(contrib: pd.DataFrame) -> pd.DataFrame:
    """Across customers: how often each group is a risk-raising factor and its mean added risk."""
    positive = contrib.clip(lower=0)
    return pd.DataFrame({
        "share_of_customers": (contrib > 0.005).mean(),
        "mean_added_risk": positive.mean(),
    }).sort_values("mean_added_risk", ascending=False)
