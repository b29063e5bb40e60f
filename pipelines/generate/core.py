"""The latent simulation behind the synthetic data: customers, their purchase process, experiences.

Model (one chunk of customers at a time, all vectorised over customers):

* Customers are acquired across the period with yearly growth and the shop's seasonality.
  Each has a purchase rate drawn from a Gamma and a dropout probability drawn from a Beta
  (BG/NBD), a spend level drawn from a Gamma (Gamma-Gamma), a satisfaction trait, a country,
  a preferred sales channel and favourite category.
* Orders are simulated in rounds: round k places the k-th order of every customer still
  active. Each order gets its experience (carrier, late delivery, damage, return, support
  complaints and how fast they are resolved, post-purchase emails, a latent NPS score). The
  customer then drops out with probability p * hazard, where hazard multiplies the effects of
  that experience (Params.hazard_*). Survivors buy again after an exponential gap in
  season-warped time, so November-December gets more orders at the same rate.

Times are float seconds since the Unix epoch (UTC) inside the simulation and int64 seconds
with -1 for "not happened (yet)" once they leave it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from types import SimpleNamespace

import numpy as np

from pipelines.generate import catalog as cat
from pipelines.generate.journeys import first_order_hazard

DAY = 86400.0
HOUR = 3600.0
NULL = -1  # int64 timestamp / id that is not there


@dataclass(frozen=True)
class Params:
    """Every knob of the simulation; docs/generator.md lists the planted effects and their sizes."""

    # acquisition and purchase process (BG/NBD + Gamma-Gamma)
    growth_per_year: float = 0.40  # new customers per day grow 40% a year
    buyer_share: float = 0.93  # the rest sign up (newsletter, account) but never order
    rate_shape: float = 1.1  # Gamma shape r of the purchase rate
    rate_mean_per_year: float = 3.0  # mean orders per year while active
    dropout_a: float = 1.6  # Beta(a, b) dropout probability after each order
    dropout_b: float = 2.6
    spend_shape: float = 4.0  # Gamma shape q of a customer's price level
    spend_mean_eur: float = 42.0  # mean price level (EUR per unit)
    line_price_shape: float = 5.0  # Gamma shape p of one line's price around the level
    max_orders: int = 200
    # order and delivery
    cancel_rate: float = 0.03
    peak_late_factor: float = 1.4  # carriers are late more often from mid November
    damaged_rate: float = 0.025
    wrong_item_rate: float = 0.015
    # support: probability of a ticket given the experience
    wismo_if_late: float = 0.35
    wismo_if_on_time: float = 0.03
    complaint_if_late: float = 0.30
    complaint_if_damaged: float = 0.80
    complaint_if_return: float = 0.10
    resolution_normal: tuple[float, float, float] = (0.55, 0.32, 0.13)  # fast, slow, unresolved
    resolution_peak: tuple[float, float, float] = (0.40, 0.38, 0.22)
    # dropout hazard multipliers (the planted causal effects)
    hazard_complaint: tuple[float, float, float, float] = (1.0, 1.3, 1.8, 2.5)  # none/fast/slow/unresolved
    hazard_detractor: float = 1.5
    hazard_promoter: float = 0.8
    hazard_returned: float = 1.15
    hazard_how_to: float = 0.8
    hazard_thank_you: float = 0.9
    # post-purchase flows
    how_to_share: float = 0.6  # of delivered orders in guide categories
    thank_you_first: float = 0.5
    thank_you_repeat: float = 0.15
    # latent NPS of an order experience
    nps_base: float = 8.3
    nps_trait_sd: float = 1.0
    nps_noise_sd: float = 1.2
    nps_late: float = -2.5
    nps_damaged: float = -3.0
    nps_resolution: tuple[float, float, float, float] = (0.0, 0.5, -1.0, -2.5)
    # customers
    test_share: float = 0.005
    erasure_share: float = 0.002
    email_missing: float = 0.012
    email_invalid: float = 0.008
    email_subscribed: float = 0.55
    sms_subscribed: float = 0.30
    high_frequency_share: float = 0.25  # marketing segment that also gets weekly deals in peak months
    preference_unsubscribe: float = 0.04
    # marketing pressure -> unsubscribes: p = base * (1 + slope * max(0, messages this month - free))
    unsub_base: float = 0.0015
    unsub_slope: float = 0.5
    unsub_free: int = 3
    sunset_days: float = 365.0  # campaigns only go to customers who ordered in the last year
    # planted product journeys (pipelines/generate/journeys.py)
    affinity_share: float = 0.45  # P(next order starts with the planted partner of a product bought)
    rebuy_share: float = 0.5  # P(next order starts with a consumable bought last time)
    first_category: str = "beauty"  # first buyers of this category come back more often
    first_category_hazard: float = 0.4  # dropout hazard multiplier after a first order in it


def epoch_seconds(d: date) -> float:
    """Seconds since the Unix epoch at midnight UTC of `d`."""
    return float((d - date(1970, 1, 1)).days) * DAY


_MONTH_WEIGHTS = np.array([0.85, 0.85, 0.95, 0.95, 0.95, 0.90, 0.95, 0.90, 0.95, 1.00, 1.25, 1.40])
_WEEKDAY_WEIGHTS = np.array([1.08, 1.02, 1.00, 0.98, 0.92, 0.90, 1.10])  # Monday first
# Share of orders by UTC hour: quiet nights, evening peak.
_HOUR_WEIGHTS = np.array([0.25, 0.15, 0.10, 0.08, 0.08, 0.15, 0.35, 0.60, 0.80, 0.95, 1.00, 1.05,
                          1.10, 1.05, 1.00, 1.00, 1.05, 1.15, 1.30, 1.50, 1.60, 1.45, 1.00, 0.55])


def black_friday(epoch_days: np.ndarray) -> np.ndarray:
    """Epoch day of Black Friday (day after the 4th Thursday of November) of each day's year."""
    d = epoch_days.astype("datetime64[D]")
    nov1 = (d.astype("datetime64[Y]") + np.timedelta64(10, "M")).astype("datetime64[D]").astype(np.int64)
    dow = (nov1 + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    first_thursday = nov1 + (3 - dow) % 7
    return first_thursday + 22


def season_raw(epoch_days: np.ndarray) -> np.ndarray:
    """Unnormalised daily demand: month level, Black Friday week, Christmas, weekday."""
    d = epoch_days.astype("datetime64[D]")
    month = d.astype("datetime64[M]").astype(np.int64) % 12
    dom = (d - d.astype("datetime64[M]")).astype(np.int64) + 1
    w = _MONTH_WEIGHTS[month].copy()
    bf = black_friday(epoch_days)
    w[np.abs(epoch_days - bf) <= 3] *= 1.8  # Black Friday to Cyber Monday
    dec = month == 11
    w[dec & (dom <= 20)] *= 1.15  # Christmas shopping
    w[dec & (dom >= 24)] *= 0.55  # quiet between Christmas and New Year
    return w * _WEEKDAY_WEIGHTS[(epoch_days + 3) % 7]


_REF_YEAR = np.arange(np.datetime64("2025-01-01"), np.datetime64("2026-01-01")).astype(np.int64)
_SEASON_NORM = float(season_raw(_REF_YEAR).mean())


class Calendar:
    """The time axis: seasonality as a time warp, growth, hours of the day, campaign dates.

    A customer's purchase rate is per "average day"; `warp` maps real time to cumulative
    seasonal demand, so an exponential gap in warped time lands more often in busy weeks.
    """

    def __init__(self, start: date, end: date, growth_per_year: float = Params.growth_per_year):
        self.start, self.end = start, end
        self.t0 = epoch_seconds(start)
        self.t1 = epoch_seconds(end + timedelta(days=1))  # exclusive: nothing at or after this
        self.ndays = (end - start).days + 1
        self.day0 = (start - date(1970, 1, 1)).days
        self.epoch_days = np.arange(self.ndays, dtype=np.int64) + self.day0
        self.season = season_raw(self.epoch_days) / _SEASON_NORM
        self.cum = np.concatenate([[0.0], np.cumsum(self.season)])
        hours = _HOUR_WEIGHTS / _HOUR_WEIGHTS.sum()
        self._hour_cdf = np.concatenate([[0.0], np.cumsum(hours)])
        self._hour_x = np.arange(25) / 24.0
        growth = np.exp(np.log1p(growth_per_year) * np.arange(self.ndays) / 365.25)
        self._acq_cdf = np.cumsum(self.season * growth)
        self._acq_cdf /= self._acq_cdf[-1]
        d = self.epoch_days.astype("datetime64[D]")
        self.month_of_day = d.astype("datetime64[M]").astype(np.int64) % 12
        self.dom_of_day = (d - d.astype("datetime64[M]")).astype(np.int64) + 1
        self.black_friday_week = np.abs(self.epoch_days - black_friday(self.epoch_days)) <= 3
        self.peak = (self.month_of_day == 11) | ((self.month_of_day == 10) & (self.dom_of_day >= 15))
        # calendar month of the period of each day, for "messages per month"
        self.month0 = int(np.datetime64(start, "M").astype(np.int64))
        self.nmonths = int(np.datetime64(end, "M").astype(np.int64)) - self.month0 + 1
        self.period_month_of_day = d.astype("datetime64[M]").astype(np.int64) - self.month0

    def day_index(self, t: np.ndarray) -> np.ndarray:
        """Day of the period (0 = start) of each time, clipped into the period."""
        return np.clip(((t - self.t0) // DAY).astype(np.int64), 0, self.ndays - 1)

    def month_index(self, t: np.ndarray) -> np.ndarray:
        """Calendar month of the period (0 = month of start) of each time (clipped into the period)."""
        return self.period_month_of_day[self.day_index(t)]

    def warp(self, t: np.ndarray) -> np.ndarray:
        """Cumulative seasonal demand (in average days) from the start up to time t."""
        x = (t - self.t0) / DAY
        d = np.clip(np.floor(x).astype(np.int64), 0, self.ndays - 1)
        return self.cum[d] + self.season[d] * (x - d)

    def unwarp(self, w: np.ndarray) -> np.ndarray:
        """Inverse of `warp`; +inf beyond the end of the period."""
        d = np.clip(np.searchsorted(self.cum, w, side="right") - 1, 0, self.ndays - 1)
        t = self.t0 + (d + (w - self.cum[d]) / self.season[d]) * DAY
        return np.where(w >= self.cum[-1], np.inf, t)

    def shape_hours(self, t: np.ndarray) -> np.ndarray:
        """Move each time within its day to follow the hour-of-day profile (order kept)."""
        finite = np.isfinite(t)
        day = np.floor(np.where(finite, t, 0.0) / DAY)
        frac = np.where(finite, t, 0.0) / DAY - day
        return np.where(finite, (day + np.interp(frac, self._hour_cdf, self._hour_x)) * DAY, t)

    def sample_acquisition(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Acquisition times: the daily density grows by `growth_per_year` and follows seasonality."""
        d = np.searchsorted(self._acq_cdf, rng.random(n), side="right")
        d = np.minimum(d, self.ndays - 1)
        return self.shape_hours(self.t0 + (d + rng.random(n)) * DAY)


def to_int_times(t: np.ndarray, t1: float, valid: np.ndarray | None = None) -> np.ndarray:
    """Float times to int64 seconds; NULL where not valid, not finite or at/after t1."""
    ok = (t >= 0) & (t < t1)  # false for NaN and +-inf too
    if valid is not None:
        ok &= valid
    return np.where(ok, t, NULL).astype(np.int64)  # truncation is floor for positive times


def simulate_customers(rng: np.random.Generator, n: int, cal: Calendar, p: Params) -> SimpleNamespace:
    """Latent traits and master data of n customers (vectorised)."""
    c = SimpleNamespace(n=n)
    c.country = rng.choice(len(cat.COUNTRIES), n, p=cat.COUNTRY_WEIGHTS)
    c.acquired = cal.sample_acquisition(rng, n)
    c.buyer = rng.random(n) < p.buyer_share
    c.test = rng.random(n) < p.test_share
    c.rate = rng.gamma(p.rate_shape, p.rate_mean_per_year / 365.25 / p.rate_shape, n)  # per average day
    c.dropout = rng.beta(p.dropout_a, p.dropout_b, n)
    c.spend = rng.gamma(p.spend_shape, p.spend_mean_eur / p.spend_shape, n)
    c.pref_channel = rng.choice(len(cat.SALES_CHANNELS), n, p=cat.SALES_CHANNEL_WEIGHTS)
    c.fav_category = rng.choice(len(cat.CATEGORIES), n, p=cat.CATEGORY_WEIGHTS)
    c.trait = rng.normal(0.0, 1.0, n)
    c.app_user = (c.pref_channel == cat.APP) | (rng.random(n) < 0.08)
    c.high_frequency = rng.random(n) < p.high_frequency_share
    # contact data quality: 0 valid, 1 missing, 2 invalid
    u = rng.random(n)
    c.email_state = np.where(u < p.email_missing, 1, np.where(u < p.email_missing + p.email_invalid, 2, 0))
    c.email_state[c.test] = 0
    c.email_ok = c.email_state == 0
    c.email_invalid_kind = rng.integers(0, len(cat.INVALID_EMAILS), n)
    c.email_domain = rng.integers(0, len(cat.EMAIL_DOMAINS), n)
    c.email_upper = rng.random(n) < 0.01  # "Anna.Schmidt@Example.com": valid, needs lower-casing
    u = rng.random(n)
    c.phone_kind = np.select([u < 0.30, u < 0.955, u < 0.985], [0, 1, 2], 3)  # none, E.164, national, invalid
    c.phone_number = rng.integers(0, 10**9, n)
    c.sms_ok = c.phone_kind == 1
    c.email_sub = (c.email_state != 1) & (rng.random(n) < p.email_subscribed) & ~c.test
    c.sms_sub = c.sms_ok & (rng.random(n) < p.sms_subscribed) & ~c.test
    c.first_name = c.country * cat.NAMES_PER_COUNTRY + rng.integers(0, cat.NAMES_PER_COUNTRY, n)
    c.last_name = c.country * cat.NAMES_PER_COUNTRY + rng.integers(0, cat.NAMES_PER_COUNTRY, n)
    c.first_name[c.test] = len(cat.FIRST_NAME_LIST) - 1
    c.last_name[c.test] = len(cat.LAST_NAME_LIST) - 1
    c.postal_number = rng.integers(0, 10**6, n)
    c.postal_missing = rng.random(n) < 0.01
    # account created at checkout a few minutes before the first order (or at sign-up)
    c.first_order = c.acquired + rng.uniform(60, 1800, n)
    c.first_order = np.where(c.first_order < cal.t1, c.first_order, np.inf)
    c.created = np.minimum(c.acquired, c.first_order - 30)
    # preference-centre unsubscribes (no message event): time uniform over the rest of the period
    c.pref_unsub = np.where(c.email_sub & (rng.random(n) < p.preference_unsubscribe),
                            c.created + rng.random(n) * (cal.t1 - c.created), np.inf)
    return c


def simulate_orders(rng: np.random.Generator, c: SimpleNamespace, cal: Calendar, p: Params) -> SimpleNamespace:
    """Run the purchase process round by round; return one row per order sorted by customer, time."""
    idx = np.flatnonzero(c.buyer & np.isfinite(c.first_order))
    t = c.first_order[idx]
    res_normal = np.cumsum(p.resolution_normal)[:2]
    res_peak = np.cumsum(p.resolution_peak)[:2]
    haz_c = np.asarray(p.hazard_complaint)
    nps_res = np.asarray(p.nps_resolution)
    parts: list[dict[str, np.ndarray]] = []
    k = 0
    # run at least one (possibly empty) round so the result has every column even with no buyers
    while (idx.size or k == 0) and k < p.max_orders:
        m = idx.size
        country = c.country[idx]
        test = c.test[idx]
        channel = np.where(rng.random(m) < 0.8, c.pref_channel[idx],
                           rng.choice(len(cat.SALES_CHANNELS), m, p=cat.SALES_CHANNEL_WEIGHTS))
        cancelled = rng.random(m) < np.where(test, 0.2, p.cancel_rate)
        pos = (channel == cat.POS) & ~cancelled
        ship = ~cancelled & ~pos
        category = np.where(rng.random(m) < 0.6, c.fav_category[idx],
                            rng.choice(len(cat.CATEGORIES), m, p=cat.CATEGORY_WEIGHTS))
        slot = np.minimum((rng.random(m)[:, None] > cat.CARRIER_CUM[country]).sum(axis=1), cat.MAX_CARRIERS - 1)
        carrier = cat.CARRIER_IDX[country, slot]
        day = np.floor(t / DAY)
        peak = cal.peak[cal.day_index(t)]
        promised_day = day + cat.COUNTRY_PROMISE[country] + rng.integers(0, 2, m)
        shipped = t + HOUR * (0.5 + rng.gamma(2.0, 6.0, m))
        late_draw = rng.random(m) < cat.CARRIER_LATE[country, slot] * np.where(peak, p.peak_late_factor, 1.0)
        earliest = np.maximum(np.floor(shipped / DAY) + 1, day + 1)
        on_time_day = earliest + np.floor(rng.random(m) * np.maximum(promised_day - earliest + 1, 1))
        late_day = promised_day + rng.geometric(0.5, m)
        deliver_day = np.where(late_draw, np.maximum(late_day, earliest), on_time_day)
        late = ship & (deliver_day > promised_day)  # includes orders that left the warehouse too late
        delivered = deliver_day * DAY + rng.uniform(8 * HOUR, 19 * HOUR, m)
        delivered = np.where(pos, t, np.where(ship, delivered, np.inf))
        damaged = ship & (rng.random(m) < p.damaged_rate)
        wrong = ship & ~damaged & (rng.random(m) < p.wrong_item_rate)
        bad_item = damaged | wrong
        delivered_ok = ~cancelled
        returned = delivered_ok & ~test & (rng.random(m) < cat.CATEGORY_RETURN[category]
                                           + np.where(bad_item, 0.5, 0.0) + np.where(late, 0.05, 0.0))
        return_requested = delivered + DAY * rng.uniform(1, 21, m)
        wismo = ship & (rng.random(m) < np.where(late, p.wismo_if_late, p.wismo_if_on_time))
        cum = np.where(peak[:, None], res_peak, res_normal)  # support is slower in the peak
        res_late = _resolution(rng, late & (rng.random(m) < p.complaint_if_late), cum)
        res_damaged = _resolution(rng, damaged & (rng.random(m) < p.complaint_if_damaged), cum)
        res_wrong = _resolution(rng, wrong & (rng.random(m) < p.complaint_if_damaged), cum)
        res_refund = _resolution(rng, returned & (rng.random(m) < p.complaint_if_return), cum)
        worst = np.maximum.reduce([res_late, res_damaged, res_wrong, res_refund])
        flows = delivered_ok & c.email_ok[idx] & ~test & (channel != cat.MARKETPLACE)
        how_to = flows & cat.CATEGORY_GUIDE[category] & (rng.random(m) < p.how_to_share)
        thank_you = flows & (rng.random(m) < (p.thank_you_first if k == 0 else p.thank_you_repeat))
        nps = np.clip(np.rint(p.nps_base + p.nps_trait_sd * c.trait[idx] + p.nps_late * late
                              + p.nps_damaged * bad_item + nps_res[worst]
                              + rng.normal(0.0, p.nps_noise_sd, m)), 0, 10).astype(np.int8)
        hazard = (haz_c[worst]
                  * np.where(nps <= 6, p.hazard_detractor, np.where(nps >= 9, p.hazard_promoter, 1.0))
                  * np.where(returned, p.hazard_returned, 1.0)
                  * np.where(how_to, p.hazard_how_to, 1.0)
                  * np.where(thank_you, p.hazard_thank_you, 1.0)
                  * first_order_hazard(category, k, p.first_category, p.first_category_hazard))
        # a cancelled order is no purchase: no experience, no dropout draw
        dies = ~cancelled & (rng.random(m) < np.minimum(c.dropout[idx] * hazard, 0.98))
        gap = rng.exponential(1.0, m) / c.rate[idx]
        nxt = cal.shape_hours(cal.unwarp(cal.warp(t) + gap))
        nxt = np.maximum(nxt, t + 600.0)
        parts.append(dict(
            cust=idx, k=np.full(m, k, dtype=np.int64), t=t, channel=channel, cancelled=cancelled, pos=pos,
            ship=ship, category=category, carrier=np.where(ship, carrier, -1), promised_day=promised_day,
            shipped=np.where(ship, shipped, np.inf), delivered=delivered, late=late, damaged=damaged,
            wrong=wrong, returned=returned, return_requested=np.where(returned, return_requested, np.inf),
            wismo=wismo, res_late=res_late, res_damaged=res_damaged, res_wrong=res_wrong,
            res_refund=res_refund, worst=worst, how_to=how_to, thank_you=thank_you, nps=nps, peak=peak,
            dies=dies,
        ))
        keep = ~dies & (nxt < cal.t1)
        idx, t = idx[keep], nxt[keep]
        k += 1
    o = SimpleNamespace()
    names = list(parts[0])
    for name in names:
        setattr(o, name, np.concatenate([part[name] for part in parts]))
    order = np.lexsort((o.k, o.cust))
    for name in names:
        setattr(o, name, getattr(o, name)[order])
    o.n = len(o.cust)
    # customer -> first order row and order count (orders are sorted by customer)
    o.count = np.bincount(o.cust, minlength=c.n)
    o.first_row = np.concatenate([[0], np.cumsum(o.count)[:-1]])
    # the next order of the same customer (time), for "repurchase after" and win-back timing
    same_next = np.zeros(o.n, dtype=bool)
    same_next[:-1] = o.cust[1:] == o.cust[:-1]
    o.next_t = np.where(same_next, np.roll(o.t, -1), np.inf)
    return o


def _resolution(rng: np.random.Generator, complaint: np.ndarray, cum: np.ndarray) -> np.ndarray:
    """Resolution class per row: 0 no complaint, 1 fast (<48h), 2 slow, 3 unresolved."""
    u = rng.random(len(complaint))
    cls = 1 + (u > cum[:, 0]) + (u > cum[:, 1])
    return np.where(complaint, cls, 0).astype(np.int8)


def choose_erasures(rng: np.random.Generator, c: SimpleNamespace, o: SimpleNamespace, cal: Calendar,
                    p: Params) -> np.ndarray:
    """Erasure request times (inf = none): some lapsed customers ask to be forgotten."""
    last = c.created.copy()
    has = o.count > 0
    last[has] = o.t[(o.first_row + o.count - 1)[has]]
    when = last + DAY * rng.uniform(60, 400, c.n)
    pick = (rng.random(c.n) < p.erasure_share) & ~c.test & (when < cal.t1)
    return np.where(pick, when, np.inf)
