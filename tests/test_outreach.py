"""Outreach lists: playbook validation, eligibility by priority, and every suppression reason.

Each test builds a small real DuckDB warehouse with hand-made rows in the tables the outreach
code reads (`World` below, also used by tests/test_exports.py), so every rule and reason is
pinned down by a customer made for it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path

import duckdb
import pytest

from pipelines.core.contract import source
from pipelines.core.rules import consent_marketing_types, marketing_contact_types, seed_rows
from pipelines.outreach import (
    CANDIDATE_COLUMNS,
    SUPPRESSION_REASONS,
    PlaybookError,
    build_outreach_lists,
    create_candidates_view,
    describe_plays,
    load_playbook,
    mask_email,
    mask_phone,
    normalize_email,
    parse_playbook,
    to_e164,
)
from pipelines.outreach.candidates import empty_candidates_table
from pipelines.outreach.lists import plays_needing_scores
from pipelines.outreach.playbook import DEFAULT_PLAYBOOK, rule_problems

AS_OF = date(2025, 3, 31)
ROOT = Path(__file__).resolve().parent.parent


def at(days_ago: float, hour: int = 12) -> datetime:
    """A timestamp `days_ago` days before AS_OF, at `hour` o'clock."""
    return datetime.combine(AS_OF, time(hour)) - timedelta(days=days_ago)


# --------------------------------------------------------------------------- the test warehouse

DIM_COLUMNS = {
    "customer_id": "VARCHAR", "email": "VARCHAR", "phone": "VARCHAR", "first_name": "VARCHAR",
    "last_name": "VARCHAR", "country": "VARCHAR", "postal_code": "VARCHAR", "email_marketing_consent": "VARCHAR",
    "sms_marketing_consent": "VARCHAR", "is_test_account": "BOOLEAN", "erasure_requested_at": "TIMESTAMP",
    "consent_updated_at": "TIMESTAMP", "first_order_at": "TIMESTAMP", "last_order_at": "TIMESTAMP",
    "orders_count": "BIGINT", "lifetime_revenue": "DECIMAL(18,2)", "lifetime_refunds": "DECIMAL(18,2)",
    "net_revenue": "DECIMAL(18,2)", "avg_order_value": "DOUBLE", "avg_days_between_orders": "DOUBLE",
    "days_since_last_order": "BIGINT", "complaints_count": "BIGINT", "open_tickets_count": "BIGINT",
    "last_nps_score": "BIGINT", "last_csat_score": "BIGINT", "avg_review_rating": "DOUBLE",
    "late_deliveries_count": "BIGINT", "last_message_at": "TIMESTAMP", "is_repeat_customer": "BOOLEAN",
}
ORDER_COLUMNS = {
    "order_id": "VARCHAR", "customer_id": "VARCHAR", "ordered_at": "TIMESTAMP", "status": "VARCHAR",
    "is_valid": "BOOLEAN", "total": "DECIMAL(18,2)", "refund_amount": "DECIMAL(18,2)",
    "customer_order_number": "BIGINT", "is_repeat_order": "BOOLEAN", "days_since_previous_order": "BIGINT",
    "promised_delivery_date": "DATE", "delivered_at": "TIMESTAMP", "is_delivered_on_time": "BOOLEAN",
    "delivery_delay_days": "BIGINT", "has_return": "BOOLEAN",
}
TICKET_EXTRA = {
    "is_complaint": "BOOLEAN", "is_wismo": "BOOLEAN", "is_resolved": "BOOLEAN", "is_open": "BOOLEAN",
    "hours_to_first_response": "DOUBLE", "hours_to_resolution": "DOUBLE", "is_first_contact_resolution": "BOOLEAN",
}
MESSAGE_EXTRA = {"is_outbound": "BOOLEAN", "needs_marketing_consent": "BOOLEAN", "is_marketing_contact": "BOOLEAN"}
FEEDBACK_COLUMNS = {
    "feedback_key": "VARCHAR", "source_id": "VARCHAR", "feedback_type": "VARCHAR", "customer_id": "VARCHAR",
    "order_id": "VARCHAR", "product_id": "VARCHAR", "score": "INTEGER", "nps_band": "VARCHAR", "sentiment": "VARCHAR",
    "submitted_at": "TIMESTAMP", "is_detractor": "BOOLEAN", "is_promoter": "BOOLEAN", "is_dissatisfied": "BOOLEAN",
}


def _band(feedback_type: str, score: int) -> dict:
    """The row of seeds/feedback_bands.csv a score falls in (what the dbt models join)."""
    for row in seed_rows("feedback_bands"):
        if row["feedback_type"] == feedback_type and int(row["score_min"]) <= score <= int(row["score_max"]):
            return row
    raise AssertionError(f"no band for {feedback_type} {score}")
SCORE_COLUMNS = {
    "customer_id": "VARCHAR", "scored_at": "TIMESTAMP", "as_of_date": "DATE", "churn_probability": "DOUBLE",
    "risk_tier": "VARCHAR", "p_alive": "DOUBLE", "expected_purchases_90d": "DOUBLE", "clv_12m": "DOUBLE",
    "reason_1": "VARCHAR", "reason_2": "VARCHAR", "reason_3": "VARCHAR", "model_version": "VARCHAR",
}


def _contract_columns(name: str) -> dict[str, str]:
    return {c.name: c.duckdb_type for c in source(name).columns}


