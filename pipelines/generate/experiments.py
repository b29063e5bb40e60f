"""Simulated weekly outreach runs with a known true lift per play, to check the measured lift.

`simulate_outreach(con, ...)` writes into a warehouse what a season of weekly list runs
leaves behind: the list rows of every run (`exports.outreach_lists`, `exports.holdouts`,
`exports.experiments`, `exports.runs`; the arms drawn by the product's own hash,
`pipelines.outreach.holdout`) and the customers' orders (`raw.orders`, `raw.customers`, as
one load), with an effect planted in the contacted customers' later orders. dbt then
measures the lift (`models/marts/outreach_lift.sql`) and `true_lifts()` says what it should
find. It does not run the churn model or the rules: the lift only depends on who was listed,
in which arm, and who ordered afterwards.

The model of one play (every draw seeded, vectorised with numpy):

* `customers` customers enter the list in a week drawn uniformly from the `weeks` runs and
  stay listed for 1 to 3 weekly runs (so later runs list some customers again);
* without outreach, customer i orders within 90 days of their first listing with
  probability p_i, uniform on [0, 2 * base_rate_90d] (mean base_rate_90d), on a day uniform
  in 1..90 after the list date: P(order within w days) = p_i * w / 90;
* outreach: a contacted customer who has no such order within 60 days gets one, on a day
  uniform in 1..60, with probability r_i = 2r * (1 - churn_probability_i), where
  r = lift_60d / (1 - base_rate_90d * 60 / 90) and churn_probability_i, written on the list
  row like the real lists do, is uniform on [0, 1) and independent of everything else: the
  effect is larger for customers the churn model thinks likelier to stay (something for an
  uplift model to find), and r on average. The 60-day conversion of the contacted then
  exceeds the held-out's by exactly lift_60d in expectation; `true_lifts` gives the other
  windows and the revenue.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa

from pipelines.ingest.schema import ensure_schema
from pipelines.outreach import holdout as ho
from pipelines.outreach.lists import ensure_tables

#: Mean order value of the simulated orders (lognormal, sigma 0.5).
MEAN_ORDER_VALUE = 60.0
_SIGMA = 0.5


@dataclass(frozen=True)
class PlantedPlay:
    """One simulated play: its size, its customers' baseline and the lift planted in it."""

    name: str
    template: str
    customers: int
    base_rate_90d: float
    lift_60d: float
    holdout: float = ho.DEFAULT_HOLDOUT

    @property
    def planted_rate(self) -> float:
        """r: the chance that outreach brings an order to a contacted customer without one in 60 days."""
        return self.lift_60d / (1 - self.base_rate_90d * 60 / 90)


#: The default season: win-back +5 points of 60-day conversion, nurture +3, referral asks none.
DEFAULT_PLAYS = (
    PlantedPlay("winback", "winback_offer", 6000, 0.15, 0.05),
    PlantedPlay("at_risk_nurture", "at_risk_care_tips", 6000, 0.30, 0.03),
    PlantedPlay("advocate_referral", "advocate_referral", 3000, 0.40, 0.0),
)
WINDOWS = ho.DEFAULT_OUTCOME_WINDOWS


def true_lifts(play: PlantedPlay) -> dict[int, dict[str, float]]:
    """The expected lift per outcome window: conversion (a fraction) and revenue per customer.

    A planted order lands in the first 60 days, only for customers without an order in 60
    days: window 30 gets half of it; window 90 loses the customers whose own order came in
    days 61-90 (they convert anyway). The revenue lift is the planted orders' value.
    """
    r, base = play.planted_rate, play.base_rate_90d
    planted = r * (1 - base * 60 / 90)  # share of contacted customers who get a planted order
    return {
        30: {"conversion": planted / 2, "revenue": planted / 2 * MEAN_ORDER_VALUE},
        60: {"conversion": planted, "revenue": planted * MEAN_ORDER_VALUE},
        90: {"conversion": r * (1 - base), "revenue": planted * MEAN_ORDER_VALUE},
    }


@dataclass
class Simulation:
    """What `simulate_outreach` wrote: the runs, the experiment id and the truth per play."""

    experiment: str
    run_dates: list[date]
    data_end: datetime
    plays: tuple[PlantedPlay, ...]
    customers: int
    orders: int

    def truth(self) -> dict[str, dict[int, dict[str, float]]]:
        """play -> window -> {'conversion', 'revenue'} true lifts."""
        return {p.name: true_lifts(p) for p in self.plays}


