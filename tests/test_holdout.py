"""Holdout groups: random but stable arms, recorded beside the list and never exported."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import timedelta

import pytest

from pipelines.core.warehouse import scratch
from pipelines.outreach import FORMATS, build_outreach_lists, export
from pipelines.outreach.holdout import bucket, bucket_sql, is_held_out
from pipelines.outreach.playbook import PlaybookError, load_playbook, parse_playbook
from tests.test_outreach import AS_OF, World, make_warehouse, standard_world

PLAYBOOK = """
settings: {{holdout: {holdout}}}
plays:
  - {{name: service_recovery, channel: support_queue, action: call, template: svc,
     rule: "has_unresolved_complaint AND risk_tier IN ('medium', 'high')"}}
  - {{name: winback, channel: email, action: offer, template: winback_offer, rule: "risk_tier = 'high'"}}
  - {{name: sms_winback, channel: sms, action: offer, template: sms_offer, rule: "risk_tier = 'medium'"}}
"""


def many_customers_world(n: int = 120) -> World:
    """`n` high-risk (email) and `n // 3` medium-risk (SMS) customers, plus the standard world."""
    w = standard_world()
    for i in range(n):
        w.customer(f"h{i:04d}", risk="high", clv=float(i), first_name=f"First{i}", last_name=f"Last{i}")
    for i in range(n // 3):
        w.customer(f"m{i:04d}", risk="medium", phone=f"0151 2000 {i:04d}")
    for i in range(6):  # service contacts: complaints of high-risk customers
        w.customer(f"svc{i}", risk="high")
        w.ticket(f"svc{i}", 2, complaint=True)
    return w


def playbook(tmp_path, holdout: float, name: str = "pb") -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(PLAYBOOK.format(holdout=holdout))
    return str(path)


def arms(con, run_id: str) -> dict[tuple[str, str], str]:
    """(play, customer_id) -> 'contacted' or 'holdout' for a run."""
    rows = con.execute(
        """SELECT play, customer_id, 'contacted' FROM exports.outreach_lists WHERE run_id = $r
           UNION ALL SELECT play, customer_id, 'holdout' FROM exports.holdouts WHERE run_id = $r""",
        {"r": run_id},
    ).fetchall()
    return {(p, c): a for p, c, a in rows}


@pytest.fixture
def con(tmp_path):
    c = make_warehouse(tmp_path / "warehouse.duckdb", many_customers_world())
    yield c
    c.close()


# --------------------------------------------------------------------------- assignment


def test_sql_and_python_buckets_agree_and_are_uniform():
    ids = [f"c{i}" for i in range(20_000)]
    with scratch() as c:
        c.execute("CREATE TABLE t AS SELECT unnest($ids) AS customer_id", {"ids": ids})
        expr = bucket_sql("customer_id", "'winback'", "'1'")
        sql = c.execute(f"SELECT customer_id, {expr} FROM t").fetchall()
    assert {cid: b for cid, b in sql} == pytest.approx({cid: bucket(cid, "winback", "1") for cid in ids}, abs=0)
    share = sum(b < 0.1 for _, b in sql) / len(sql)
    # 20,000 draws: the share is 10% +- 0.21 points (1 sd), 4.7 sd allowed
    assert 0.09 <= share <= 0.11
    # a new experiment id draws new arms: about 10% of the first holdout is held out again
    again = sum(is_held_out(cid, "winback", 0.1, "2") for cid in ids if is_held_out(cid, "winback", 0.1, "1"))
    assert 0.05 <= again / (0.1 * len(ids)) <= 0.15


def test_holdout_settings_are_validated_and_per_play():
    pb = parse_playbook(
        "settings: {holdout: 0.2, outcome_windows: [60, 14]}\n"
        "plays:\n"
        "  - {name: a, channel: email, action: x, template: t, rule: is_promoter_90d}\n"
        "  - {name: b, channel: email, action: x, template: t, rule: is_promoter_90d, holdout: 0,\n"
        "     outcome_windows: [7], experiment: 2026-q4}\n"
    )
    assert (pb.play("a").holdout, pb.play("a").outcome_windows, pb.play("a").experiment) == (0.2, (14, 60), "1")
    assert (pb.play("b").holdout, pb.play("b").outcome_windows, pb.play("b").experiment) == (0.0, (7,), "2026-q4")
    shipped = load_playbook()
    assert all(p.holdout == 0.1 and p.outcome_windows == (30, 60, 90) for p in shipped.plays)
    with pytest.raises(PlaybookError) as err:
        parse_playbook(
            "plays:\n  - {name: a, channel: email, action: x, template: t, rule: is_promoter_90d, holdout: 0.9,\n"
            "     outcome_windows: [0, 30], experiment: 'a b'}\n"
        )
    text = str(err.value)
    assert "play 'a' (#1): field 'holdout': expected a share of the list from 0 to 0.5" in text
    assert "play 'a' (#1): field 'outcome_windows': expected a list of distinct whole numbers" in text
    assert "play 'a' (#1): field 'experiment'" in text


def test_holdout_is_drawn_after_suppression_and_recorded_beside_the_list(con, tmp_path):
    summary = build_outreach_lists(con, run_id="r1", playbook_path=playbook(tmp_path, 0.3))
    got = arms(con, "r1")
    suppressed = {c for (c,) in con.execute("SELECT customer_id FROM exports.suppressions WHERE run_id = 'r1'")
                  .fetchall()}
    assert not {c for _, c in got} & suppressed
    for (play, cid), arm in got.items():
        assert arm == ("holdout" if is_held_out(cid, play, 0.3) else "contacted"), (play, cid)
    held = [k for k, a in got.items() if a == "holdout"]
    assert 20 <= len(held) <= 60  # about 30% of ~150
    assert summary.held_out == len(held) and summary.listed == len(got) - len(held)
    assert summary.by_play["winback"]["held_out"] == sum(p == "winback" for p, _ in held)
    experiments = con.execute(
        "SELECT play, holdout_share, outcome_windows, contacted, held_out, template FROM exports.experiments "
        "WHERE run_id = 'r1' ORDER BY play").fetchall()
    counts = {p: (sum(a == "contacted" for (q, _), a in got.items() if q == p),
                  sum(a == "holdout" for (q, _), a in got.items() if q == p)) for p, *_ in experiments}
    assert [(p, s, w, (c, h)) for p, s, w, c, h, _ in experiments] == [
        (p, 0.3, [30, 60, 90], counts[p]) for p in ("service_recovery", "sms_winback", "winback")]
    # ranks of the contacted list are 1..n per play (the held-out customers take no rank)
    ranks = con.execute("SELECT play, list(rank ORDER BY rank) FROM exports.outreach_lists WHERE run_id = 'r1' "
                        "GROUP BY play").fetchall()
    assert all(r == list(range(1, len(r) + 1)) for _, r in ranks)


def test_arms_are_identical_across_reruns_and_backfills(con, tmp_path):
    pb = playbook(tmp_path, 0.25)
    build_outreach_lists(con, run_id="first", playbook_path=pb)
    build_outreach_lists(con, run_id="first", playbook_path=pb)  # rerun of the same run id
    build_outreach_lists(con, run_id="second", playbook_path=pb)  # another run the same day
    # a backfill for three days earlier, from that day's scores (same tiers)
    earlier = AS_OF - timedelta(days=3)
    con.execute("CREATE TABLE ml.churn_scores_history AS SELECT * FROM ml.churn_scores")
    con.execute(f"INSERT INTO ml.churn_scores_history SELECT * REPLACE (DATE '{earlier}' AS as_of_date, "
                "scored_at - INTERVAL 3 DAY AS scored_at) FROM ml.churn_scores")
    build_outreach_lists(con, run_id="backfill", as_of=earlier, playbook_path=pb)
    first, second, backfill = arms(con, "first"), arms(con, "second"), arms(con, "backfill")
    assert first == second
    assert any(a == "holdout" for a in first.values())
    common = first.keys() & backfill.keys()
    assert len(common) >= 100
    assert {k: first[k] for k in common} == {k: backfill[k] for k in common}
    assert con.execute("SELECT count(*) FROM exports.holdouts WHERE run_id = 'first'").fetchone()[0] == sum(
        a == "holdout" for a in first.values())


def test_holdout_zero_lists_exactly_the_customers_left_after_suppression(con, tmp_path):
    build_outreach_lists(con, run_id="off", playbook_path=playbook(tmp_path, 0, "off"))
    build_outreach_lists(con, run_id="on", playbook_path=playbook(tmp_path, 0.3, "on"))
    off = con.execute("SELECT play, customer_id, rank FROM exports.outreach_lists WHERE run_id = 'off' "
                      "ORDER BY ALL").fetchall()
    assert con.execute("SELECT count(*) FROM exports.holdouts WHERE run_id = 'off'").fetchone()[0] == 0
    assert {(p, c) for p, c, _ in off} == set(arms(con, "on"))
    # with no holdout the ranks are those of the whole list, as before holdouts existed
    by_play: dict[str, list[int]] = {}
    for p, _, r in off:
        by_play.setdefault(p, []).append(r)
    assert all(sorted(r) == list(range(1, len(r) + 1)) for r in by_play.values())


def test_no_held_out_customer_in_any_export(con, tmp_path, monkeypatch):
    monkeypatch.setenv("RETAIN_EXPORT_FSYNC", "0")
    build_outreach_lists(con, run_id="r1", playbook_path=playbook(tmp_path, 0.4))
    held = dict(con.execute(
        "SELECT h.customer_id, lower(trim(c.email)) FROM exports.holdouts h "
        "JOIN marts.dim_customers c USING (customer_id) WHERE h.run_id = 'r1'").fetchall())
    plays = {p for (p,) in con.execute("SELECT DISTINCT play FROM exports.holdouts WHERE run_id = 'r1'").fetchall()}
    assert plays == {"service_recovery", "winback", "sms_winback"}  # every play has held-out customers
    contacted = {c for (c,) in con.execute("SELECT customer_id FROM exports.outreach_lists WHERE run_id = 'r1'")
                 .fetchall()}
    forbidden = set(held) | {e for e in held.values() if e} | {
        hashlib.sha256(e.encode()).hexdigest() for e in held.values() if e}
    results = export(con, "all", "all", tmp_path / "out")
    formats_checked, rows_checked = set(), 0
    for r in results:
        if r.skipped:
            continue
        manifest = json.loads((r.path / "manifest.json").read_text())
        assert manifest["holdout_share"] == 0.4
        for path in r.path.rglob("*.csv"):
            text = path.read_bytes().decode("utf-8-sig")
            cells = {cell for row in csv.reader(io.StringIO(text, newline="")) for cell in row}
            assert not cells & forbidden, (path, cells & forbidden)
            rows_checked += text.count("\n") - 1
        formats_checked.add(r.format)
    assert formats_checked == set(FORMATS)
    assert rows_checked >= len(contacted)