@dataclass
class World:
    """Hand-made rows for every table the outreach lists read; `write(con)` creates the tables."""

    customers: dict[str, dict] = field(default_factory=dict)
    scores: dict[str, dict] = field(default_factory=dict)
    orders: list[dict] = field(default_factory=list)
    tickets: list[dict] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)
    surveys: list[dict] = field(default_factory=list)
    reviews: list[dict] = field(default_factory=list)

    def customer(self, cid: str, risk: str | None = None, clv: float | None = None, prob: float | None = None,
                 reasons: tuple = ("days since last order 120 (typical 45)", "no order in 90 days", None),
                 last_order_days_ago: float | None = None, **fields) -> str:
        """A customer (subscribed to email and SMS, valid German contact data) and, with `risk`, a score.

        The CLV is empty unless given, so only the customers a test gives a CLV compete for the
        top 20% (ties at one default value would all share one rank). With `last_order_days_ago`
        the customer gets an order placed then (delivered 5 days later); a high-risk customer
        gets one 120 days ago by default, inside the win-back window (90 to 365 days).
        """
        row = {
            "customer_id": cid, "email": f"{cid}@example.com", "phone": "0151 1234 5678",
            "first_name": "Anna", "last_name": cid.capitalize(), "country": "DE", "postal_code": "10115",
            "created_at": at(400), "email_marketing_consent": "subscribed", "sms_marketing_consent": "subscribed",
            "is_test_account": False, "erasure_requested_at": None, "updated_at": at(300),
        }
        row.update(fields)
        self.customers[cid] = row
        if last_order_days_ago is None and risk == "high":
            last_order_days_ago = 120
        if last_order_days_ago is not None:
            self.order(cid, last_order_days_ago, max(last_order_days_ago - 5, 0))
        if risk:
            p = prob if prob is not None else {"high": 0.8, "medium": 0.5, "low": 0.1}[risk]
            self.scores[cid] = {
                "customer_id": cid, "scored_at": at(0, 5), "as_of_date": AS_OF, "churn_probability": p,
                "risk_tier": risk, "p_alive": 1 - p, "expected_purchases_90d": 0.3, "clv_12m": clv,
                "reason_1": reasons[0], "reason_2": reasons[1], "reason_3": reasons[2], "model_version": "m1",
            }
        return cid

    def order(self, cid: str, ordered_days_ago: float, delivered_days_ago: float | None = None,
              status: str = "delivered", order_id: str | None = None) -> str:
        oid = order_id or f"o-{cid}-{len(self.orders)}"
        self.orders.append({
            "order_id": oid, "customer_id": cid, "ordered_at": at(ordered_days_ago, 9), "status": status,
            "is_valid": status != "cancelled", "total": 80.0, "refund_amount": 0.0,
            "delivered_at": at(delivered_days_ago, 15) if delivered_days_ago is not None else None,
        })
        return oid

    def ticket(self, cid: str, created_days_ago: float, complaint: bool = False, status: str = "open",
               resolved_days_ago: float | None = None) -> None:
        self.tickets.append({
            "ticket_id": f"t-{len(self.tickets)}", "customer_id": cid,
            "ticket_type": "complaint" if complaint else "question",
            "category": "damaged_item" if complaint else "product_question", "status": status,
            "created_at": at(created_days_ago), "is_complaint": complaint, "is_wismo": False,
            "resolved_at": at(resolved_days_ago) if resolved_days_ago is not None else None,
            # like marts.fct_support_tickets (tested there on real dbt output)
            "is_resolved": resolved_days_ago is not None,
            "is_open": resolved_days_ago is None and status not in ("solved", "closed"),
        })

    def message(self, cid: str, sent_days_ago: float, message_type: str = "promotion", channel: str = "email",
                unsubscribed_days_ago: float | None = None, direction: str = "outbound") -> None:
        self.messages.append({
            "message_id": f"m-{len(self.messages)}", "customer_id": cid, "channel": channel,
            "direction": direction, "message_type": message_type, "sent_at": at(sent_days_ago, 8),
            "unsubscribed_at": at(unsubscribed_days_ago, 20) if unsubscribed_days_ago is not None else None,
            # like marts.fct_messages: the flags of seeds/message_types.csv
            "is_outbound": direction == "outbound",
            "needs_marketing_consent": message_type in consent_marketing_types(),
            "is_marketing_contact": message_type in marketing_contact_types(),
        })

    def survey(self, cid: str, days_ago: float, survey_type: str, score: int) -> None:
        self.surveys.append({
            "response_id": f"s-{len(self.surveys)}", "customer_id": cid, "survey_type": survey_type,
            "score": score, "responded_at": at(days_ago),
        })

    def review(self, cid: str, days_ago: float, order_id: str | None = None) -> None:
        self.reviews.append({
            "review_id": f"r-{len(self.reviews)}", "customer_id": cid, "order_id": order_id,
            "product_id": "p1", "rating": 5, "created_at": at(days_ago),
        })

    # -- writing

    def _dim_rows(self) -> list[dict]:
        rows = []
        for cid, c in self.customers.items():
            mine = [o for o in self.orders if o["customer_id"] == cid and o["is_valid"]]
            erased = c["erasure_requested_at"] is not None
            rows.append({
                "customer_id": cid,
                # like marts.dim_customers: personal data blanked after an erasure request
                "email": None if erased else c["email"], "phone": None if erased else c["phone"],
                "first_name": None if erased else c["first_name"], "last_name": None if erased else c["last_name"],
                "country": c["country"], "postal_code": None if erased else c.get("postal_code"),
                "email_marketing_consent": c["email_marketing_consent"],
                "sms_marketing_consent": c["sms_marketing_consent"],
                "is_test_account": bool(c.get("is_test_account")), "erasure_requested_at": c["erasure_requested_at"],
                "consent_updated_at": c.get("updated_at"),
                "first_order_at": min((o["ordered_at"] for o in mine), default=None),
                "last_order_at": max((o["ordered_at"] for o in mine), default=None),
                "orders_count": len(mine), "lifetime_revenue": 80.0 * len(mine), "is_repeat_customer": len(mine) > 1,
            })
        return rows

    def _feedback_rows(self) -> list[dict]:
        """Survey answers and reviews as marts.fct_feedback has them (bands from the seed)."""
        rows = []
        for kind, items in (("survey", self.surveys), ("review", self.reviews)):
            for r in items:
                ftype = r["survey_type"] if kind == "survey" else "review"
                score = r["score"] if kind == "survey" else r["rating"]
                band = _band(ftype, score)
                rows.append({
                    "feedback_key": f"{kind}:{r.get('response_id') or r.get('review_id')}",
                    "source_id": r.get("response_id") or r.get("review_id"), "feedback_type": ftype,
                    "customer_id": r["customer_id"], "order_id": r.get("order_id"), "product_id": r.get("product_id"),
                    "score": score, "nps_band": band["nps_band"] or None, "sentiment": band["sentiment"],
                    "submitted_at": r.get("responded_at") or r.get("created_at"),
                    "is_detractor": band["nps_band"] == "detractor", "is_promoter": band["nps_band"] == "promoter",
                    "is_dissatisfied": ftype in ("nps", "csat") and band["sentiment"] == "negative",
                })
        return rows

    def write(self, con: duckdb.DuckDBPyConnection) -> None:
        """(Re)create every input table from the rows."""
        tables = {
            "marts.dim_customers": (DIM_COLUMNS, self._dim_rows()),
            "marts.fct_orders": (ORDER_COLUMNS, self.orders),
            "marts.fct_support_tickets": (
                {**_contract_columns("support_tickets"), **TICKET_EXTRA}, self.tickets),
            "marts.fct_messages": ({**_contract_columns("messages"), **MESSAGE_EXTRA}, self.messages),
            "marts.fct_feedback": (FEEDBACK_COLUMNS, self._feedback_rows()),
            "ml.churn_scores": (SCORE_COLUMNS, list(self.scores.values())),
        }
        for schema in ("marts", "ml"):
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for name, (columns, rows) in tables.items():
            con.execute(f"CREATE OR REPLACE TABLE {name} ({', '.join(f'{c} {t}' for c, t in columns.items())})")
            if rows:
                names = list(columns)
                one = "(" + ", ".join("?" for _ in names) + ")"
                # One statement for all rows: executemany runs one statement per row (slow).
                con.execute(
                    f"INSERT INTO {name} VALUES {', '.join(one for _ in rows)}",
                    [r.get(c) for r in rows for c in names],
                )


