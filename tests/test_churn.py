"""Churn: labels, point-in-time features, training with baselines and the promotion gate, reasons,
scoring, drift and the model card, on small real DuckDB warehouses built from the synthetic shop
generator's files (and from the real CDNOW log for the orders-only case)."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from churn_warehouse import create_mart_views, create_tables, generated_warehouse, insert

from ml.card import model_card
from ml.drift import drift_from_warehouse, drift_report, psi
from ml.features import FEATURE_NAMES, build_features, build_labels, latest_order_date
from ml.reasons import _reasons, plain_contributions, risk_and_explain
from ml.registry import current_run_id, load_artifact, model_runs
from ml.score import SCORE_COLUMNS, RiskThresholds, score
from ml.train import promotion_decision, train
from ml.whatif import WhatIf

CUSTOMERS = 4000
CDNOW_SAMPLE = Path(__file__).parent / "fixtures" / "cdnow" / "CDNOW_sample.txt"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """A generated shop with every source table, in a DuckDB file."""
    folder = tmp_path_factory.mktemp("churn")
    con = duckdb.connect(str(folder / "warehouse.duckdb"))
    generated_warehouse(con, folder / "landing", customers=CUSTOMERS, seed=5)
    yield con
    con.close()


@pytest.fixture(scope="module")
def trained(warehouse, tmp_path_factory):
    """One training run and one scoring run on the shared warehouse."""
    models = tmp_path_factory.mktemp("models")
    result = train(warehouse, models_dir=models)
    summary = score(warehouse, models_dir=models)
    return result, summary, models


def _orders(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["order_id", "customer_id", "ordered_at", "is_valid", "total"]).assign(
        ordered_at=lambda d: pd.to_datetime(d["ordered_at"]), status="delivered"
    )


def test_label_window_is_after_cutoff_and_inclusive_of_its_last_day():
    con = duckdb.connect()
    create_tables(con, extras=False)
    insert(con, "marts.fct_orders", _orders([
        ("1", "back", "2024-01-05 10:00", True, 10.0), ("2", "back", "2024-04-01 10:00", True, 10.0),
        ("3", "late", "2024-01-05 10:00", True, 10.0), ("4", "late", "2024-07-12 00:00", True, 10.0),
        ("5", "edge", "2024-01-31 23:59", True, 10.0), ("6", "edge", "2024-07-29 23:00", True, 10.0),
        ("7", "cancel", "2024-01-10 10:00", True, 10.0), ("8", "cancel", "2024-02-10 10:00", False, 10.0),
        ("9", "late_starter", "2024-02-01 00:00", True, 10.0),
        ("10", "only_cancelled", "2024-01-02 10:00", False, 10.0),
    ]))
    labels = build_labels(con, date(2024, 1, 31), horizon_days=180).set_index("customer_id")["churned"]
    # outcome window (2024-01-31, 2024-07-29]: 'late' returns on day 163, 'edge' on the window's last day
    assert labels.to_dict() == {"back": 0, "cancel": 1, "edge": 0, "late": 0}
    short = build_labels(con, date(2024, 1, 31), horizon_days=150).set_index("customer_id")["churned"]
    assert short.to_dict() == {"back": 0, "cancel": 1, "edge": 1, "late": 1}
    feats = build_features(con, date(2024, 1, 31)).set_index("customer_id")
    assert sorted(feats.index) == ["back", "cancel", "edge", "late"]  # valid order on or before the cut-off
    assert feats.loc["edge", "days_since_last_order"] == 0
    assert feats.loc["cancel", "order_count"] == 1


def test_features_ignore_every_event_after_the_cutoff(warehouse, tmp_path):
    cutoff = date(2025, 6, 30)
    path = tmp_path / "copy.duckdb"
    con = duckdb.connect(str(path))
    for table in ("marts.fct_orders", "staging.stg_shop__customers", "staging.stg_shop__returns",
                  "staging.stg_messaging__messages", "staging.stg_surveys__survey_responses",
                  "staging.stg_reviews__reviews", "staging.stg_helpdesk__support_tickets"):
        schema = table.split(".")[0]
        con.execute(f"create schema if not exists {schema}")
        con.register("src", warehouse.sql(f"select * from {table}").to_arrow_table())
        con.execute(f"create table {table} as select * from src")
        con.unregister("src")
    create_mart_views(con)  # the marts the features read, over these tables
    # cut every table back to what was known at the cut-off end; then replay the later history
    end = f"timestamp '{cutoff + timedelta(days=1)}'"
    con.execute(f"create table later_orders as select * from marts.fct_orders where ordered_at >= {end}")
    con.execute(f"delete from marts.fct_orders where ordered_at >= {end}")
    for table, col in [("stg_shop__returns", "requested_at"), ("stg_messaging__messages", "sent_at"),
                       ("stg_surveys__survey_responses", "responded_at"), ("stg_reviews__reviews", "created_at"),
                       ("stg_helpdesk__support_tickets", "created_at")]:
        con.execute(f"create table later_{table} as select * from staging.{table} where {col} >= {end}")
        con.execute(f"delete from staging.{table} where {col} >= {end}")
    # what was not yet known at the cut-off: undelivered orders, unresolved tickets, unopened mails
    con.execute("create table full_orders as select * from marts.fct_orders")
    con.execute(f"update marts.fct_orders set delivered_at = null where delivered_at >= {end}")
    con.execute("create table full_tickets as select * from staging.stg_helpdesk__support_tickets")
    con.execute(f"update staging.stg_helpdesk__support_tickets set resolved_at = null where resolved_at >= {end}")
    con.execute("create table full_messages as select * from staging.stg_messaging__messages")
    for col in ("opened_at", "clicked_at", "unsubscribed_at"):
        con.execute(f"update staging.stg_messaging__messages set {col} = null where {col} >= {end}")
    before = build_features(con, cutoff)
    assert len(before) > 1000 and before["unresolved_complaints"].sum() > 0
    assert before["last_order_complaint_open"].sum() > 0 and before["opens_90d"].sum() > 0

    # now the full history arrives: later orders, deliveries, resolutions, opens, returns, surveys...
    con.execute("delete from marts.fct_orders")
    con.execute("insert into marts.fct_orders select * from full_orders union all select * from later_orders")
    con.execute("delete from staging.stg_helpdesk__support_tickets")
    con.execute("insert into staging.stg_helpdesk__support_tickets select * from full_tickets "
                "union all select * from later_stg_helpdesk__support_tickets")
    con.execute("delete from staging.stg_messaging__messages")
    con.execute("insert into staging.stg_messaging__messages select * from full_messages "
                "union all select * from later_stg_messaging__messages")
    for table in ("stg_shop__returns", "stg_surveys__survey_responses", "stg_reviews__reviews"):
        con.execute(f"insert into staging.{table} select * from later_{table}")
    # a consent change recorded after the cut-off must not show either
    con.execute(f"update staging.stg_shop__customers set email_marketing_consent = 'unsubscribed', "
                f"updated_at = {end} + interval 3 day")
    # and an order placed one second after the cut-off day by a brand-new customer
    con.execute(f"insert into marts.fct_orders (order_id, customer_id, ordered_at, is_valid, total) "
                f"values ('new', 'NEWCUST', {end}, true, 10)")
    after = build_features(con, cutoff)
    assert con.execute(f"select count(*) from marts.fct_orders where ordered_at >= {end}").fetchone()[0] > 500
    pd.testing.assert_frame_equal(before, after)
    # ... while the same additions do move the features at a later cut-off
    later = build_features(con, cutoff + timedelta(days=120))
    assert len(later) > len(before)


def _reference_features(con, cutoff: date) -> pd.DataFrame:
    """A plain pandas computation of the order, spend, gap, BG/NBD, message, post-purchase and
    resolution-time features, row by row from the tables: what `build_features` must equal."""
    from ml import clv
    from ml.features import BG_NBD_SAMPLE
    from pipelines.core.rules import consent_marketing_types

    day = pd.Timestamp(cutoff)
    end = day + pd.Timedelta(days=1)
    orders = con.execute("select * from marts.fct_orders").df()
    orders = orders[orders["is_valid"].fillna(True).astype(bool) & (orders["ordered_at"] < end)].copy()
    orders["date"] = orders["ordered_at"].dt.normalize()
    orders["total"] = orders["total"].astype(float)
    ref = {}
    for cid, o in orders.groupby("customer_id"):
        days = np.sort(o["date"].unique())
        gaps = np.diff(days).astype("timedelta64[D]").astype(float)
        disc = o["discount"].dropna().astype(float)
        last = o.loc[o["ordered_at"].idxmax()]
        row = {
            "order_count": len(o), "order_days": len(days),
            "days_since_last_order": (day - o["date"].max()).days, "tenure_days": (day - o["date"].min()).days,
            "gap_mean_days": gaps.mean() if len(gaps) else np.nan,
            "gap_std_days": gaps.std(ddof=1) if len(gaps) > 1 else np.nan,
            "orders_last_90d": int((o["date"] > day - pd.Timedelta(days=90)).sum()),
            "total_spend": o["total"].sum(), "avg_order_value": o["total"].mean(),
            "spend_last_365d": o.loc[o["date"] > day - pd.Timedelta(days=365), "total"].sum(),
            "discounted_order_share": (disc > 0).mean() if len(disc) else np.nan,
            "last_sales_channel": last["sales_channel"], "last_order_id": last["order_id"],
        }
        row["overdue_ratio"] = row["days_since_last_order"] / row["gap_mean_days"] if len(gaps) and \
            row["gap_mean_days"] > 0 else np.nan
        ref[cid] = row
    ref = pd.DataFrame.from_dict(ref, orient="index")

    rfm = clv.rfm_summary(orders, "customer_id", "ordered_at", None, cutoff, "D").set_index("customer_id")
    rfm = rfm.loc[ref.index]
    f, r, t = (rfm[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    params = clv.fit_bg_nbd(f, r, t, time_unit="D", sample_size=BG_NBD_SAMPLE)
    ref["bgnbd_p_alive"] = clv.p_alive(params, f, r, t)
    ref["bgnbd_p_no_purchase_180d"] = clv.p_no_purchase(params, 180, f, r, t)

    msgs = con.execute("select * from staging.stg_messaging__messages").df()
    msgs = msgs[msgs["sent_at"] < end]
    out = msgs[msgs["direction"].fillna("outbound") == "outbound"]
    since = end - pd.Timedelta(days=90)
    opened, clicked = out["opened_at"], out["clicked_at"]
    marketing = set(consent_marketing_types())  # seeds/message_types.csv, needs_marketing_consent
    per = pd.DataFrame({
        "customer_id": out["customer_id"],
        "email": out["sent_at"] >= since,
        "open": (opened >= since) & (opened < end),
        "click": (clicked >= since) & (clicked < end),
        "opened_day": opened.where(opened < end).dt.normalize(),
        "unsub": out["unsubscribed_at"] < end,
        "marketing": (out["sent_at"] >= since) & out["message_type"].isin(marketing),
    }).groupby("customer_id").agg(emails_90d=("email", "sum"), opens_90d=("open", "sum"), clicks_90d=("click", "sum"),
                                  last_open=("opened_day", "max"), has_unsubscribed=("unsub", "max"),
                                  marketing_90d=("marketing", "sum")).reindex(ref.index)
    for c in ("emails_90d", "opens_90d", "clicks_90d", "has_unsubscribed", "marketing_90d"):
        ref[c] = per[c].fillna(0).astype(float)
    ref["open_rate_90d"] = np.where(ref["emails_90d"] > 0, ref["opens_90d"] / ref["emails_90d"].where(
        ref["emails_90d"] > 0), np.nan)
    ref["days_since_last_open"] = (day - per["last_open"]).dt.days
    ref["email_consent"] = np.where(ref["has_unsubscribed"] > 0, "unsubscribed",
                                    np.where(ref["marketing_90d"] > 0, "receives_marketing", "no_marketing"))
    for kind, col in (("how_to_guide", "last_order_how_to"), ("thank_you", "last_order_thank_you")):
        sent = msgs[msgs["message_type"] == kind][["customer_id", "order_id"]].drop_duplicates()
        hit = pd.MultiIndex.from_frame(sent).isin(list(zip(ref.index, ref["last_order_id"], strict=True)))
        ref[col] = ref.index.isin(sent[hit]["customer_id"]).astype(float)

    tickets = con.execute("select * from staging.stg_helpdesk__support_tickets").df()
    tickets = tickets[(tickets["created_at"] < end) & (tickets["resolved_at"] < end)]
    hours = (tickets["resolved_at"] - tickets["created_at"]).dt.total_seconds() / 3600
    ref["avg_hours_to_resolution"] = hours.groupby(tickets["customer_id"]).mean().reindex(ref.index)
    return ref.drop(columns=["last_order_id", "marketing_90d"]).rename_axis("customer_id")


@pytest.mark.parametrize("days_back", [0, 200])
def test_features_equal_a_plain_reference_computation(warehouse, days_back):
    cutoff = latest_order_date(warehouse) - timedelta(days=days_back)
    feats = build_features(warehouse, cutoff)
    ref = _reference_features(warehouse, cutoff)
    assert list(feats.columns) == ["customer_id", "as_of_date", *FEATURE_NAMES]
    assert feats["customer_id"].tolist() == sorted(ref.index)  # one row per customer, in customer_id order
    assert (feats[FEATURE_NAMES[:-3]].dtypes == "float64").all()
    got = feats.set_index("customer_id").loc[ref.index]
    for col in ref.columns:
        if col in ("last_sales_channel", "email_consent"):
            assert got[col].astype(object).tolist() == ref[col].astype(object).tolist(), col
        else:
            np.testing.assert_allclose(got[col].to_numpy(float), ref[col].to_numpy(float), rtol=1e-12, err_msg=col)
    # spend is the exact decimal sum, rounded once: no last bit that moves from run to run
    exact = warehouse.execute(
        "select customer_id, list(total) from marts.fct_orders where coalesce(is_valid, true) and ordered_at < ? "
        "group by customer_id order by customer_id", [pd.Timestamp(cutoff) + pd.Timedelta(days=1)]
    ).fetchall()
    assert feats["total_spend"].tolist() == [float(sum(totals)) for _, totals in exact]
    assert got["last_order_how_to"].sum() > 0 and got["last_order_thank_you"].sum() > 0
    assert got["email_consent"].nunique() == 3 and got["gap_std_days"].notna().sum() > 100


def test_training_beats_baselines_logs_the_run_and_promotes(trained, warehouse):
    result, _, models = trained
    m = result.metrics
    assert result.promoted and current_run_id(models) == result.run_id
    assert m["model"]["roc_auc"] > m["recency_rule"]["roc_auc"]
    assert m["model"]["roc_auc"] > 0.72
    assert m["model"]["ece"] < 0.06
    for name in ("recency_rule", "logistic_regression", "bgnbd_p_no_purchase"):
        assert 0.6 <= m[name]["roc_auc"] <= 1.0
    assert 0 <= m["bgnbd_1_minus_p_alive"]["roc_auc"] <= 1.0  # single buyers all get P(alive) = 1
    assert len(m["model"]["calibration"]) == 10
    # the backtest never trains on an outcome window that reaches into the evaluation one
    plan = result.plan
    assert plan.calibration_cutoff + timedelta(days=plan.horizon_days) <= plan.eval_cutoff
    assert all(c < plan.calibration_cutoff for c in plan.fit_cutoffs)
    runs = model_runs(warehouse)
    row = runs[runs["run_id"] == result.run_id].iloc[0]
    assert bool(row["promoted"]) and json.loads(row["metrics"])["model"]["roc_auc"] == m["model"]["roc_auc"]
    assert set(json.loads(row["library_versions"])) >= {"scikit-learn", "numpy", "duckdb"}
    assert len(row["data_fingerprint"]) == 16
    meta = json.loads((result.model_dir / "metadata.json").read_text())
    assert meta["eval_cutoff"] == str(plan.eval_cutoff) and meta["features"]["numeric"]
    top = list(m["driver_importance"])[:3]
    assert "recency" in top


def test_promotion_gate():
    assert promotion_decision(0.80, 0.82, 0.75)[0] is False  # below the recency rule
    first = promotion_decision(0.80, 0.82, None)  # nothing to replace: promoted, flagged
    assert first[0] is True and "does NOT beat" in first[1]
    assert promotion_decision(0.85, 0.80, None) == (True, "first model; ROC AUC 0.850 beats the recency rule's 0.800")
    assert promotion_decision(0.85, 0.80, 0.86)[0] is True  # within tolerance
    ok, reason = promotion_decision(0.83, 0.80, 0.86, tolerance=0.02, current_id="r1")
    assert ok is False and "current model r1" in reason and "0.860" in reason


def test_a_worse_model_is_recorded_but_not_promoted(trained, warehouse, tmp_path):
    result, _, models = trained
    # a very strict tolerance (the new model must beat the current one by 0.5 AUC) forces a rejection
    second = train(warehouse, models_dir=models, tolerance=-0.5)
    assert not second.promoted and "below the current model" in second.reason
    assert current_run_id(models) == result.run_id
    runs = model_runs(warehouse).set_index("run_id")
    assert not bool(runs.loc[second.run_id, "promoted"]) and second.reason == runs.loc[second.run_id, "reason"]
    assert (models / second.run_id / "model.joblib").exists()


def test_scores_table_columns_tiers_and_history(trained, warehouse):
    result, summary, models = trained
    table = warehouse.execute("select * from ml.churn_scores").df()
    assert summary.rows == len(table) and summary.model_version == result.run_id
    assert summary.risk_tiers == table["risk_tier"].value_counts().to_dict()
    assert list(table.columns) == list(SCORE_COLUMNS)
    assert len(table) == len(build_features(warehouse, latest_order_date(warehouse)))
    assert table["as_of_date"].astype(str).unique().tolist() == [str(latest_order_date(warehouse))]
    assert table["churn_probability"].between(0, 1).all() and table["p_alive"].between(0, 1).all()
    assert (table["expected_purchases_90d"] >= 0).all() and (table["clv_12m"] >= 0).all()
    p, tier = table["churn_probability"], table["risk_tier"]
    assert set(tier) == {"high", "medium", "low"}
    assert (tier[p >= 0.6] == "high").all() and (tier[(p >= 0.3) & (p < 0.6)] == "medium").all()
    assert (tier[p < 0.3] == "low").all()
    assert (table["model_version"] == result.run_id).all()
    # rescoring the same day with the same model replaces the batch in the history
    score(warehouse, models_dir=models, thresholds=RiskThresholds(high=0.8, medium=0.5))
    history = warehouse.execute("select count(*), count(distinct as_of_date) from ml.churn_scores_history").fetchone()
    assert history == (len(table), 1)
    score(warehouse, as_of=date(2025, 6, 30), models_dir=models)
    assert warehouse.execute("select count(distinct as_of_date) from ml.churn_scores_history").fetchone()[0] == 2
    assert str(warehouse.execute("select max(as_of_date) from ml.churn_scores").fetchone()[0]) == "2025-06-30"
    score(warehouse, models_dir=models)  # back to today's list for the other tests


def test_scores_and_drift_do_not_depend_on_the_batch_size(trained, warehouse):
    """A large shop is scored a batch of customers at a time (`RETAIN_ML_BATCH_ROWS`); its scores, reasons,
    CLV and drift are those of scoring everyone at once."""
    _, _, models = trained
    columns = "* exclude (scored_at)"
    n = warehouse.execute("select count(*) from ml.churn_scores").fetchone()[0]
    size = n // 3 - 7  # four batches, the last one short
    assert score(warehouse, models_dir=models, batch_size=n).rows == n
    whole = warehouse.execute(f"select {columns} from ml.churn_scores").df()
    drift = warehouse.execute("select * from ml.churn_score_drift order by rank").df()
    batched = score(warehouse, models_dir=models, batch_size=size)
    assert batched.rows == n
    pd.testing.assert_frame_equal(warehouse.execute(f"select {columns} from ml.churn_scores").df(), whole,
                                  check_exact=True)
    pd.testing.assert_frame_equal(
        warehouse.execute("select * from ml.churn_score_drift order by rank").df(), drift,
        check_exact=True)
    assert whole["customer_id"].is_monotonic_increasing and whole["reason_1"].notna().any()


def test_evaluation_in_batches_is_the_whole_frames_evaluation(trained, warehouse, monkeypatch):
    """The evaluation cut-off is read a batch of customers at a time: its labels, every
    model's predictions and its two samples are those of the whole `labelled_features` frame."""
    import ml.train as training
    from ml.features import labelled_features
    from ml.registry import model_input

    result, _, models = trained
    monkeypatch.setattr(training, "IMPORTANCE_SAMPLE", 900)
    monkeypatch.setattr(training, "REFERENCE_SAMPLE", 5_000)  # more than the rows: the frame itself
    plan, artifact = result.plan, load_artifact(models)
    ev = labelled_features(warehouse, plan.eval_cutoff, 180)
    rfm = training.order_summary(warehouse, plan.eval_cutoff)
    bg = training.fit_bg_nbd_days(*(rfm[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T")))
    run = training.EvaluationPass.run(
        warehouse, plan.eval_cutoff, 180, len(ev), features=(artifact.numeric, artifact.categorical),
        models={"model": artifact.model}, models_dir=models, seed=0, bg_nbd=bg, batch_size=len(ev) // 4 - 3,
    )
    np.testing.assert_array_equal(run.y, ev["churned"].to_numpy())
    np.testing.assert_array_equal(run.days_since_last_order, ev["days_since_last_order"].to_numpy())
    whole = artifact.model.predict_proba(model_input(ev, artifact.numeric, artifact.categorical))[:, 1]
    np.testing.assert_array_equal(run.predictions["model"], whole)
    assert run.current == result.run_id and run.current_error is None
    np.testing.assert_array_equal(run.predictions["current"], artifact.predict_risk(ev))
    assert (run.customers.to_numpy() == ev["customer_id"].to_numpy(dtype=object)).all()
    pd.testing.assert_frame_equal(run.samples[900], ev.sample(900, random_state=0), check_exact=True)
    pd.testing.assert_frame_equal(run.samples[5_000], ev, check_exact=True)


def test_training_metrics_do_not_depend_on_the_evaluation_batch(trained, warehouse, tmp_path, monkeypatch):
    import shutil

    import ml.train as training

    _, _, models = trained
    monkeypatch.setattr(training, "IMPORTANCE_SAMPLE", 1_000)
    monkeypatch.setattr(training, "REFERENCE_SAMPLE", 700)
    runs = []
    for size in ("1000000000", "1000"):  # one batch; four batches, the last one short
        folder = tmp_path / f"models-{size}"
        shutil.copytree(models, folder)  # the same current model for the gate
        monkeypatch.setenv("RETAIN_ML_BATCH_ROWS", size)
        runs.append(train(warehouse, models_dir=folder))
    one, batched = runs
    assert one.n_eval_rows == batched.n_eval_rows > 1_000
    assert json.dumps(one.metrics, sort_keys=True) == json.dumps(batched.metrics, sort_keys=True)
    assert one.metrics["current_model_auc_on_this_eval"] is not None
    reference = [pd.read_parquet(r.model_dir / "reference.parquet") for r in runs]
    assert len(reference[0]) == 700
    pd.testing.assert_frame_equal(reference[0], reference[1], check_exact=True)


def test_reasons_quote_the_customers_values_and_only_raise_risk(trained, warehouse):
    result, _, models = trained
    artifact = load_artifact(models)
    feats = build_features(warehouse, latest_order_date(warehouse))
    _, reasons, contrib = risk_and_explain(artifact, feats)
    texts = reasons["reason_1"].dropna()
    assert len(texts) > len(feats) / 2
    # compared with a typical retained customer, nearly every high-risk customer has a reason
    risk = artifact.predict_risk(feats)
    assert reasons.loc[risk >= 0.6, "reason_1"].notna().mean() > 0.8
    # every reason's group raises this customer's risk, the first one most
    assert (contrib.max(axis=1)[reasons["reason_1"].notna()] >= 0.005).all()
    assert (contrib.max(axis=1)[reasons["reason_1"].isna()] < 0.005).all()
    recency = reasons["reason_1"].fillna("").str.startswith("no order for ")
    assert recency.sum() > 0
    days = reasons.loc[recency, "reason_1"].str.extract(r"no order for (\d+) days")[0].astype(int)
    np.testing.assert_array_equal(days.to_numpy(), feats.loc[recency, "days_since_last_order"].to_numpy())
    gap = reasons.loc[recency, "reason_1"].str.extract(r", ([\d.]+)x their usual gap")[0].dropna().astype(float)
    np.testing.assert_allclose(gap, feats.loc[gap.index, "overdue_ratio"].round(1))
    # an open complaint, when it is a reason, quotes its age
    all_reasons = reasons.stack()
    open_complaint = all_reasons[all_reasons.str.startswith("complaint unresolved for")]
    for (row, _col), text in open_complaint.items():
        assert int(re.search(r"for (\d+) days", text).group(1)) == feats.loc[row, "days_unresolved"]
    # a customer who just ordered and has nothing wrong has no reason about recency
    fresh = feats.index[(feats["days_since_last_order"] == 0)]
    assert not reasons.loc[fresh].stack().str.startswith("no order for").any()


def test_fast_reasons_are_the_plain_computation_bit_for_bit(trained, warehouse, monkeypatch):
    """The leaf-level what-if (ml.whatif) gives exactly the risk, contributions and reasons of one
    full prediction per group, on today's rows and on a past cut-off's."""
    _, _, models = trained
    artifact = load_artifact(models)
    for day in (latest_order_date(warehouse), date(2025, 6, 30)):
        feats = build_features(warehouse, day)
        assert WhatIf.for_artifact(artifact, feats) is not None  # the fast path is the one taken
        risk, reasons, contrib = risk_and_explain(artifact, feats)
        expected_risk = artifact.predict_risk(feats)
        assert np.array_equal(risk, expected_risk)
        plain = plain_contributions(artifact, feats, expected_risk)
        assert (plain.to_numpy() != 0).sum() > len(feats)  # many what-ifs do move the risk
        expected_reasons = _reasons(feats, plain, 3, 0.005)
        assert np.array_equal(contrib.to_numpy(), plain.to_numpy())
        pd.testing.assert_frame_equal(reasons, expected_reasons)
        # the same with the groups on parallel threads (what a shop of 50,000+ customers gets)
        with monkeypatch.context() as m:
            m.setattr("ml.reasons.PARALLEL_GROUP_ROWS", 0)
            _, threaded_reasons, threaded = risk_and_explain(artifact, feats)
        assert np.array_equal(threaded.to_numpy(), plain.to_numpy())
        pd.testing.assert_frame_equal(threaded_reasons, expected_reasons)
    # a model the fast path does not reproduce falls back to the plain computation
    feats = build_features(warehouse, latest_order_date(warehouse)).iloc[:500]
    monkeypatch.setattr(WhatIf, "raw", lambda self, leaves: np.zeros(leaves.shape[1]))
    assert WhatIf.for_artifact(artifact, feats) is None
    risk, reasons, contrib = risk_and_explain(artifact, feats)
    assert np.array_equal(risk, artifact.predict_risk(feats))
    assert np.array_equal(contrib.to_numpy(), _plain_eligible(artifact, feats, risk))
    # scikit-learn internals that moved in an upgrade: the plain way again, not a crash
    monkeypatch.undo()

    def moved(self, artifact):
        raise ImportError("cannot import name 'TreePredictor'")

    monkeypatch.setattr(WhatIf, "__init__", moved)
    assert WhatIf.for_artifact(artifact, feats) is None
    risk, _, contrib = risk_and_explain(artifact, feats)
    assert np.array_equal(contrib.to_numpy(), _plain_eligible(artifact, feats, risk))


def _plain_eligible(artifact, feats, risk) -> np.ndarray:
    plain = plain_contributions(artifact, feats, risk)
    _reasons(feats.reset_index(drop=True), plain, 3, 0.005)  # zeroes groups that cannot be worded
    return plain.to_numpy()


def test_orders_only_log_trains_and_scores(tmp_path):
    """The real CDNOW sample as a bare transaction log (customer, day, amount): orders only."""
    log = pd.read_csv(CDNOW_SAMPLE, sep=r"\s+", header=None, dtype={"date": str},
                      names=["master_id", "customer_id", "date", "cds", "total"])
    con = duckdb.connect(str(tmp_path / "cdnow.duckdb"))
    con.execute("create schema marts")
    con.register("log", log)
    con.execute("""create table marts.fct_orders as
        select md5(concat_ws('|', customer_id, date, total, row_number() over ())) as order_id,
               cast(customer_id as varchar) as customer_id, cast(strptime(date, '%Y%m%d') as timestamp) as ordered_at,
               cast(total as decimal(18, 2)) as total
        from log""")
    result = train(con, models_dir=tmp_path / "models")
    assert result.promoted  # the first model
    assert str(result.plan.as_of) == "1998-06-30" and str(result.plan.eval_cutoff) == "1998-01-01"
    for name in ("model", "recency_rule", "logistic_regression", "bgnbd_p_no_purchase"):
        assert result.metrics[name]["roc_auc"] > 0.7
    artifact = load_artifact(tmp_path / "models")
    assert "days_since_last_order" in artifact.numeric and "bgnbd_p_alive" in artifact.numeric
    assert "last_nps" not in artifact.features and "late_deliveries" not in artifact.features
    summary = score(con, models_dir=tmp_path / "models")
    scores = con.execute("select * from ml.churn_scores").df()
    assert summary.rows == len(scores) == 2357 and scores["churn_probability"].notna().all()
    assert scores["reason_1"].notna().any() and scores["clv_12m"].notna().all()
    assert set(FEATURE_NAMES) <= set(build_features(con, "1997-06-01").columns)


def test_psi_and_drift_check(trained, warehouse):
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, 5000)
    assert psi(base, rng.normal(0, 1, 5000)) < 0.02
    assert psi(base, rng.normal(1, 1, 5000)) > 0.25
    assert psi(["a"] * 50 + ["b"] * 50, ["a"] * 90 + ["b"] * 10) > 0.25
    assert psi(np.r_[base, [np.nan] * 500], np.r_[base, [np.nan] * 500]) == pytest.approx(0, abs=1e-9)
    _, _, models = trained
    result = drift_from_warehouse(warehouse, models)
    assert set(result.report["name"]) >= {"days_since_last_order", "churn_probability"}
    assert result.report["psi"].ge(0).all()
    assert "max PSI" in result.describe()
    # the check reads what scoring stored for this batch: the same as measuring it again
    stored = warehouse.execute("select count(*) from ml.churn_score_drift").fetchone()[0]
    assert stored == len(result.report)
    feats = build_features(warehouse, latest_order_date(warehouse))
    scores = warehouse.execute("select customer_id, churn_probability from ml.churn_scores").df()
    merged = feats.merge(scores, on="customer_id")
    fresh = drift_report(merged, merged["churn_probability"], models)
    pd.testing.assert_frame_equal(result.report, fresh.report)
    assert (result.max_psi, result.passed) == (fresh.max_psi, fresh.passed)
    # another model promoted since scoring: the stored drift is not that model's, so it is measured again
    warehouse.execute("update ml.churn_score_drift set psi = 99")
    assert drift_from_warehouse(warehouse, models).max_psi == 99
    warehouse.execute("update ml.churn_scores set model_version = 'older-model'")
    try:
        assert drift_from_warehouse(warehouse, models).max_psi < 99
    finally:
        score(warehouse, models_dir=models)


def test_model_card_reports_window_metrics_and_drivers(trained, warehouse):
    result, _, models = trained
    card = model_card(warehouse, models)
    assert result.run_id in card and str(result.plan.eval_cutoff) in card
    assert f"{result.metrics['model']['roc_auc']:.3f}" in card
    assert "recency-only rule" in card and "BG/NBD" in card and "Top drivers" in card


def test_ml_batch_rows_setting_is_checked(monkeypatch):
    from pipelines.core.config import ml_batch_rows

    monkeypatch.delenv("RETAIN_ML_BATCH_ROWS", raising=False)
    assert ml_batch_rows() == 250_000
    monkeypatch.setenv("RETAIN_ML_BATCH_ROWS", "100_000")
    assert ml_batch_rows() == 100_000
    for bad in ("lots", "10", "-5"):
        monkeypatch.setenv("RETAIN_ML_BATCH_ROWS", bad)
        with pytest.raises(ValueError, match=f"RETAIN_ML_BATCH_ROWS='{bad}'.*at least 1,000"):
            ml_batch_rows()