def _draws(play: PlantedPlay, index: int, seed: int, weeks: int) -> pa.Table:
    rng = np.random.default_rng([seed, index])
    n = play.customers
    value = MEAN_ORDER_VALUE * np.exp(-_SIGMA**2 / 2)  # lognormal with mean MEAN_ORDER_VALUE
    return pa.table({
        "seed": np.full(n, seed),
        "play": pa.array([play.name]).take(np.zeros(n, dtype=np.int64)),
        "i": np.arange(n),
        "entry_week": rng.integers(0, weeks, n),
        "stay_weeks": rng.integers(1, 4, n),
        "p90": rng.uniform(0, 2 * play.base_rate_90d, n),
        "u_base": rng.uniform(0, 1, n),
        "base_day": rng.integers(1, 91, n),
        "u_planted": rng.uniform(0, 1, n),
        "planted_day": rng.integers(1, 61, n),
        "base_value": np.round(value * rng.lognormal(0, _SIGMA, n), 2),
        "planted_value": np.round(value * rng.lognormal(0, _SIGMA, n), 2),
        "churn_probability": rng.uniform(0, 1, n),
        "clv_12m": np.round(value * rng.lognormal(0, 1, n), 2),
    })


def simulate_outreach(
    con: duckdb.DuckDBPyConnection,
    seeds: tuple[int, ...] | list[int] | range = (7,),
    weeks: int = 8,
    start: date = date(2026, 1, 5),
    plays: tuple[PlantedPlay, ...] = DEFAULT_PLAYS,
    observe_days: int | None = None,
) -> list[Simulation]:
    """Write `weeks` weekly list runs from `start` and the orders that follow, once per seed.

    Each seed is its own shop and experiment, `sim<seed>`, which prefixes its run and customer
    ids, so many seeds share one warehouse (and one dbt build). Orders are observed for
    `observe_days` after the first run (default: until every window of the last run has
    passed); later orders are left out, like the future.
    """
    if weeks < 1 or not plays or not len(seeds):
        raise ValueError("simulate at least one week, one play and one seed")
    run_dates = [start + timedelta(days=7 * k) for k in range(weeks)]
    observe_days = observe_days if observe_days is not None else 7 * (weeks - 1) + max(WINDOWS) + 2
    data_end = datetime.combine(start, datetime.min.time()) + timedelta(days=observe_days)
    ensure_schema(con)
    ensure_tables(con)
    draws = pa.concat_tables([_draws(p, i, seed, weeks) for seed in seeds for i, p in enumerate(plays)])
    settings = pa.table({
        "play": [p.name for p in plays], "template": [p.template for p in plays],
        "holdout": [p.holdout for p in plays], "planted_rate": [p.planted_rate for p in plays],
        "priority": list(range(1, len(plays) + 1)),
    })
    con.register("_sim_draws", draws)
    con.register("_sim_settings", settings)
    created = datetime.now(UTC).replace(tzinfo=None)
    held = ho.bucket_sql("customer_id", "play", "experiment")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _sim_customers AS
        SELECT *, {held} < holdout AS is_held_out FROM (
            SELECT d.*, 'sim' || d.seed AS experiment, s.template, s.holdout, s.planted_rate,
                   'sim' || d.seed || '-' || left(d.play, 3) || '-' || lpad(d.i::VARCHAR, 6, '0') AS customer_id,
                   $start::DATE + 7 * d.entry_week::INTEGER AS first_list_date
            FROM _sim_draws d JOIN _sim_settings s USING (play)
        )
    """, {"start": start})
    # orders: the baseline one (any arm), the planted one (contacted, no own order in 60 days)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _sim_orders AS
        SELECT * FROM (
            SELECT customer_id, first_list_date + base_day::INTEGER + INTERVAL 12 HOUR AS ordered_at,
                   base_value AS total, 'b' AS kind
            FROM _sim_customers WHERE u_base < p90
            UNION ALL
            SELECT customer_id, first_list_date + planted_day::INTEGER + INTERVAL 13 HOUR, planted_value, 'p'
            FROM _sim_customers
            WHERE NOT is_held_out AND u_planted < 2 * planted_rate * (1 - churn_probability)
              AND NOT (u_base < p90 AND base_day <= 60)
            UNION ALL  -- the shop's other customers order every day: the data runs to its end
            SELECT DISTINCT experiment || '-shop', $end::TIMESTAMP - INTERVAL 1 HOUR, 10.0, 's' FROM _sim_customers
        ) WHERE ordered_at < $end::TIMESTAMP
    """, {"end": data_end})
    # the list runs: a customer is listed from their entry week for stay_weeks weekly runs
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _sim_listed AS
        SELECT c.*, c.experiment || '-w' || lpad((k + 1)::VARCHAR, 2, '0') AS run_id,
               $start::DATE + 7 * k::INTEGER AS as_of_date
        FROM _sim_customers c JOIN range($weeks) w(k) ON k >= c.entry_week AND k < c.entry_week + c.stay_weeks
    """, {"start": start, "weeks": weeks})
    load_id = con.execute("SELECT coalesce(max(load_id), 0) + 1 FROM raw._loads").fetchone()[0]
    source_file = "simulated/outreach.csv"
    con.execute("""INSERT INTO raw._loads (load_id, source, file_path, status, rows_read, rows_loaded,
                       rows_quarantined, values_nulled, started_at, finished_at)
                   SELECT ?, 'orders', ?, 'loaded', count(*), count(*), 0, 0, ?, ? FROM _sim_orders""",
                [load_id, source_file, created, created])
    con.execute("""
        INSERT INTO raw.orders (order_id, customer_id, ordered_at, status, currency, total, updated_at,
                                _load_id, _source_file, _source_row, _loaded_at)
        SELECT customer_id || '-' || kind || '-' || strftime(ordered_at, '%Y%m%d'), customer_id, ordered_at,
               'delivered', 'EUR', total, ordered_at, ?, ?, row_number() OVER (ORDER BY customer_id, ordered_at), ?
        FROM _sim_orders
    """, [load_id, source_file, created])
    con.execute("""
        INSERT INTO raw.customers (customer_id, created_at, updated_at, email_marketing_consent,
                                   _load_id, _source_file, _source_row, _loaded_at)
        SELECT customer_id, ?::TIMESTAMP, ?::TIMESTAMP, 'subscribed', ?, ?, row_number() OVER (ORDER BY customer_id), ?
        FROM _sim_customers
    """, [datetime.combine(start, datetime.min.time()) - timedelta(days=400), created, load_id,
          source_file, created])
    tier = "CASE WHEN churn_probability >= 0.6 THEN 'high' WHEN churn_probability >= 0.3 THEN 'medium' ELSE 'low' END"
    con.execute(f"""INSERT INTO exports.outreach_lists (run_id, play, customer_id, channel, action, template,
                       priority, rank, risk_tier, churn_probability, clv_12m, as_of_date, created_at)
                   SELECT run_id, play, customer_id, 'email', template, template, 1,
                          row_number() OVER (PARTITION BY run_id, play ORDER BY customer_id), {tier},
                          churn_probability, clv_12m, as_of_date, ?
                   FROM _sim_listed WHERE NOT is_held_out""", [created])
    con.execute(f"""INSERT INTO exports.holdouts (run_id, play, customer_id, experiment, risk_tier, churn_probability,
                       clv_12m, as_of_date, created_at)
                   SELECT run_id, play, customer_id, experiment, {tier}, churn_probability, clv_12m, as_of_date, ?
                   FROM _sim_listed WHERE is_held_out""", [created])
    windows = list(WINDOWS)
    con.execute("""INSERT INTO exports.experiments (run_id, play, experiment, template, holdout_share,
                       outcome_windows, contacted, held_out, as_of_date, created_at)
                   SELECT run_id, play, experiment, any_value(template), any_value(holdout), ?::INTEGER[],
                          count(*) FILTER (WHERE NOT is_held_out), count(*) FILTER (WHERE is_held_out),
                          any_value(as_of_date), ?
                   FROM _sim_listed GROUP BY run_id, play, experiment""", [windows, created])
    plays_json = json.dumps([
        {"name": p.name, "priority": i + 1, "channel": "email", "action": p.template, "template": p.template,
         "rule": "simulated", "description": "simulated play", "frequency_cap_days": 7,
         "holdout": p.holdout, "outcome_windows": windows}
        for i, p in enumerate(plays)
    ])
    con.execute("""INSERT INTO exports.runs (run_id, created_at, as_of_date, playbook_path, plays_json, listed)
                   SELECT run_id, ?, any_value(as_of_date), 'simulated', ?, count(*) FILTER (WHERE NOT is_held_out)
                   FROM _sim_listed GROUP BY run_id""", [created, plays_json])
    counts = dict(con.execute("""SELECT experiment, count(*) FROM _sim_customers GROUP BY experiment""").fetchall())
    orders = dict(con.execute(
        "SELECT c.experiment, count(*) FROM _sim_orders o JOIN _sim_customers c USING (customer_id) GROUP BY 1"
    ).fetchall())
    for name in ("_sim_customers", "_sim_orders", "_sim_listed"):
        con.execute(f"DROP TABLE IF EXISTS {name}")
    con.unregister("_sim_draws")
    con.unregister("_sim_settings")
    return [
        Simulation(experiment=f"sim{seed}", run_dates=run_dates, data_end=data_end, plays=tuple(plays),
                   customers=counts.get(f"sim{seed}", 0), orders=orders.get(f"sim{seed}", 0))
        for seed in seeds
    ]