def standard_world() -> World:
    """One customer per play and one per suppression reason (ids say which)."""
    w = World()
    # Plays, in priority order.
    w.customer("svc", risk="high", email_marketing_consent="unsubscribed")  # service contact: no consent needed
    w.order("svc", 40, 35)
    w.ticket("svc", 3, complaint=True)
    w.customer("svc_detractor", risk="medium")
    w.survey("svc_detractor", 5, "nps", 3)
    w.customer("svc_low", risk="low")  # a complaint but low risk: no service play
    w.ticket("svc_low", 3, complaint=True, status="solved", resolved_days_ago=1)
    w.customer("vip", risk="high", clv=5000.0)
    w.customer("both", risk="high", clv=4500.0)  # matches vip_winback and winback: only the first
    w.customer("win", risk="high", clv=40.0)
    w.customer("nurture", risk="medium", clv=4000.0, last_order_days_ago=200)
    # Outside the win-back window: not lapsed yet (30 days), or gone for more than a year.
    w.customer("win_recent", risk="high", last_order_days_ago=30)
    w.customer("win_gone", risk="high", last_order_days_ago=400)
    w.customer("nurture_gone", risk="medium", last_order_days_ago=400)
    w.customer("onb", risk="low", clv=3000.0)
    w.order("onb", 9, 5)
    w.customer("onb_late", risk="low")
    w.order("onb_late", 20, 15)  # delivered 15 days ago: past onboarding, time for a review request
    w.customer("rev", risk="low")
    w.order("rev", 80, 75)
    w.order("rev", 14, 10)
    w.customer("rev_done", risk="low")
    w.order("rev_done", 80, 75)
    oid = w.order("rev_done", 14, 10)
    w.review("rev_done", 2, order_id=oid)
    w.customer("rev_detractor", risk="low")
    w.order("rev_detractor", 80, 75)
    w.order("rev_detractor", 14, 10)
    w.survey("rev_detractor", 60, "csat", 1)  # a detractor long ago: no review request
    w.customer("adv", risk="low")
    w.survey("adv", 20, "nps", 10)
    w.customer("adv_old", risk="low")
    w.survey("adv_old", 120, "nps", 10)  # promoter too long ago
    w.customer("quiet", risk="low")  # matches nothing
    # Valuable but loyal customers: with them, only vip and both are in the top 20% by CLV.
    w.customer("rich1", risk="low", clv=3500.0)
    w.customer("rich2", risk="low", clv=3200.0)
    w.customer("rich3", risk="low", clv=3100.0)
    # Suppression reasons (all would be in winback otherwise).
    w.customer("s_noconsent", risk="high", email_marketing_consent="never_subscribed")
    w.customer("s_unsub", risk="high", email_marketing_consent="unsubscribed")
    w.customer("s_unsub_msg", risk="high")
    w.message("s_unsub_msg", 30, "newsletter", unsubscribed_days_ago=29)
    w.customer("s_invalid", risk="high", email="not-an-email")
    w.customer("s_freq", risk="high")
    w.message("s_freq", 3, "promotion")
    w.customer("ok_freq_old", risk="high")
    w.message("ok_freq_old", 7, "promotion")  # 7 days ago: the 7-day cap has passed
    w.customer("ok_freq_tx", risk="high")
    w.message("ok_freq_tx", 1, "shipping_update")  # transactional: not marketing
    w.customer("s_ticket", risk="high")
    w.ticket("s_ticket", 2)
    w.customer("s_test", risk="high", is_test_account=True)
    w.customer("s_erased", risk="high", erasure_requested_at=at(10))
    w.customer("s_svc_erased", risk="high", erasure_requested_at=at(10))
    w.ticket("s_svc_erased", 3, complaint=True)
    return w


