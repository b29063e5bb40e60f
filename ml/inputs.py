"""The tables the churn features read: the marts only, never staging or intermediate.

Kept apart from `ml.features` (no NumPy or pandas here) so the Dagster definitions can name
the feature inputs (`pipelines/defs/ml/assets.py`, `FEATURE_INPUTS`) without importing the
feature code.
"""

from __future__ import annotations

#: The order fact: valid orders, totals, deliveries (and the labels' future orders).
ORDERS_TABLE = "marts.fct_orders"
#: The marts the features read besides the orders, by domain. Business rules come with them as
#: columns (`is_complaint`, `is_wismo`, `is_resolved` of tickets, `needs_marketing_consent` and
#: `is_outbound` of messages, the `feedback_type` of survey answers and reviews), defined once
#: in dbt; the features only apply the cut-off to them.
TABLES = {
    "customers": "marts.dim_customers",
    "returns": "marts.fct_returns",
    "messages": "marts.fct_messages",
    "feedback": "marts.fct_feedback",
    "tickets": "marts.fct_support_tickets",
}
#: Every table `build_features` and `build_labels` read: the Dagster assets depend on these.
INPUT_TABLES: tuple[str, ...] = (ORDERS_TABLE, *TABLES.values())
