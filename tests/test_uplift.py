"""The uplift model (ml/uplift.py) on simulated holdout data whose effect depends on churn risk."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest
from scipy.stats import spearmanr

from ml.uplift import backtest, fit_two_model, qini_curve, training_frame
from pipelines.generate.experiments import PlantedPlay, simulate_outreach
from tests.dbt_fixture import run_dbt


def test_qini_curve_by_hand():
    # ranked: contacted+ordered, held out, contacted, held out+ordered
    curve = qini_curve([0.3, 0.2, 0.1, 0.0], [True, False, True, False], [1, 0, 0, 1])
    assert np.isnan(curve["gain"][0])  # nobody held out yet
    assert curve["gain"].tolist()[1:] == [1.0, 1.0, 0.0]  # 1 - 0; 1 - 0 * 2/1; 1 - 1 * 2/2
    assert curve["random"].tolist() == [0.0] * 4


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    """One simulated play: 20,000 customers, 30% held out, the planted effect falls with churn risk."""
    work = tmp_path_factory.mktemp("uplift")
    warehouse = work / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        simulate_outreach(con, seeds=(11,), plays=(PlantedPlay("winback", "winback_offer", 20000, 0.15, 0.05, 0.3),))
    result = run_dbt(["run", "--select", "+outreach_first_listing_outcomes"], warehouse, work)
    assert result.returncode == 0, result.stdout[-3000:]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return training_frame(con, "winback", 60)


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
