"""The uplift model (ml/uplift.py) on simulated holdout data whose effect depends on churn risk."""

from __future__ import annotations

import shutil

import duckdb
import numpy as np
import pytest
from scipy.stats import spearmanr

from ml.status import read_status, uplift_done, uplift_skipped
from ml.uplift import UpliftSkipped, backtest, fit_two_model, qini_curve, run_uplift, training_frame
from pipelines.generate.experiments import PlantedPlay, simulate_outreach
from tests.dbt_fixture import run_dbt


def test_qini_curve_by_hand():
    # ranked: contacted+ordered, held out, contacted, held out+ordered
    curve = qini_curve([0.3, 0.2, 0.1, 0.0], [True, False, True, False], [1, 0, 0, 1])
    assert np.isnan(curve["gain"][0])  # nobody held out yet
    assert curve["gain"].tolist()[1:] == [1.0, 1.0, 0.0]  # 1 - 0; 1 - 0 * 2/1; 1 - 1 * 2/2
    assert curve["random"].tolist() == [0.0] * 4


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """One simulated play: 20,000 customers, 30% held out, the planted effect falls with churn risk."""
    work = tmp_path_factory.mktemp("uplift")
    warehouse = work / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        simulate_outreach(con, seeds=(11,), plays=(PlantedPlay("winback", "winback_offer", 20000, 0.15, 0.05, 0.3),))
    result = run_dbt(["run", "--select", "+outreach_first_listing_outcomes"], warehouse, work)
    assert result.returncode == 0, result.stdout[-3000:]
    return warehouse


@pytest.fixture(scope="module")
def frame(simulated):
    with duckdb.connect(str(simulated), read_only=True) as con:
        return training_frame(con, "winback", 60)


@pytest.fixture
def scored_copy(simulated, tmp_path):
    """A writable copy of the simulated warehouse with today's churn scores for three customers."""
    path = tmp_path / "warehouse.duckdb"
    shutil.copyfile(simulated, path)
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA IF NOT EXISTS ml")
    con.execute("""CREATE TABLE ml.churn_scores AS SELECT * FROM (VALUES
        ('loyal', DATE '2026-06-30', 0.1, 100.0), ('wavering', DATE '2026-06-30', 0.5, 100.0),
        ('gone', DATE '2026-06-30', 0.9, 100.0)) t(customer_id, as_of_date, churn_probability, clv_12m)""")
    yield con
    con.close()


def test_the_pipeline_step_backtests_and_scores_todays_customers(scored_copy):
    con = scored_copy
    run = run_uplift(con, min_per_arm=1000)
    bt = con.execute("SELECT * FROM ml.uplift_backtest").df()
    assert bt["play"].tolist() == ["winback"] and bt["qini"].iloc[0] > 0
    assert bt["uplift_top"].iloc[0] > bt["uplift_all"].iloc[0]
    assert int(bt["treated"].iloc[0]) + int(bt["held_out"].iloc[0]) == 20000
    scores = con.execute("SELECT customer_id, uplift, p_order_if_contacted - p_order_if_held_out AS diff, uplift_rank "
                         "FROM ml.uplift_scores WHERE play = 'winback' ORDER BY uplift_rank").df()
    # the planted effect falls with churn risk: the loyal customer gains most from outreach
    assert scores["customer_id"].tolist() == ["loyal", "wavering", "gone"]
    assert np.allclose(scores["uplift"], scores["diff"])
    assert run.customers == 3 and "winback" in run.describe()
    uplift_done(con, run.describe())
    assert read_status(con)["uplift"] == "scored"


def test_too_little_holdout_is_a_clear_skip_that_empties_the_tables(scored_copy):
    con = scored_copy
    run_uplift(con, min_per_arm=1000)
    with pytest.raises(UpliftSkipped) as caught:
        run_uplift(con, min_per_arm=100_000)
    reason = caught.value.reason
    held_out = con.execute("SELECT count(*) FROM marts.outreach_first_listing_outcomes "
                           "WHERE window_days = 60 AND arm <> 'contacted'").fetchone()[0]
    assert reason.startswith("not enough holdout data yet: ") and f"/ {held_out:,} held out" in reason, reason
    assert "need 100,000 / 100,000" in reason
    assert con.execute("SELECT count(*) FROM ml.uplift_scores").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM ml.uplift_backtest").fetchone()[0] == 0
    uplift_skipped(con, reason)
    assert read_status(con)["uplift"] == "skipped" and read_status(con)["uplift_reason"] == reason


def test_the_two_model_learner_finds_who_outreach_moves(frame):
    assert len(frame) == 20000 and 0.25 < 1 - frame["treated"].mean() < 0.35
    model = fit_two_model(frame)
    predicted = model.predict(frame)
    # the planted effect is 2r(1 - churn_probability): the predicted uplift must fall with it
    rho = spearmanr(predicted, frame["churn_probability"]).statistic
    assert rho < -0.5, rho
    low, high = predicted[frame["churn_probability"] < 0.2].mean(), predicted[frame["churn_probability"] > 0.8].mean()
    assert low > high


def test_backtest_beats_random_targeting_on_later_lists(frame):
    result = backtest(frame, train_share=0.6, top_share=0.3)
    print(f"\nbacktest: train {result.train_customers}, test {result.test_customers}; lift in the top 30% by "
          f"predicted uplift {result.uplift_top:+.3f} vs {result.uplift_all:+.3f} for random targeting; "
          f"Qini {result.qini:+.4f}")
    assert result.train_customers > 0 and result.test_customers > 0
    assert result.uplift_top > result.uplift_all
    assert result.qini > 0
