"""The benchmark's two KPI baselines compute the same numbers, so comparing their speed is honest.

A small generated shop plus hand-written rows for the edge cases of the KPI definitions
(same-day orders, cancelled-only customers, a missing status, offsets that move an order
into the previous UTC month, deliveries without a promise, NPS scores 6/7/8/9, tickets
never resolved or reopened) go through `bench/kpi_sql.py` and `bench/kpi_pandas.py`; every
result must match, and the edge customers must have the hand-computed values.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # bench/ is a folder of scripts, not an installed package
    sys.path.insert(0, str(ROOT))

from bench import kpi_pandas, kpi_sql  # noqa: E402
from bench.common import compare_results  # noqa: E402

EDGE_ROWS = {
    "customers": """
        customer_id,email,created_at
        EDGE-1,edge1@example.com,2024-01-05T10:00:00Z
        EDGE-2,edge2@example.com,2024-01-05T10:00:00Z
        EDGE-3,edge3@example.com,2024-01-05T10:00:00Z
        EDGE-4,edge4@example.com,2024-01-05T10:00:00Z
        EDGE-5,edge5@example.com,2024-01-05T10:00:00Z
        EDGE-6,edge6@example.com,2024-01-05T10:00:00Z
    """,
    # EDGE-1: two orders the same day, the second delivered at 00:30+01:00 = the promised day in UTC
    # EDGE-2 and EDGE-6: only cancelled orders (one in odd case and spacing)
    # EDGE-3: 01:30+02:00 on 1 March is 29 February in UTC; delivered without a promised date
    # EDGE-4: no status (placed, so valid) and a date-only timestamp
    "orders": """
        order_id,customer_id,ordered_at,status,total,promised_delivery_date,delivered_at
        EDGE-O1,EDGE-1,2024-02-10T10:00:00Z,delivered,10.00,2024-02-12,2024-02-12T23:59:00Z
        EDGE-O2,EDGE-1,2024-02-10T18:00:00Z,paid,20.50,2024-02-11,2024-02-12T00:30:00+01:00
        EDGE-O3,EDGE-2,2024-02-11T10:00:00Z,cancelled,99.00,2024-02-13,2024-02-13T10:00:00Z
        EDGE-O4,EDGE-3,2024-03-01T01:30:00+02:00,shipped,5.55,,2024-03-05T10:00:00Z
        EDGE-O5,EDGE-4,2024-02-15,,7.00,2024-02-20,
        EDGE-O6,EDGE-6,2024-02-20T10:00:00Z, Cancelled ,100.00,2024-02-25,2024-02-24T10:00:00Z
    """,
    "returns": """
        return_id,order_id,requested_at
        EDGE-R1,EDGE-O1,2024-02-15T10:00:00Z
    """,
    "survey_responses": """
        response_id,customer_id,survey_type,score,responded_at
        EDGE-S1,EDGE-1,nps,6,2024-02-12T10:00:00Z
        EDGE-S2,EDGE-1,nps,7,2024-02-12T10:00:00Z
        EDGE-S3,EDGE-3,NPS,8,2024-02-13T10:00:00Z
        EDGE-S4,EDGE-4,nps,9,2024-02-14T10:00:00Z
        EDGE-S5,EDGE-4,csat,3,2024-02-14T10:00:00Z
        EDGE-S6,EDGE-1,csat,4,2024-03-01T00:30:00+01:00
    """,
    "reviews": """
        review_id,customer_id,product_id,rating,created_at
        EDGE-V1,EDGE-1,P-1,5,2024-02-01T00:00:00+01:00
        EDGE-V2,EDGE-3,P-1,2,2024-02-02T00:00:00Z
    """,
    # a complaint never resolved, one resolved at first contact, one reopened, one without a
    # first response, and a wismo question
    "support_tickets": """
        ticket_id,customer_id,ticket_type,category,created_at,first_response_at,resolved_at,agent_replies,reopen_count
        EDGE-T1,EDGE-1,complaint,damaged_item,2024-02-12T10:00:00Z,2024-02-12T12:00:00Z,,1,0
        EDGE-T2,EDGE-1,complaint,late_delivery,2024-02-13T10:00:00Z,2024-02-13T11:00:00Z,2024-02-13T15:00:00Z,1,0
        EDGE-T3,EDGE-3,Complaint,wrong_item,2024-02-14T10:00:00Z,2024-02-14T10:30:00Z,2024-02-16T10:00:00Z,2,1
        EDGE-T4,EDGE-3,complaint,other,2024-02-15T10:00:00Z,,2024-02-15T20:00:00Z,1,0
        EDGE-T5,EDGE-2,question,wismo,2024-02-16T10:00:00Z,2024-02-16T10:05:00Z,2024-02-16T10:05:00Z,1,0
    """,
}


def _write_edge_rows(landing: Path) -> None:
    for name, text in EDGE_ROWS.items():
        folder = landing / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "edge-cases.csv").write_text(textwrap.dedent(text).strip() + "\n")


def test_sql_and_pandas_kpis_agree_on_generated_data(tmp_path):
    from pipelines.generate import generate

    landing = tmp_path / "landing"
    generate(landing, customers=300, seed=7)
    _write_edge_rows(landing)

    sql_run = kpi_sql.run(tmp_path / "sql", landing=landing)
    pandas_run = kpi_pandas.run(landing, tmp_path / "pandas")

    assert sql_run["rows"] == pandas_run["rows"]
    assert sql_run["rows"]["customers"] >= 306
    assert sql_run["rows"]["kpi_monthly"] >= 12
    assert compare_results(tmp_path / "sql", tmp_path / "pandas") == []

    # the edge customers, computed by hand
    customers = pd.read_parquet(tmp_path / "sql" / "customers.parquet").set_index("customer_id")
    edge = customers.loc[[f"EDGE-{i}" for i in range(1, 7)]]
    assert edge["orders_count"].tolist() == [2, 0, 1, 1, 0, 0]
    assert edge["lifetime_revenue"].tolist() == [30.5, 0, 5.55, 7.0, 0, 0]
    assert edge["complaints_count"].tolist() == [2, 0, 2, 0, 0, 0]
    assert str(edge.loc["EDGE-3", "first_order_at"]) == "2024-02-29 23:30:00"
    assert edge["last_order_at"].isna().tolist() == [False, True, False, False, True, True]