def make_warehouse(path: Path, world: World | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB file at `path` with `world` (default `standard_world()`) written into it."""
    con = duckdb.connect(str(path))
    (world or standard_world()).write(con)
    return con


@pytest.fixture
def world() -> World:
    return standard_world()


@pytest.fixture
def con(tmp_path, world):
    c = make_warehouse(tmp_path / "warehouse.duckdb", world)
    yield c
    c.close()


def listed(con, run_id: str) -> dict[str, str]:
    """customer_id -> play for a run."""
    return dict(con.execute(
        "SELECT customer_id, play FROM exports.outreach_lists WHERE run_id = ?", [run_id]).fetchall())


def suppressed(con, run_id: str) -> dict[str, set[str]]:
    """customer_id -> reasons for a run."""
    out: dict[str, set[str]] = {}
    for cid, reason in con.execute(
            "SELECT customer_id, reason FROM exports.suppressions WHERE run_id = ?", [run_id]).fetchall():
        out.setdefault(cid, set()).add(reason)
    return out


# --------------------------------------------------------------------------- playbook


def test_default_playbook_has_the_eight_plays_in_priority_order():
    pb = load_playbook(DEFAULT_PLAYBOOK)
    assert pb.names == ["service_recovery", "vip_winback", "winback", "at_risk_nurture", "onboarding",
                        "review_request", "advocate_referral", "cross_sell"]
    assert [p.priority for p in pb.plays] == list(range(1, 9))
    # only the cross-sell play carries the recommended next products
    assert [p.name for p in pb.plays if p.recommend_products] == ["cross_sell"]
    assert pb.play("service_recovery").channel == "support_queue"
    assert not pb.play("service_recovery").is_marketing
    assert all(p.channel == "email" for p in pb.plays[1:])
    assert pb.frequency_cap_days == 7
    listed_plays = describe_plays(DEFAULT_PLAYBOOK)
    assert [p["name"] for p in listed_plays] == pb.names
    assert listed_plays[1]["rule"] == (
        "risk_tier = 'high' AND clv_top_share < 0.2 AND days_since_last_order BETWEEN 90 AND 365")
    assert listed_plays[2]["rule"] == "risk_tier = 'high' AND days_since_last_order BETWEEN 90 AND 365"


def test_playbook_path_from_environment(tmp_path, monkeypatch):
    other = tmp_path / "mine.yaml"
    other.write_text("plays:\n  - {name: only, channel: sms, action: a, template: t, rule: is_scored}\n")
    monkeypatch.setenv("RETAIN_PLAYBOOK", str(other))
    assert load_playbook().names == ["only"]


def _errors(text: str) -> str:
    with pytest.raises(PlaybookError) as exc:
        parse_playbook(text, "team.yaml")
    return str(exc.value)


def test_playbook_errors_name_file_play_field_and_expectation():
    msg = _errors("""
plays:
  - name: winback
    channel: fax
    action: offer
    template: t1
    rule: risk_tier = 'high'
    colour: red
  - name: nurture
    channel: email
    action: tips
    template: t2
    rule: risk_tier = 'medum' AND churn_prob > 0.5
  - name: Bad Name
    channel: email
    action: x
    template: t3
    rule: "true"
  - name: nurture
    channel: email
    action: tips
    template: t2
    rule: is_scored
""")
    assert "team.yaml" in msg
    assert "play 'winback' (#1): field 'channel': expected one of email, sms, support_queue, got 'fax'" in msg
    assert "play 'winback' (#1): unknown key 'colour'" in msg
    assert "play 'nurture' (#2): field 'rule': unknown column 'churn_prob'" in msg
    assert "play 'Bad Name' (#3): field 'name'" in msg
    assert "play 'nurture' (#4): field 'name': duplicate play name 'nurture'" in msg


def test_playbook_structure_errors():
    assert "unknown top-level key 'play'" in _errors("play: []\n")
    assert "field 'plays': expected a non-empty list" in _errors("plays: []\n")
    assert "field 'rule' is required" in _errors("plays:\n  - {name: a, channel: email, action: b, template: c}\n")
    assert "settings: unknown key 'cap'" in _errors(
        "settings: {cap: 3}\nplays:\n  - {name: a, channel: email, action: b, template: c, rule: is_scored}\n")
    assert "unknown message type(s) spam" in _errors(
        "settings: {marketing_message_types: [newsletter, spam]}\n"
        "plays:\n  - {name: a, channel: email, action: b, template: c, rule: is_scored}\n")
    assert "not valid YAML" in _errors("plays: [\n")


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("risk_tier = 'high'; DROP TABLE exports.runs", "';' is not allowed"),
        ("customer_id IN (SELECT customer_id FROM marts.dim_customers)", "may only read outreach_candidates"),
        ("EXISTS (SELECT 1)", "may only read outreach_candidates"),
        ("getenv('HOME') IS NOT NULL", "function getenv() is not allowed"),
        ("read_text('/etc/passwd') IS NOT NULL", "function read_text() is not allowed"),
        ("last_order_at > now() - INTERVAL 30 DAY", "function now() is not allowed in a rule (use as_of_date)"),
        ("last_order_at > current_date - 30", "unknown column 'current_date' (use as_of_date"),
        ("d.customer_id = 'x'", "unknown column 'd.customer_id'"),
        ("true) ORDER BY (1", "expected one boolean expression"),
        ("churn_probability", "expected a boolean expression, got DOUBLE"),
        ("sum(clv_12m) > 100", "DuckDB cannot compile it"),
        ("risk_tier = 'high' AND", "not valid SQL"),
    ],
)
def test_rules_may_only_read_the_candidates_view(rule, expected):
    problems = rule_problems(rule)
    assert any(expected in p for p in problems), problems


def test_every_documented_column_can_be_used_in_a_rule_and_is_in_the_docs():
    docs = (ROOT / "docs" / "outreach-and-exports.md").read_text()
    scratch = duckdb.connect(":memory:")
    empty_candidates_table(scratch)
    for col in CANDIDATE_COLUMNS:
        assert rule_problems(f"{col.name} IS NOT NULL", scratch) == [], col.name
        assert f"`{col.name}`" in docs, f"{col.name} is not documented"


def test_disabled_play_is_skipped_and_priorities_follow_the_enabled_order():
    pb = parse_playbook("""
plays:
  - {name: a, channel: email, action: x, template: t, rule: is_scored, enabled: false}
  - {name: b, channel: sms, action: x, template: t, rule: is_scored}
""")
    assert pb.names == ["b"] and pb.play("b").priority == 1 and pb.disabled == ("a",)


# --------------------------------------------------------------------------- eligibility


def test_each_customer_lands_in_the_first_matching_play(con):
    summary = build_outreach_lists(con, run_id="r1")
    got = listed(con, "r1")
    assert got["svc"] == "service_recovery"
    assert got["svc_detractor"] == "service_recovery"
    assert got["vip"] == "vip_winback"
    assert got["both"] == "vip_winback"
    assert got["win"] == "winback"
    assert got["nurture"] == "at_risk_nurture"
    assert got["onb"] == "onboarding"
    assert got["rev"] == "review_request"
    assert got["onb_late"] == "review_request"
    assert got["adv"] == "advocate_referral"
    assert got["ok_freq_old"] == "winback" and got["ok_freq_tx"] == "winback"
    # not lapsed yet (last order 30 days ago, delivered 25 days ago): the cross-sell play's window
    assert got["win_recent"] == "cross_sell"
    for cid in ("svc_low", "rev_done", "rev_detractor", "adv_old", "quiet", "win_gone", "nurture_gone"):
        assert cid not in got, cid
    # One play per customer per run, and the counts add up.
    n, distinct = con.execute(
        "SELECT count(*), count(DISTINCT customer_id) FROM exports.outreach_lists WHERE run_id = 'r1'").fetchone()
    assert n == distinct == summary.listed
    assert summary.eligible == summary.listed + summary.suppressed
    assert summary.by_play["vip_winback"]["listed"] == 2


def test_cross_sell_rows_carry_the_recommended_products_and_other_plays_none(con):
    con.execute("CREATE TABLE ml.product_recommendations (customer_id VARCHAR, rank INTEGER, product_id VARCHAR, "
                "product_name VARCHAR)")
    con.execute("""INSERT INTO ml.product_recommendations VALUES
        ('win_recent', 2, 'P2', 'Leather Belt'), ('win_recent', 1, 'P1', 'Night Cleanser'),
        ('win_recent', 3, 'P3', 'Portable Charger'), ('win', 1, 'P9', 'Linen Shirt')""")
    pb = load_playbook(DEFAULT_PLAYBOOK)  # no holdout: who is listed must not depend on the arm draw
    build_outreach_lists(con, run_id="r1", playbook=replace(pb, plays=tuple(replace(p, holdout=0.0)
                                                                          for p in pb.plays)))
    rows = {r[0]: r[1:] for r in con.execute(
        "SELECT customer_id, play, next_product_1_id, next_product_1_name, next_product_2_name, "
        "next_product_3_name FROM exports.outreach_lists WHERE run_id = 'r1'").fetchall()}
    assert rows["win_recent"] == ("cross_sell", "P1", "Night Cleanser", "Leather Belt", "Portable Charger")
    # a win-back play does not ask for recommendations: none on its rows even though there are some
    assert rows["win"][0] == "winback" and rows["win"][1:] == (None, None, None, None)


def test_outreach_lists_from_before_the_recommendations_gain_the_columns(tmp_path):
    c = make_warehouse(tmp_path / "old.duckdb")
    c.execute("CREATE SCHEMA exports")
    c.execute("CREATE TABLE exports.outreach_lists (run_id VARCHAR NOT NULL, play VARCHAR NOT NULL, "
              "customer_id VARCHAR NOT NULL, channel VARCHAR NOT NULL, action VARCHAR, template VARCHAR, "
              "priority INTEGER, rank BIGINT, risk_tier VARCHAR, churn_probability DOUBLE, clv_12m DOUBLE, "
              "reasons VARCHAR, as_of_date DATE, created_at TIMESTAMP)")
    build_outreach_lists(c, run_id="r1")  # no ml.product_recommendations: the columns stay empty
    cols = {r[0] for r in c.execute("DESCRIBE exports.outreach_lists").fetchall()}
    assert {"next_product_1_id", "next_product_3_name"} <= cols
    assert c.execute("SELECT count(*) FROM exports.outreach_lists WHERE next_product_1_id IS NOT NULL "
                     "OR play = 'cross_sell' AND run_id <> 'r1'").fetchone()[0] == 0
    c.close()


def test_winback_window_is_last_order_90_to_365_days_ago(tmp_path):
    w = World()
    for days in (89, 90, 365, 366):
        w.customer(f"high_{days}", risk="high", last_order_days_ago=days)
        w.customer(f"medium_{days}", risk="medium", last_order_days_ago=days)
    c = make_warehouse(tmp_path / "w.duckdb", w)
    build_outreach_lists(c, run_id="w")
    assert listed(c, "w") == {
        "high_90": "winback", "high_365": "winback",
        "medium_89": "at_risk_nurture", "medium_90": "at_risk_nurture", "medium_365": "at_risk_nurture",
    }
    c.close()


def test_list_rows_carry_channel_action_priority_reasons_and_scores(con):
    build_outreach_lists(con, run_id="r1")
    row = con.execute("""
        SELECT play, channel, action, template, priority, rank, risk_tier, churn_probability, clv_12m,
               reasons, as_of_date
        FROM exports.outreach_lists WHERE run_id = 'r1' AND customer_id = 'vip'""").fetchone()
    assert row == ("vip_winback", "email", "personal_thank_you_and_exclusive_offer", "vip_winback_thank_you", 2,
                   1, "high", 0.8, 5000.0, "days since last order 120 (typical 45); no order in 90 days", AS_OF)
    svc = con.execute("SELECT channel, priority FROM exports.outreach_lists WHERE customer_id = 'svc'").fetchone()
    assert svc == ("support_queue", 1)


def test_as_of_defaults_to_the_scores_date_and_can_be_overridden(con):
    first = build_outreach_lists(con, run_id="default")
    assert first.as_of_date == AS_OF
    later = build_outreach_lists(con, run_id="later", as_of=AS_OF + timedelta(days=10))
    assert later.as_of_date == AS_OF + timedelta(days=10)
    # Delivered 5 days before AS_OF is 15 days before the later date: no longer onboarding.
    assert listed(con, "default")["onb"] == "onboarding"
    assert listed(con, "later").get("onb") != "onboarding"
    # The frequency cap counts from the run date, not the wall clock: 13 days later it has passed.
    assert "s_freq" in suppressed(con, "default")
    assert listed(con, "later").get("s_freq") == "winback"


def test_scores_for_an_earlier_date_come_from_the_history(con):
    # The history holds every batch: an older one where "win" was medium risk, and the current one.
    con.execute("CREATE TABLE ml.churn_scores_history AS SELECT * FROM ml.churn_scores")
    con.execute(f"""INSERT INTO ml.churn_scores_history
        SELECT * REPLACE (DATE '{AS_OF - timedelta(days=30)}' AS as_of_date, scored_at - INTERVAL 30 DAY
                          AS scored_at, 'medium' AS risk_tier)
        FROM ml.churn_scores WHERE customer_id = 'win'""")

    def tier(as_of):
        create_candidates_view(con, as_of)
        return con.execute("SELECT risk_tier FROM outreach_candidates WHERE customer_id = 'win'").fetchone()[0]

    assert tier(None) == tier(AS_OF) == tier(AS_OF + timedelta(days=5)) == "high"
    assert tier(AS_OF - timedelta(days=10)) == "medium"
    assert tier(AS_OF - timedelta(days=40)) is None
    # A later batch in the history (after re-scoring an older date) wins over the current table.
    con.execute(f"""INSERT INTO ml.churn_scores_history
        SELECT * REPLACE (DATE '{AS_OF + timedelta(days=3)}' AS as_of_date, 'low' AS risk_tier)
        FROM ml.churn_scores WHERE customer_id = 'win'""")
    assert tier(AS_OF + timedelta(days=5)) == "low" and tier(AS_OF) == "high"


def test_as_of_falls_back_to_the_latest_order_without_scores(tmp_path):
    w = World()
    w.customer("a")
    w.order("a", 12, 5)
    c = make_warehouse(tmp_path / "w.duckdb", w)
    assert build_outreach_lists(c, run_id="x").as_of_date == AS_OF - timedelta(days=12)
    c.close()


def test_candidate_view_has_the_documented_columns(con):
    create_candidates_view(con)
    cols = [r[0] for r in con.execute("DESCRIBE outreach_candidates").fetchall()]
    assert cols == [c.name for c in CANDIDATE_COLUMNS]
    row = dict(zip(cols, con.execute("SELECT * FROM outreach_candidates WHERE customer_id = 'rev'").fetchone(),
                   strict=True))
    assert row["last_order_delivered_days_ago"] == 10 and row["has_review_for_last_order"] is False
    assert row["first_order_delivered_days_ago"] == 75 and row["days_since_last_order"] == 14
    svc = con.execute("SELECT has_unresolved_complaint, has_open_ticket FROM outreach_candidates "
                      "WHERE customer_id = 'svc_low'").fetchone()
    assert svc == (False, False)


# --------------------------------------------------------------------------- suppression


def test_every_suppression_reason_is_recorded(con):
    summary = build_outreach_lists(con, run_id="r1")
    sup = suppressed(con, "r1")
    assert "no_consent" in sup["s_noconsent"]
    assert sup["s_unsub"] == {"unsubscribed"}
    assert sup["s_unsub_msg"] == {"unsubscribed"}
    assert sup["s_invalid"] == {"invalid_address"}
    assert sup["s_freq"] == {"frequency_cap"}
    assert sup["s_ticket"] == {"open_ticket"}
    assert sup["s_test"] == {"test_account"}
    # Erasure blanks the email too: every reason that applies is recorded.
    assert sup["s_erased"] == {"erasure_requested", "invalid_address"}
    assert "erasure_requested" in sup["s_svc_erased"]
    assert set(summary.by_reason) == set(SUPPRESSION_REASONS)
    assert all(summary.by_reason[r] >= 1 for r in SUPPRESSION_REASONS)
    play = dict(con.execute("SELECT DISTINCT customer_id, play FROM exports.suppressions WHERE run_id = 'r1'")
                .fetchall())
    assert play["s_ticket"] == "winback" and play["s_svc_erased"] == "service_recovery"


def test_suppression_wins_and_never_moves_a_customer_to_another_play(con):
    build_outreach_lists(con, run_id="r1")
    got, sup = listed(con, "r1"), suppressed(con, "r1")
    assert not set(got) & set(sup)
    for cid in sup:
        assert cid not in got


def test_service_contact_needs_no_marketing_consent_but_marketing_does(con):
    build_outreach_lists(con, run_id="r1")
    # svc is unsubscribed from email marketing and has an open complaint: still a support contact.
    assert listed(con, "r1")["svc"] == "service_recovery"
    assert "svc" not in suppressed(con, "r1")


def test_sms_play_checks_sms_consent_and_phone(tmp_path):
    w = World()
    w.customer("ok", risk="high", phone="+1 (650) 555-1212", country="US")
    w.customer("bad_phone", risk="high", phone="12")
    w.customer("no_phone", risk="high", phone=None)
    w.customer("never", risk="high", sms_marketing_consent="never_subscribed")
    w.customer("unsub", risk="high", sms_marketing_consent="unsubscribed")
    w.customer("unsub_sms_msg", risk="high")
    w.message("unsub_sms_msg", 20, "promotion", channel="sms", unsubscribed_days_ago=20)
    w.customer("email_only_unsub", risk="high", email_marketing_consent="unsubscribed")
    pb_path = tmp_path / "sms.yaml"
    pb_path.write_text("plays:\n  - {name: sms_winback, channel: sms, action: offer, template: sms1, "
                       "rule: \"risk_tier = 'high'\"}\n")
    c = make_warehouse(tmp_path / "w.duckdb", w)
    build_outreach_lists(c, run_id="s", playbook_path=pb_path)
    assert set(listed(c, "s")) == {"ok", "email_only_unsub"}
    sup = suppressed(c, "s")
    assert sup == {
        "bad_phone": {"invalid_address"}, "no_phone": {"invalid_address"}, "never": {"no_consent"},
        "unsub": {"unsubscribed"}, "unsub_sms_msg": {"unsubscribed"},
    }
    c.close()


def test_address_validity_is_the_same_whether_a_rule_reads_it_or_not(con, tmp_path):
    # Without a rule reading them, the addresses are validated for the customers in a play only.
    build_outreach_lists(con, run_id="plain")
    p = tmp_path / "valid.yaml"
    p.write_text("plays:\n  - {name: winback, channel: email, action: x, template: t,\n"
                 "     rule: \"risk_tier = 'high' AND days_since_last_order BETWEEN 90 AND 365 "
                 "AND coalesce(has_valid_email OR has_valid_phone OR true, true)\"}\n")
    build_outreach_lists(con, run_id="reads", playbook_path=p)
    invalid = {
        run: {c for c, r in suppressed(con, run).items() if "invalid_address" in r} for run in ("plain", "reads")
    }
    assert invalid["reads"] == {"s_invalid", "s_erased", "s_svc_erased"}
    assert invalid["plain"] == invalid["reads"]


def test_resubscribing_after_a_message_unsubscribe_counts(tmp_path):
    w = World()
    w.customer("back", risk="high", updated_at=at(5))  # consent record updated after the unsubscribe
    w.message("back", 40, "newsletter", unsubscribed_days_ago=39)
    c = make_warehouse(tmp_path / "w.duckdb", w)
    build_outreach_lists(c, run_id="r")
    assert listed(c, "r") == {"back": "winback"}
    c.close()


def test_frequency_cap_is_configurable(tmp_path):
    w = World()
    w.customer("a", risk="high")
    w.message("a", 3, "newsletter")
    w.customer("b", risk="high")
    w.message("b", 10, "loyalty")
    c = make_warehouse(tmp_path / "w.duckdb", w)
    rule = "rule: \"risk_tier = 'high'\""
    for cap, expect in ((0, {"a", "b"}), (7, {"b"}), (14, set())):
        p = tmp_path / f"cap{cap}.yaml"
        p.write_text(f"settings: {{frequency_cap_days: {cap}, holdout: 0}}\n"
                     f"plays:\n  - {{name: w, channel: email, action: x, template: t, {rule}}}\n")
        build_outreach_lists(c, run_id=f"cap{cap}", playbook_path=p)
        assert set(listed(c, f"cap{cap}")) == expect, cap
    # A play can override the playbook's cap.
    p = tmp_path / "override.yaml"
    p.write_text("settings: {frequency_cap_days: 14, holdout: 0}\n"
                 f"plays:\n  - {{name: w, channel: email, action: x, template: t, frequency_cap_days: 2, {rule}}}\n")
    build_outreach_lists(c, run_id="override", playbook_path=p)
    assert set(listed(c, "override")) == {"a", "b"}
    c.close()


# --------------------------------------------------------------------------- history and safety


def test_runs_keep_history_and_rerunning_a_run_id_replaces_it(con):
    build_outreach_lists(con, run_id="r1")
    build_outreach_lists(con, run_id="r2")
    build_outreach_lists(con, run_id="r2")
    runs = con.execute(
        "SELECT run_id, as_of_date, listed, playbook_sha256 FROM exports.runs ORDER BY run_id").fetchall()
    assert [r[0] for r in runs] == ["r1", "r2"]
    assert runs[0][1] == AS_OF and runs[0][2] == runs[1][2] > 0 and len(runs[0][3]) == 64
    per_run = dict(con.execute("SELECT run_id, count(*) FROM exports.outreach_lists GROUP BY 1").fetchall())
    assert per_run["r1"] == per_run["r2"] == runs[0][2]
    assert con.execute("SELECT count(*) FROM exports.suppressions WHERE run_id = 'r2'").fetchone()[0] == \
        con.execute("SELECT count(*) FROM exports.suppressions WHERE run_id = 'r1'").fetchone()[0]


def test_older_runs_lists_are_thinned_but_the_run_log_is_kept(con):
    from datetime import timedelta

    from pipelines.core.history import HistoryPolicy

    build_outreach_lists(con, run_id="old")
    # the same run as if it had been made 400 days ago
    con.execute("UPDATE exports.runs SET as_of_date = as_of_date - INTERVAL 400 DAY WHERE run_id = 'old'")
    assert con.execute("SELECT count(*) FROM exports.suppressions WHERE run_id = 'old'").fetchone()[0] > 0
    build_outreach_lists(con, run_id="today", history=HistoryPolicy(daily_days=35, keep_days=365))
    counts = dict(con.execute("SELECT run_id, count(*) FROM exports.outreach_lists GROUP BY 1").fetchall())
    assert counts.get("old") is None and counts["today"] > 0
    assert con.execute("SELECT count(*) FROM exports.suppressions WHERE run_id = 'old'").fetchone()[0] == 0
    runs = dict(con.execute("SELECT run_id, as_of_date FROM exports.runs").fetchall())
    assert runs == {"old": AS_OF - timedelta(days=400), "today": AS_OF}


def test_a_bad_history_setting_fails_before_any_list_is_written(con, monkeypatch):
    monkeypatch.setenv("RETAIN_HISTORY_DAYS", "a year")
    with pytest.raises(ValueError, match="RETAIN_HISTORY_DAYS"):
        build_outreach_lists(con, run_id="r1")
    written = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'exports'"
    ).fetchone()[0]
    assert written == 0, "no exports table is created, let alone a run"


def test_a_rule_that_fails_on_the_data_names_its_play(con, tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("plays:\n  - {name: good, channel: email, action: x, template: t, rule: is_test_account}\n"
                 "  - {name: typed, channel: email, action: x, template: t,\n"
                 "     rule: \"CAST(risk_tier AS INTEGER) > 0\"}\n")
    with pytest.raises(PlaybookError, match="play 'typed' \\(#2\\): field 'rule': fails on the data"):
        build_outreach_lists(con, run_id="bad", playbook_path=p)
    assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'exports'"
                       ).fetchone()[0] in (0, 3)


def test_missing_input_tables_are_named(tmp_path):
    c = duckdb.connect(str(tmp_path / "empty.duckdb"))
    with pytest.raises(Exception, match="marts.dim_customers"):
        build_outreach_lists(c)
    c.close()


def test_logs_never_show_a_raw_address(con, caplog):
    caplog.set_level(logging.DEBUG, logger="retain.outreach")
    build_outreach_lists(con, run_id="r1")
    text = caplog.text
    assert "invalid email address for customer s_invalid" in text
    for cid in ("s_invalid", "vip", "win"):
        assert f"{cid}@example.com" not in text
    assert "not-an-email" not in text


# --------------------------------------------------------------------------- normalisers


@pytest.mark.parametrize(
    ("number", "country", "expected"),
    [
        ("+49 (0)151 1234 5678", "DE", "+4915112345678"),
        ("0151 12345678", "DE", "+4915112345678"),
        ("0151/1234-5678", "de", "+4915112345678"),
        ("4915112345678", "DE", "+4915112345678"),
        ("0049 151 12345678", "FR", "+4915112345678"),
        ("(650) 555-1212", "US", "+16505551212"),
        ("1-650-555-1212", "US", "+16505551212"),
        ("+1 650 555 1212", None, "+16505551212"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("020 7946 0958", "UK", "+442079460958"),
        ("06 12 34 56 78", "FR", "+33612345678"),
        ("333 123 4567", "IT", "+393331234567"),
        ("06 30 123 4567", "HU", "+36301234567"),
        ("555-1212", "US", None),
        ("+1 150 555 1212", None, None),
        ("0151 1234 5678", None, None),
        ("0151 1234 5678", "XX", None),
        ("12", "DE", None),
        ("call me", "DE", None),
        ("+0123456789", None, None),
        ("", "DE", None),
        (None, "DE", None),
    ],
)
def test_e164(number, country, expected):
    assert to_e164(number, country) == expected


def test_email_validation_and_masking():
    assert normalize_email("  Jane.Doe@Example.COM ") == "jane.doe@example.com"
    for bad in ("a@b", "=HYPERLINK(1)@x.com", "-x@y.com", "+x@y.com", "a..b@x.com", "a@x.com.", "a b@x.com", ""):
        assert normalize_email(bad) is None, bad
    assert mask_email("jane.doe@example.com") == "j***@e***.com"
    assert "jane" not in mask_email("jane.doe@example.com")
    assert mask_phone("+4915112345678") == "+49********678"


def test_candidates_carry_the_action_tiers_dbt_built_for_the_scores_batch(tmp_path):
    """The tier rule lives in the dbt model alone: build it on the world's scores, read it in a rule."""
    from tests.dbt_fixture import run_dbt

    w = World()
    # an active base of 20 (1 high at 5%, 3 more medium up to 20%) and one gone for 400 days
    for i in range(20):
        w.customer(f"c{i:02d}", risk="high", clv=100.0 + 10 * i, prob=0.7, last_order_days_ago=100)
    w.customer("gone", risk="high", clv=9999.0, prob=0.99, last_order_days_ago=400)
    path = tmp_path / "w.duckdb"
    make_warehouse(path, w).close()
    result = run_dbt(["run", "--select", "stg_ml__churn_scores", "customer_action_tiers"], path, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    pb_path = tmp_path / "tiers.yaml"
    pb_path.write_text("plays:\n  - {name: top_value_at_risk, channel: email, action: call, template: t1, "
                       "rule: \"action_tier = 'high'\", holdout: 0}\n")
    with duckdb.connect(str(path)) as c:
        create_candidates_view(c)
        rows = dict(c.execute("SELECT customer_id, action_tier FROM outreach_candidates").fetchall())
        assert rows["c19"] == "high" and rows["gone"] == "dormant"
        assert sorted(k for k, v in rows.items() if v == "medium") == ["c16", "c17", "c18"]
        assert c.execute("SELECT value_at_risk, action_rank FROM outreach_candidates WHERE customer_id = 'c19'"
                         ).fetchone() == (pytest.approx(0.7 * 290.0), 1)
        assert plays_needing_scores(parse_playbook(pb_path.read_text())) == ["top_value_at_risk"]
        build_outreach_lists(c, run_id="t", playbook_path=pb_path)
        assert set(listed(c, "t")) == {"c19"}
        # a score from another batch than the tiers' (a backfill reading the history) has no tier
        c.execute("UPDATE marts.customer_action_tiers SET scores_as_of_date = scores_as_of_date - 1")
        create_candidates_view(c)
        assert c.execute("SELECT count(action_tier) FROM outreach_candidates").fetchone()[0] == 0
