"""Turn one simulated chunk (customers, orders, experiences) into the 8 landing sources.

Each `build_*` function takes its own random generator (so one source's draws never shift
another's) and the chunk context, and returns a `Part` for the writer. Builders run in a fixed
order because later sources read what earlier ones decided: items set order amounts, returns
set which orders show as returned, tickets feed support messages and ticket surveys, messages
feed survey responses, reviews and the customers' consent state.

Everything is vectorised over rows; times are int64 epoch seconds with NULL (-1) for events
that have not happened by the end of the period (or after a customer's erasure request).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pyarrow as pa

from pipelines.generate import catalog as cat
from pipelines.generate.core import DAY, HOUR, NULL, black_friday, to_int_times
from pipelines.generate.journeys import plant_next_products
from pipelines.generate.writers import Part, date_col, dict_col, id_sql, int_col, ts_col

Rng = np.random.Generator


def expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For children counted per parent: the parent of each child and its position (0-based)."""
    counts = np.asarray(counts, dtype=np.int64)
    parent = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    return parent, np.arange(len(parent)) - starts[parent]


def _choice_rows(rng: Rng, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row from a per-row probability matrix."""
    cum = np.cumsum(probs, axis=1)
    return np.minimum((rng.random(len(probs))[:, None] > cum).sum(axis=1), probs.shape[1] - 1)


def _cutoff(ctx: SimpleNamespace, cust: np.ndarray) -> np.ndarray:
    """Per row: the time after which nothing of this customer appears (period end or erasure)."""
    return ctx.cutoff[cust]


# --- order_items (and order amounts) -----------------------------------------------------------

DISCOUNT_CODES = ["WELCOME10", "BLACKFRIDAY20", "XMAS15", "SUMMER10", "LOYALTY5", "FRIENDS15", "TEST100"]
DISCOUNT_PCT = np.array([10, 20, 15, 10, 5, 15, 100])


def build_items(rng: Rng, ctx: SimpleNamespace) -> Part:
    """Order lines from the catalogue at the customer's price level; sets the order amounts."""
    o, c, p, cal, catl = ctx.o, ctx.c, ctx.p, ctx.cal, ctx.catalogue
    country = c.country[o.cust]
    currency = cat.COUNTRY_CURRENCY[country]
    nlines = 1 + np.minimum(rng.poisson(0.55, o.n), 5)
    row, line = expand(nlines)
    nl = len(row)
    other = rng.choice(len(cat.CATEGORIES), nl, p=cat.CATEGORY_WEIGHTS)
    category = np.where((line == 0) | (rng.random(nl) < 0.5), o.category[row], other)
    # Gamma-Gamma-like spend: each line's price scatters around the customer's price level;
    # the nearest catalogue product of the category at that price is picked.
    target = rng.gamma(p.line_price_shape, c.spend[o.cust[row]] / p.line_price_shape) * 100
    keys = catl.category * 1e9 + catl.price_eur
    pos = np.searchsorted(keys, category * 1e9 + target) - rng.integers(0, 2, nl)
    lo = catl.start[category]
    product = np.clip(pos, lo, lo + catl.count[category] - 1)
    # planted product journeys (affinities, consumable re-buys): a separate step, own random stream
    product = plant_next_products(ctx.journey_rng, o, row, line, product, p.affinity_share, p.rebuy_share)
    quantity = 1 + (rng.random(nl) < 0.12) + (rng.random(nl) < 0.04)
    unit = catl.price[product, currency[row]]
    starts = np.cumsum(nlines) - nlines
    subtotal = np.add.reduceat(quantity * unit, starts) if nl else np.zeros(0, dtype=np.int64)

    day = cal.day_index(o.t)
    month, dom = cal.month_of_day[day], cal.dom_of_day[day]
    test = c.test[o.cust]
    u1, u2, u3 = rng.random(o.n), rng.random(o.n), rng.random(o.n)
    code = np.select(
        [test & (u1 < 0.6),
         ~test & cal.black_friday_week[day] & (u1 < 0.45),
         ~test & (month == 11) & (dom <= 20) & (u1 < 0.20),
         ~test & (month == 6) & (u1 < 0.15),
         ~test & (o.k == 0) & (u2 < 0.35),
         ~test & (o.k >= 3) & (u2 < 0.20),
         ~test & (u3 < 0.04)],
        [6, 1, 2, 3, 0, 4, 5], -1)
    discount = np.where(code >= 0, np.rint(subtotal * DISCOUNT_PCT[np.maximum(code, 0)] / 100.0), 0)
    discount = discount.astype(np.int64)
    free = o.pos | (code == 6) | (subtotal - discount >= cat.FREE_SHIPPING_FROM[currency])
    shipping = np.where(free, 0, cat.SHIPPING_FEE[currency])
    tax = np.rint(cat.COUNTRY_TAX[country] * (subtotal - discount + shipping)).astype(np.int64)
    o.subtotal, o.discount, o.shipping, o.tax = subtotal, discount, shipping, tax
    o.total = subtotal - discount + shipping + tax
    o.discount_code, o.currency, o.nlines, o.item_start = code, currency, nlines, starts
    ctx.item_product = product

    table = pa.table({
        "oid": (o.row_id[row]),
        "line_number": line + 1,
        "product_id": dict_col(product, catl.product_id),
        "product_name": dict_col(product, catl.product_name),
        "category": dict_col(catl.category[product], cat.CATEGORY_NAMES),
        "quantity": quantity.astype(np.int64),
        "unit_price": unit,
    })
    return Part(table, {"order_id": id_sql("oid", "order")})


# --- returns -----------------------------------------------------------------------------------------

def build_returns(rng: Rng, ctx: SimpleNamespace) -> Part:
    """Return requests of returned orders; sets which orders show as `returned`."""
    o, cal = ctx.o, ctx.cal
    t1 = cal.t1
    rows = np.flatnonzero(o.returned & (o.return_requested < _cutoff(ctx, o.cust)))
    n = len(rows)
    req = o.return_requested[rows]
    u = rng.random(n)
    other = rng.choice([2, 4, 6], n, p=[0.3, 0.5, 0.2])  # not_as_described, changed_mind, other
    reason = np.select(
        [o.damaged[rows], o.wrong[rows], o.late[rows] & (u < 0.35),
         cat.CATEGORY_SIZE_FIT[o.category[rows]] & (u < 0.6)],
        [0, 1, 3, 5], other)
    approved = req + HOUR * rng.uniform(2, 48, n)
    received = approved + DAY * rng.uniform(2, 8, n)
    refunded = received + DAY * rng.uniform(0.5, 4, n) + np.where(o.res_refund[rows] > 0,
                                                                    DAY * rng.uniform(8, 20, n), 0.0)
    rejected = (rng.random(n) < 0.05) & (reason > 1)
    status = np.where(rejected, np.where(approved < t1, 4, 0),
                      np.select([refunded < t1, received < t1, approved < t1], [3, 2, 1], 0))
    partial = (reason > 3) & (o.nlines[rows] > 1) & (rng.random(n) < 0.4)
    total = o.total[rows]
    refund = np.where(partial, np.rint(total * rng.uniform(0.3, 0.9, n)), total).astype(np.int64)
    last_event = np.select([status == 3, status == 2, (status == 1) | (status == 4)],
                           [refunded, received, approved], req)
    o.return_visible = np.zeros(o.n, dtype=bool)
    o.return_visible[rows] = status != 4
    o.return_last = np.full(o.n, -np.inf)
    o.return_last[rows] = last_event
    order = np.lexsort((req, o.cust[rows]))
    rows, req, reason, status, refund, refunded = (a[order] for a in (rows, req, reason, status, refund, refunded))
    table = pa.table({
        "rid": np.arange(n, dtype=np.int64) + ctx.base["return"],
        "oid": o.row_id[rows],
        "requested_at": ts_col(to_int_times(req, t1)),
        "reason": dict_col(reason, cat.RETURN_REASONS),
        "refund_amount": int_col(refund, null=status != 3),
        "refunded_at": ts_col(to_int_times(refunded, t1, status == 3)),
        "status": dict_col(status, cat.RETURN_STATUSES),
    })
    return Part(table, {"return_id": id_sql("rid", "return"), "order_id": id_sql("oid", "order")})


# --- orders ------------------------------------------------------------------------------------------

def build_orders(rng: Rng, ctx: SimpleNamespace) -> Part:
    """Orders with their status as of the end of the period."""
    o, cal = ctx.o, ctx.cal
    t1 = cal.t1
    paid = o.t + rng.uniform(5, 300, o.n)
    cancelled_at = o.t + rng.uniform(600, 20 * HOUR, o.n)
    shipped = to_int_times(o.shipped, t1)
    delivered = to_int_times(o.delivered, t1)
    cancelled = o.cancelled & (cancelled_at < t1)
    status = np.select(
        [cancelled, o.return_visible, delivered >= 0, shipped >= 0, ~o.cancelled & (paid < t1)],
        [4, 5, 3, 2, 1], 0)
    events = np.stack([
        o.t,
        np.where(~o.cancelled & (paid < t1), paid, -np.inf),
        np.where(cancelled, cancelled_at, -np.inf),
        np.where(shipped >= 0, shipped, -np.inf),
        np.where(delivered >= 0, delivered, -np.inf),
        np.where(o.return_last < t1, o.return_last, -np.inf),
    ])
    updated = to_int_times(events.max(axis=0), t1)
    promised = np.where(o.pos, NULL, o.promised_day).astype(np.int64)
    table = pa.table({
        "oid": o.row_id,
        "cid": o.cust + ctx.base["customer"],
        "ordered_at": ts_col(to_int_times(o.t, t1)),
        "status": dict_col(status, cat.ORDER_STATUSES),
        "currency": dict_col(o.currency, cat.CURRENCIES),
        "subtotal": o.subtotal, "discount": o.discount, "shipping": o.shipping, "tax": o.tax,
        "total": o.total,
        "sales_channel": dict_col(o.channel, cat.SALES_CHANNELS),
        "discount_code": dict_col(o.discount_code, DISCOUNT_CODES),
        "promised_delivery_date": date_col(promised),
        "shipped_at": ts_col(shipped),
        "delivered_at": ts_col(delivered),
        "carrier": dict_col(np.where(shipped >= 0, o.carrier, -1), cat.CARRIERS),
        "updated_at": ts_col(updated),
    })
    return Part(table, {"order_id": id_sql("oid", "order"), "customer_id": id_sql("cid", "customer")})


# --- support_tickets ---------------------------------------------------------------------------------

# first-response time by ticket channel (median hours): email, chat, phone, social, web_form
_FIRST_RESPONSE_H = np.array([5.0, 0.15, 0.03, 2.0, 6.0])
_MSG_CHANNEL_OF_TICKET = np.array([cat.EMAIL, cat.CHAT, cat.PHONE_CH, cat.SOCIAL, cat.EMAIL])


def build_tickets(rng: Rng, ctx: SimpleNamespace) -> Part:
    """Helpdesk tickets: WISMO and complaints from the order experience, plus everyday questions."""
    o, c, cal = ctx.o, ctx.c, ctx.cal
    t1 = cal.t1
    cats = {name: i for i, name in enumerate(cat.TICKET_CATEGORIES)}
    types = {name: i for i, name in enumerate(cat.TICKET_TYPES)}
    complaint_, question, request = types["complaint"], types["question"], types["request"]
    pieces = []  # (order rows or -1, customer, category, type, created, resolution class)

    def add(rows, cust, category, ttype, created, res):
        pieces.append((rows, cust, np.full(len(cust), category), np.full(len(cust), ttype), created, res))

    def everyday(n: int) -> np.ndarray:  # questions and requests are mostly answered quickly
        return _choice_rows(rng, np.tile([0.70, 0.25, 0.05], (n, 1))).astype(np.int8) + 1

    r = np.flatnonzero(o.wismo)
    late_created = (o.promised_day[r] + 1) * DAY + HOUR * rng.uniform(6, 20, len(r))
    on_time_created = o.shipped[r] + rng.uniform(0.2, 0.9, len(r)) * (o.delivered[r] - o.shipped[r])
    created = np.where(o.late[r], late_created, on_time_created)
    created = np.maximum(np.minimum(created, o.delivered[r] - 1800), o.t[r] + HOUR)
    add(r, o.cust[r], cats["wismo"], question, created, everyday(len(r)))
    for flag, name, lo, hi in ((o.res_late, "late_delivery", 1, 48), (o.res_damaged, "damaged_item", 1, 72),
                               (o.res_wrong, "wrong_item", 1, 72)):
        r = np.flatnonzero(flag > 0)
        add(r, o.cust[r], cats[name], complaint_, o.delivered[r] + HOUR * rng.uniform(lo, hi, len(r)), flag[r])
    r = np.flatnonzero(o.res_refund > 0)
    add(r, o.cust[r], cats["return_refund"], complaint_, o.return_requested[r] + DAY * rng.uniform(8, 20, len(r)),
        o.res_refund[r])
    r = np.flatnonzero(~o.cancelled & (rng.random(o.n) < 0.03))
    add(r, o.cust[r], cats["product_question"], question, o.delivered[r] + DAY * rng.uniform(1, 30, len(r)),
        everyday(len(r)))
    r = np.flatnonzero(~o.cancelled & (rng.random(o.n) < 0.01))
    add(r, o.cust[r], cats["billing"], request, o.t[r] + DAY * rng.uniform(1, 20, len(r)), everyday(len(r)))
    r = np.flatnonzero(rng.random(o.n) < 0.007)
    add(r, o.cust[r], cats["other"], request, o.t[r] + DAY * rng.uniform(0, 10, len(r)), everyday(len(r)))
    cu = np.flatnonzero(rng.random(c.n) < 0.02)  # pre-sales questions, no order
    add(np.full(len(cu), -1), cu, cats["product_question"], question,
        c.created[cu] + DAY * rng.uniform(0, 400, len(cu)), everyday(len(cu)))

    rows, cust, category, ttype, created, res = (np.concatenate(x) for x in zip(*pieces, strict=True))
    keep = created < _cutoff(ctx, cust)
    rows, cust, category, ttype, created, res = (a[keep] for a in (rows, cust, category, ttype, created, res))
    order = np.lexsort((created, cust))
    rows, cust, category, ttype, created, res = (a[order] for a in (rows, cust, category, ttype, created, res))
    n = len(cust)

    channel = rng.choice(len(cat.TICKET_CHANNELS), n, p=cat.TICKET_CHANNEL_WEIGHTS)
    complaint = ttype == complaint_
    priority = np.where(complaint, _choice_rows(rng, np.tile([0.05, 0.55, 0.30, 0.10], (n, 1))),
                        _choice_rows(rng, np.tile([0.35, 0.60, 0.05, 0.0], (n, 1))))
    fr_delay = HOUR * _FIRST_RESPONSE_H[channel] * rng.lognormal(0.0, 0.8, n)
    fr_delay = np.where(res == 1, np.minimum(fr_delay, 36 * HOUR), fr_delay)
    no_response = (res == 3) & (rng.random(n) < 0.25)
    # fast: within 48h of creation; slow: after 48h, typically days
    fast_delay = fr_delay + (47.9 * HOUR - fr_delay) * rng.random(n) ** 2
    slow_delay = np.maximum(48 * HOUR + DAY * np.minimum(rng.lognormal(np.log(2.5), 0.7, n), 40),
                            fr_delay + HOUR)
    resolved = np.select([res == 1, res == 2], [created + fast_delay, created + slow_delay], np.inf)
    first_response = np.where(no_response, np.inf, created + fr_delay)
    cutoff = _cutoff(ctx, cust)
    created_i = to_int_times(created, t1)
    fr_i = to_int_times(first_response, t1, first_response < cutoff)
    resolved_i = to_int_times(resolved, t1, resolved < cutoff)
    replies = np.select([res == 1, res == 2], [1 + rng.poisson(0.5, n), 2 + rng.poisson(1.5, n)],
                        1 + rng.poisson(1.0, n))
    replies = np.where(fr_i >= 0, replies, 0)
    u = rng.random(n)
    reopen = np.select([res == 2, res == 3], [(u < 0.2).astype(int) + (u < 0.05), (u < 0.1).astype(int)], 0)
    status = np.select([resolved_i >= 0, fr_i >= 0], [np.where(resolved + 4 * DAY < t1, 3, 2), 1], 0)
    rated_at = resolved + HOUR * rng.uniform(1, 48, n)
    rated = (resolved_i >= 0) & (res <= 2) & (rng.random(n) < 0.35) & (rated_at < cutoff)
    score = np.where(res == 1, _choice_rows(rng, np.tile([0.0, 0.0, 0.1, 0.3, 0.6], (n, 1))),
                     _choice_rows(rng, np.tile([0.12, 0.28, 0.35, 0.25, 0.0], (n, 1)))) + 1
    updated = np.maximum.reduce([created_i, fr_i, resolved_i, to_int_times(rated_at, t1, rated)])
    ctx.tk = SimpleNamespace(n=n, rows=rows, cust=cust, category=category, channel=channel, res=res,
                             created=created_i, first_response=fr_i, resolved=resolved_i)
    table = pa.table({
        "tid": np.arange(n, dtype=np.int64) + ctx.base["ticket"],
        "cid": cust + ctx.base["customer"],
        "oid": int_col(np.where(rows >= 0, ctx.o.row_id[np.maximum(rows, 0)] if o.n else 0, 0), null=rows < 0),
        "channel": dict_col(channel, cat.TICKET_CHANNELS),
        "ticket_type": dict_col(ttype, cat.TICKET_TYPES),
        "category": dict_col(category, cat.TICKET_CATEGORIES),
        "priority": dict_col(priority, cat.PRIORITIES),
        "status": dict_col(status, cat.TICKET_STATUSES),
        "created_at": ts_col(created_i),
        "first_response_at": ts_col(fr_i),
        "resolved_at": ts_col(resolved_i),
        "agent_replies": replies.astype(np.int64),
        "reopen_count": reopen.astype(np.int64),
        "satisfaction_score": int_col(score, null=~rated),
        "updated_at": ts_col(updated),
    })
    return Part(table, {"ticket_id": id_sql("tid", "ticket"), "customer_id": id_sql("cid", "customer"),
                        "order_id": id_sql("oid", "order")})


# --- messages ----------------------------------------------------------------------------------------

def campaign_calendar(cal) -> SimpleNamespace:
    """The shop's marketing calendar: monthly newsletter, seasonal promotions, weekly deals."""
    times, names, segment, sms = [], [], [], []

    def add(day: np.datetime64, hour: int, name: str, seg: int = 0, by_sms: bool = False):
        t = float(day.astype("datetime64[s]").astype(np.int64)) + hour * HOUR
        if cal.t0 <= t < cal.t1:
            times.append(t)
            names.append(name)
            segment.append(seg)
            sms.append(by_sms)

    first_month = np.datetime64(cal.start, "M")
    for m in range(cal.nmonths):
        month = first_month + m
        d1 = month.astype("datetime64[D]")
        dow = (int(d1.astype(np.int64)) + 3) % 7
        add(d1 + (3 - dow) % 7, 9, f"newsletter-{month}")
    for year in range(cal.start.year, cal.end.year + 1):
        y = np.datetime64(f"{year}-01-01")
        bf = np.datetime64(int(_bf_day(year)), "D")
        add(y + 4, 10, f"january-sale-{year}")
        add(np.datetime64(f"{year}-03-15"), 10, f"spring-sale-{year}")
        add(np.datetime64(f"{year}-07-01"), 10, f"summer-sale-{year}", by_sms=True)
        add(np.datetime64(f"{year}-07-08"), 10, f"summer-sale-last-chance-{year}")
        add(np.datetime64(f"{year}-09-02"), 10, f"back-to-school-{year}")
        add(np.datetime64(f"{year}-11-11"), 10, f"singles-day-{year}")
        add(bf - 4, 10, f"black-friday-preview-{year}")
        add(bf, 7, f"black-friday-{year}", by_sms=True)
        add(bf + 3, 7, f"cyber-monday-{year}")
        for dday, by_sms in ((5, False), (12, True), (18, False)):
            add(np.datetime64(f"{year}-12-{dday:02d}"), 10, f"christmas-{year}-12-{dday:02d}", by_sms=by_sms)
        # weekly deals for the high-frequency segment in the sale months
        for month in (3, 7, 11, 12):
            d1 = np.datetime64(f"{year}-{month:02d}-01")
            dow = (int(d1.astype(np.int64)) + 3) % 7
            tuesday = d1 + (1 - dow) % 7
            while tuesday.astype("datetime64[M]") == d1.astype("datetime64[M]"):
                add(tuesday, 16, f"weekly-deals-{tuesday}", seg=1)
                tuesday = tuesday + 7
    order = np.argsort(times, kind="stable")
    return SimpleNamespace(t=np.array(times)[order], name=[names[i] for i in order],
                           segment=np.array(segment, dtype=np.int8)[order], sms=np.array(sms)[order])


def _bf_day(year: int) -> int:
    """Epoch day of Black Friday in `year`."""
    return int(black_friday(np.array([np.datetime64(f"{year}-11-01").astype(np.int64)]))[0])


FLOW_CAMPAIGNS = (["order-confirmation", "shipping-update", "out-for-delivery", "delivered",
                   "post-purchase-thank-you", "review-request", "nps-survey", "csat-delivery-survey",
                   "support-csat-survey", "support-ces-survey", "cross-sell-14d", "winback-120d",
                   "winback-240d", "loyalty-3rd-order", "loyalty-5th-order", "loyalty-10th-order"]
                  + [f"how-to-{n}" for n in cat.CATEGORY_NAMES] + [f"care-{n}" for n in cat.CATEGORY_NAMES])


class _Messages:
    """Accumulates message rows by kind before they are engaged, filtered and sorted.

    Compact dtypes: tens of millions of rows pass through here at full scale.
    """

    DTYPES = {"cust": np.int32, "row": np.int32, "channel": np.int8, "type": np.int8, "campaign": np.int16,
              "sent": np.float64, "inbound": np.bool_, "marketing": np.bool_, "survey": np.int8,
              "ticket": np.int32}

    def __init__(self):
        self.cols: dict[str, list[np.ndarray]] = {k: [] for k in self.DTYPES}

    def add(self, cust, row, channel, mtype, campaign, sent, inbound=False, marketing=False, survey=-1,
            ticket=-1):
        n = len(cust)
        for key, value in (("cust", cust), ("row", row), ("channel", channel), ("type", mtype),
                           ("campaign", campaign), ("sent", sent), ("inbound", inbound),
                           ("marketing", marketing), ("survey", survey), ("ticket", ticket)):
            self.cols[key].append(np.broadcast_to(np.asarray(value, dtype=self.DTYPES[key]), (n,)))

    def sorted_arrays(self, t0: float, cutoff: np.ndarray) -> SimpleNamespace:
        """All rows sent within [t0, the customer's cutoff), sorted by customer then time."""
        cust = np.concatenate(self.cols["cust"])
        sent = np.concatenate(self.cols["sent"])
        idx = np.flatnonzero((sent >= t0) & (sent < cutoff[cust]))
        key = cust[idx].astype(np.int64) * (1 << 32) + (sent[idx] - t0).astype(np.int64)
        order = idx[np.argsort(key, kind="stable")]
        m = SimpleNamespace(cust=cust[order], sent=sent[order])
        for k, parts in self.cols.items():
            if k not in ("cust", "sent"):
                setattr(m, k, np.concatenate(parts)[order])
        return m


def build_messages(rng: Rng, ctx: SimpleNamespace) -> Part:
    """Post-purchase flows, support replies, survey invites and marketing with engagement."""
    o, c, cal, tk = ctx.o, ctx.c, ctx.cal, ctx.tk
    t1 = cal.t1
    camp = campaign_calendar(cal)
    ctx.campaign_names = FLOW_CAMPAIGNS + camp.name
    flow = {name: i for i, name in enumerate(FLOW_CAMPAIGNS)}
    mt = cat.MT
    msgs = _Messages()
    cust = o.cust
    has_email = c.email_state[cust] != 1
    sms_ok, app = c.sms_ok[cust], c.app_user[cust]
    shop = o.channel != cat.MARKETPLACE  # marketplace orders are messaged by the marketplace
    delivered_ok = ~o.cancelled
    test = c.test[cust]

    def pick_channel(push_p: float, sms_p: float) -> np.ndarray:
        u = rng.random(o.n)
        return np.select([app & (u < push_p), sms_ok & (u < push_p + sms_p), has_email],
                         [cat.PUSH, cat.SMS, cat.EMAIL], -1)

    def add_flow(mask, channel, mtype, campaign, sent):
        mask = mask & (channel >= 0)
        r = np.flatnonzero(mask)
        msgs.add(cust[r], r, channel[r], mt[mtype], campaign if np.isscalar(campaign) else campaign[r], sent[r])

    email = np.where(has_email, cat.EMAIL, -1)
    confirm_channel = np.where(has_email, cat.EMAIL, np.where(sms_ok, cat.SMS, -1))
    add_flow(shop & (~o.pos | (rng.random(o.n) < 0.5)), confirm_channel, "order_confirmation",
             flow["order-confirmation"], o.t + rng.uniform(5, 120, o.n))
    add_flow(o.ship & shop & (rng.random(o.n) < 0.95), pick_channel(0.5, 0.2), "shipping_update",
             flow["shipping-update"], o.shipped + rng.uniform(60, 2 * HOUR, o.n))
    ofd_sent = np.maximum(o.delivered - HOUR * rng.uniform(1, 6, o.n), o.shipped + 60)
    add_flow(o.ship & shop & (rng.random(o.n) < 0.5), pick_channel(0.4, 0.5), "out_for_delivery",
             flow["out-for-delivery"], ofd_sent)
    add_flow(o.ship & shop & (rng.random(o.n) < 0.7), pick_channel(0.5, 0.2), "delivered",
             flow["delivered"], o.delivered + rng.uniform(60, 1800, o.n))
    add_flow(o.thank_you, email, "thank_you", flow["post-purchase-thank-you"],
             o.delivered + HOUR * rng.uniform(20, 28, o.n))
    add_flow(o.how_to, email, "how_to_guide", flow["how-to-apparel"] + o.category,
             o.delivered + HOUR * rng.uniform(40, 60, o.n))
    flows_ok = delivered_ok & shop & c.email_ok[cust] & ~test
    add_flow(flows_ok & cat.CATEGORY_CARE[o.category] & (rng.random(o.n) < 0.4), email, "product_care",
             flow["care-apparel"] + o.category, o.delivered + DAY * rng.uniform(6, 8, o.n))
    review_requested = flows_ok & (rng.random(o.n) < 0.55)
    review_sent = o.delivered + DAY * rng.uniform(5, 9, o.n)
    add_flow(review_requested, email, "review_request", flow["review-request"], review_sent)
    ctx.review_requested, ctx.review_sent = review_requested, review_sent
    # survey invites after delivery: NPS (survey 0) or delivery CSAT (survey 1)
    invite = flows_ok & (rng.random(o.n) < 0.35)
    kind = (rng.random(o.n) < 0.3).astype(np.int8)
    r = np.flatnonzero(invite)
    msgs.add(cust[r], r, cat.EMAIL, mt["survey_invite"], flow["nps-survey"] + kind[r],
             o.delivered[r] + DAY * rng.uniform(2, 4, len(r)), survey=kind[r])

    # support: customer's inbound chat, first agent reply, satisfaction survey after resolution
    r = np.flatnonzero(tk.channel == 1)
    msgs.add(tk.cust[r], tk.rows[r], cat.CHAT, mt["other"], -1, tk.created[r].astype(float), inbound=True)
    r = np.flatnonzero(tk.first_response >= 0)
    msgs.add(tk.cust[r], tk.rows[r], _MSG_CHANNEL_OF_TICKET[tk.channel[r]], mt["support_reply"], -1,
             tk.first_response[r].astype(float))
    r = np.flatnonzero((tk.resolved >= 0) & c.email_ok[tk.cust] & ~c.test[tk.cust] & (rng.random(tk.n) < 0.5))
    kind = 2 + (rng.random(len(r)) < 0.3)  # 2 = support CSAT, 3 = support CES
    msgs.add(tk.cust[r], tk.rows[r], cat.EMAIL, mt["survey_invite"], flow["support-csat-survey"] + kind - 2,
             tk.resolved[r] + HOUR * rng.uniform(1, 3, len(r)), survey=kind, ticket=r)

    _marketing(rng, ctx, msgs, camp, flow)

    m = msgs.sorted_arrays(cal.t0, ctx.cutoff)
    m.cut = ctx.cutoff[m.cust]
    _engage(rng, ctx, m)
    _unsubscribe(rng, ctx, m)
    # survey invites are never dropped (not marketing): keep them for the survey builder
    inv = np.flatnonzero(m.survey >= 0)
    ctx.invites = SimpleNamespace(kind=m.survey[inv], row=m.row[inv], cust=m.cust[inv], sent=m.sent[inv],
                                  ticket=m.ticket[inv])
    keep = np.flatnonzero(~m.dropped)
    if len(keep) < len(m.cust):
        for k in ("cust", "row", "channel", "inbound", "type", "campaign", "sent", "delivered", "opened",
                  "clicked", "unsub"):
            setattr(m, k, getattr(m, k)[keep])
    n = len(m.cust)
    rows = m.row
    table = pa.table({
        "mid": np.arange(n, dtype=np.int64) + ctx.base["message"],
        "cid": m.cust + ctx.base["customer"],
        "oid": int_col(np.where(rows >= 0, o.row_id[np.maximum(rows, 0)] if o.n else 0, 0), null=rows < 0),
        "channel": dict_col(m.channel, cat.MSG_CHANNELS),
        "direction": dict_col(m.inbound.astype(np.int8), cat.DIRECTIONS),
        "message_type": dict_col(m.type, cat.MSG_TYPES),
        "campaign": dict_col(m.campaign, ctx.campaign_names),
        "sent_at": ts_col(to_int_times(m.sent, t1)),
        "delivered_at": ts_col(m.delivered),
        "opened_at": ts_col(m.opened),
        "clicked_at": ts_col(m.clicked),
        "unsubscribed_at": ts_col(m.unsub),
    })
    return Part(table, {"message_id": id_sql("mid", "message"), "customer_id": id_sql("cid", "customer"),
                        "order_id": id_sql("oid", "order")})


def _marketing(rng: Rng, ctx: SimpleNamespace, msgs: _Messages, camp: SimpleNamespace, flow: dict) -> None:
    """Campaign sends to subscribed, recently active customers plus triggered marketing flows."""
    o, c, p, cal = ctx.o, ctx.c, ctx.p, ctx.cal
    mt = cat.MT
    ncamp_flows = len(FLOW_CAMPAIGNS)
    has = o.count > 0
    last_order = np.full(c.n, -np.inf)
    last_order[has] = o.t[(o.first_row + o.count - 1)[has]]
    last_active = np.maximum(last_order, c.created)
    promo_type = np.array([mt["newsletter"] if name.startswith("newsletter") else mt["promotion"]
                           for name in camp.name], dtype=np.int64)

    def campaign_sends(eligible: np.ndarray, stop: np.ndarray, sms: bool) -> None:
        ct = camp.t
        sel = np.flatnonzero(camp.sms) if sms else np.arange(len(ct))
        ct = ct[sel]
        # sunset: campaigns stop `sunset_days` after the last order (or the sign-up)
        end = np.minimum(stop, last_active + p.sunset_days * DAY)
        s = np.searchsorted(ct, c.created, side="right")
        e = np.searchsorted(ct, end, side="left")
        counts = np.where(eligible, np.maximum(e - s, 0), 0)
        cu, pos = expand(counts)
        ci = s[cu] + pos
        keep = (camp.segment[sel][ci] == 0) | c.high_frequency[cu]
        cu, ci = cu[keep], ci[keep]
        gi = sel[ci]
        msgs.add(cu, -1, cat.SMS if sms else cat.EMAIL, promo_type[gi], ncamp_flows + gi,
                 camp.t[gi] + rng.uniform(0, 1800, len(cu)), marketing=True)

    email_ok = c.email_sub & c.email_ok & ~c.test
    email_stop = np.minimum(np.minimum(c.pref_unsub, ctx.erasure), cal.t1)
    campaign_sends(email_ok, email_stop, sms=False)
    campaign_sends(c.sms_sub & ~c.test, np.minimum(ctx.erasure, cal.t1), sms=True)

    # triggered marketing flows (email)
    ok = email_ok[o.cust]
    stop = email_stop[o.cust]
    cross = ok & ~o.cancelled & (o.channel != cat.MARKETPLACE) & (rng.random(o.n) < 0.2)
    sent = o.delivered + 14 * DAY + rng.uniform(0, HOUR, o.n)
    r = np.flatnonzero(cross & (sent < stop))
    msgs.add(o.cust[r], r, cat.EMAIL, mt["cross_sell"], flow["cross-sell-14d"], sent[r], marketing=True)
    gap = o.next_t - o.t
    for days, name, share in ((120, "winback-120d", 1.0), (240, "winback-240d", 0.6)):
        sent = o.t + days * DAY + HOUR * rng.uniform(9, 11, o.n)
        r = np.flatnonzero(ok & (gap > days * DAY) & (rng.random(o.n) < share) & (sent < stop))
        msgs.add(o.cust[r], r, cat.EMAIL, mt["winback_offer"], flow[name], sent[r], marketing=True)
    for k, name in ((2, "loyalty-3rd-order"), (4, "loyalty-5th-order"), (9, "loyalty-10th-order")):
        sent = o.t + 3 * DAY + HOUR * rng.uniform(0, 2, o.n)
        r = np.flatnonzero(ok & (o.k == k) & ~o.cancelled & (sent < stop))
        msgs.add(o.cust[r], r, cat.EMAIL, mt["loyalty"], flow[name], sent[r], marketing=True)


def _engage(rng: Rng, ctx: SimpleNamespace, m: SimpleNamespace) -> None:
    """Delivered / opened / clicked times by channel and message type; invalid emails bounce."""
    c, t1 = ctx.c, ctx.cal.t1
    n = len(m.cust)
    deliver_p, open_p, click_p = cat.engagement_tables()
    ch, ty = m.channel, m.type
    email = ch == cat.EMAIL
    deliverable = ~m.inbound & (~email | c.email_ok[m.cust])
    delivered = m.sent + rng.uniform(1.0, 12.0, n)
    is_delivered = deliverable & (rng.random(n) < deliver_p[ch, ty]) & (delivered < m.cut)
    is_opened = is_delivered & (rng.random(n) < open_p[ch, ty])
    is_clicked = is_delivered & (rng.random(n) < click_p[ch, ty]) & (is_opened | (ch == cat.SMS))
    # delays only for the rows that need one
    opened = np.full(n, np.inf)
    io = np.flatnonzero(is_opened)
    opened[io] = delivered[io] + HOUR * rng.lognormal(np.log(2.5), 1.3, len(io))
    clicked = np.full(n, np.inf)
    ic = np.flatnonzero(is_clicked)
    chc = ch[ic]
    clicked[ic] = np.where(chc == cat.EMAIL, opened[ic] + rng.uniform(5, 600, len(ic)),
                           np.where(chc == cat.PUSH, opened[ic] + rng.uniform(1, 5, len(ic)),
                                    delivered[ic] + 60 * rng.lognormal(np.log(10), 1.0, len(ic))))
    m.delivered = to_int_times(delivered, t1, is_delivered)
    m.opened_f = opened
    m.opened = to_int_times(opened, t1, opened < m.cut)
    m.clicked = to_int_times(clicked, t1, clicked < m.cut)


def _unsubscribe(rng: Rng, ctx: SimpleNamespace, m: SimpleNamespace) -> None:
    """Marketing pressure drives unsubscribes; nothing is sent on a channel after its unsubscribe."""
    c, p, cal = ctx.c, ctx.p, ctx.cal
    t1 = cal.t1
    n = len(m.cust)
    mk = np.flatnonzero(m.marketing)
    cust = m.cust[mk].astype(np.int64)
    key = cust * cal.nmonths + cal.month_index(m.sent[mk])
    pressure = np.bincount(key, minlength=c.n * cal.nmonths)[key]  # marketing messages that month
    prob = p.unsub_base * (1 + p.unsub_slope * np.maximum(pressure - p.unsub_free, 0))
    cand = mk[(m.delivered[mk] >= 0) & (rng.random(len(mk)) < prob)]
    email = m.channel[cand] == cat.EMAIL
    opened = m.opened_f[cand]
    when = np.where(email, np.where(np.isfinite(opened), opened, m.delivered[cand] + 30.0)
                    + rng.uniform(10, 600, len(cand)),
                    m.delivered[cand] + 60 * rng.lognormal(np.log(20), 0.8, len(cand)))
    ok = when < m.cut[cand]
    flagged, when = cand[ok], when[ok]
    m.unsub = np.full(n, NULL, dtype=np.int64)
    m.dropped = np.zeros(n, dtype=bool)
    ctx.unsub_time = {}
    for channel in (cat.EMAIL, cat.SMS):
        sel = m.channel[flagged] == channel
        f, w = flagged[sel], when[sel]
        first_sent = np.full(c.n, np.inf)
        np.minimum.at(first_sent, m.cust[f], m.sent[f])
        first = m.sent[f] == first_sent[m.cust[f]]
        f, w = f[first], w[first]
        unsub_at = np.full(c.n, np.inf)
        unsub_at[m.cust[f]] = w
        m.unsub[f] = to_int_times(w, t1)
        on_channel = mk[m.channel[mk] == channel]
        m.dropped[on_channel[m.sent[on_channel] > unsub_at[m.cust[on_channel]]]] = True
        ctx.unsub_time[channel] = unsub_at
    # an email opened only to unsubscribe still counts as opened
    need_open = (m.unsub >= 0) & (m.opened < 0) & (m.channel == cat.EMAIL)
    m.opened[need_open] = m.unsub[need_open] - 5
    del m.opened_f


# --- survey_responses ---------------------------------------------------------------------------------

def build_surveys(rng: Rng, ctx: SimpleNamespace) -> Part:
    """Answers to survey invites: NPS and CSAT after delivery, CSAT and CES after support."""
    o, inv, tk, cal = ctx.o, ctx.invites, ctx.tk, ctx.cal
    t1 = cal.t1
    kind, row, cust, sent = inv.kind, inv.row, inv.cust, inv.sent
    n = len(kind)
    rr = np.maximum(row, 0)
    order_survey = kind <= 1
    worst = np.where(row >= 0, o.worst[rr], 0) if o.n else np.zeros(n, dtype=np.int8)
    nps = np.where(row >= 0, o.nps[rr], 8) if o.n else np.zeros(n)
    # resolution class of the ticket an after-support survey is about
    ticket = inv.ticket
    ticket_res = np.where(ticket >= 0, tk.res[np.maximum(ticket, 0)] if tk.n else 1, 1)
    respond_p = np.where(order_survey, 0.22 + 0.05 * (worst > 0), 0.28)
    responded = sent + HOUR * np.minimum(rng.lognormal(np.log(5), 1.2, n), 14 * 24)
    answer = (rng.random(n) < respond_p) & (responded < _cutoff(ctx, cust))
    fast = ticket_res <= 1
    score = np.select(
        [kind == 0, kind == 1, kind == 2],
        [nps,
         np.clip(np.rint(1 + nps * 0.4 + rng.normal(0, 0.5, n)), 1, 5),
         np.clip(np.rint(np.where(fast, rng.normal(4.5, 0.6, n), rng.normal(3.1, 0.9, n))), 1, 5)],
        np.clip(np.rint(np.where(fast, rng.normal(6.0, 0.8, n), rng.normal(4.0, 1.2, n))), 1, 7),
    ).astype(np.int64)
    low = np.select([kind == 0, kind == 3], [score <= 6, score <= 3], score <= 2)
    high = np.select([kind == 0, kind == 3], [score >= 9, score >= 6], score >= 4)
    late = np.where(row >= 0, o.late[rr], False) if o.n else np.zeros(n, dtype=bool)
    bad_item = np.where(row >= 0, o.damaged[rr] | o.wrong[rr], False) if o.n else np.zeros(n, dtype=bool)
    keys = {k: i for i, k in enumerate(cat.COMMENT_KEYS)}
    bucket = np.select(
        [low & ~order_survey, low & late, low & bad_item, low & (worst >= 2), low,
         high & ~order_survey, high & (worst == 1), high],
        [keys["support_bad"], keys["late"], keys["damaged"], keys["support_bad"], keys["negative"],
         keys["support_good"], keys["support_good"], keys["positive"]],
        keys["neutral"])
    comment = cat.COMMENT_START[bucket] + (rng.random(n) * cat.COMMENT_COUNT[bucket]).astype(np.int64)
    comment = np.where(rng.random(n) < np.where(low, 0.45, 0.25), comment, -1)
    sel = np.flatnonzero(answer)
    order = sel[np.lexsort((responded[sel], cust[sel]))]
    k = len(order)
    stype = np.array([0, 1, 1, 2])[kind[order]]  # nps, csat, csat, ces
    rows = row[order]
    table = pa.table({
        "sid": np.arange(k, dtype=np.int64) + ctx.base["response"],
        "cid": cust[order] + ctx.base["customer"],
        "oid": int_col(np.where(rows >= 0, o.row_id[np.maximum(rows, 0)] if o.n else 0, 0), null=rows < 0),
        "survey_type": dict_col(stype, ["nps", "csat", "ces"]),
        "score": score[order],
        "comment": dict_col(comment[order], cat.COMMENT_LIST),
        "sent_at": ts_col(to_int_times(sent[order], t1)),
        "responded_at": ts_col(to_int_times(responded[order], t1)),
    })
    return Part(table, {"response_id": id_sql("sid", "response"), "customer_id": id_sql("cid", "customer"),
                        "order_id": id_sql("oid", "order")})


# --- reviews --------------------------------------------------------------------------------------------

def build_reviews(rng: Rng, ctx: SimpleNamespace) -> Part:
    """Product reviews after review requests, organically on the site, and on marketplaces."""
    o, c, cal, catl = ctx.o, ctx.c, ctx.cal, ctx.catalogue
    t1 = cal.t1
    delivered_ok = ~o.cancelled & ~c.test[o.cust]
    market = o.channel == cat.MARKETPLACE
    requested = ctx.review_requested & (ctx.review_sent < _cutoff(ctx, o.cust))
    u = rng.random(o.n)
    source = np.select([requested & (u < 0.14), delivered_ok & market & (u < 0.10),
                        delivered_ok & ~market & ~requested & (u < 0.02)], [1, 2, 0], -1)
    created = np.select(
        [source == 1, source == 2],
        [ctx.review_sent + DAY * np.minimum(rng.lognormal(0.0, 1.0, o.n), 30),
         o.delivered + DAY * rng.uniform(2, 20, o.n)],
        o.delivered + DAY * rng.uniform(2, 25, o.n))
    rows = np.flatnonzero((source >= 0) & (created < _cutoff(ctx, o.cust)))
    n = len(rows)
    line = (rng.random(n) * o.nlines[rows]).astype(np.int64)
    product = ctx.item_product[o.item_start[rows] + line] if n else np.zeros(0, dtype=np.int64)
    rating = np.clip(np.rint(o.nps[rows] / 2 + rng.normal(0, 0.6, n)), 1, 5).astype(np.int64)
    title = (rating - 1) * 3 + rng.integers(0, 3, n)
    body = np.where(rng.random(n) < 0.6, (rating - 1) * 2 + rng.integers(0, 2, n), -1)
    order = np.lexsort((created[rows], o.cust[rows]))
    rows, product, rating, title, body = rows[order], product[order], rating[order], title[order], body[order]
    table = pa.table({
        "vid": np.arange(n, dtype=np.int64) + ctx.base["review"],
        "cid": o.cust[rows] + ctx.base["customer"],
        "oid": o.row_id[rows],
        "product_id": dict_col(product, catl.product_id),
        "rating": rating,
        "title": dict_col(title, cat.REVIEW_TITLE_LIST),
        "body": dict_col(body, cat.REVIEW_BODY_LIST),
        "source": dict_col(source[rows], cat.REVIEW_SOURCES),
        "created_at": ts_col(to_int_times(created[rows], t1)),
    })
    return Part(table, {"review_id": id_sql("vid", "review"), "customer_id": id_sql("cid", "customer"),
                        "order_id": id_sql("oid", "order")})


# --- customers ------------------------------------------------------------------------------------------

PHONE_FORMATS = {"DE": ("15", 9), "FR": ("6", 8), "GB": ("7700900", 3), "NL": ("6", 8), "ES": ("6", 8),
                 "IT": ("3", 9), "AT": ("664", 7), "BE": ("47", 7), "CH": ("79", 7)}


def build_customers(rng: Rng, ctx: SimpleNamespace) -> Part:
    """Customer master data with consent states that match the unsubscribe events."""
    c, o, cal = ctx.c, ctx.o, ctx.cal
    t1 = cal.t1
    email_unsub = np.minimum(c.pref_unsub, ctx.unsub_time[cat.EMAIL])
    email_consent = np.where(c.email_sub, np.where(email_unsub < t1, 1, 0), 2)
    sms_unsub = ctx.unsub_time[cat.SMS]
    sms_consent = np.where(c.sms_sub, np.where(sms_unsub < t1, 1, 0), 2)
    has = o.count > 0
    last_order = np.full(c.n, -np.inf)
    if o.n:
        last_order[has] = o.t[(o.first_row + o.count - 1)[has]]
    updated = np.maximum.reduce([c.created, last_order, np.where(email_unsub < t1, email_unsub, -np.inf),
                                 np.where(sms_unsub < t1, sms_unsub, -np.inf),
                                 np.where(np.isfinite(ctx.erasure), ctx.erasure, -np.inf)])
    table = pa.table({
        "cid": np.arange(c.n, dtype=np.int64) + ctx.base["customer"],
        "fn": dict_col(c.first_name, cat.FIRST_NAME_LIST),
        "ln": dict_col(c.last_name, cat.LAST_NAME_LIST),
        "country": dict_col(c.country, cat.COUNTRY_CODES),
        "email_state": c.email_state.astype(np.int8),
        "email_kind": c.email_invalid_kind.astype(np.int8),
        "domain": dict_col(c.email_domain, cat.EMAIL_DOMAINS),
        "email_upper": c.email_upper,
        "phone_kind": c.phone_kind.astype(np.int8),
        "phone_number": c.phone_number,
        "postal_number": c.postal_number,
        "postal_missing": c.postal_missing,
        "created_at": ts_col(to_int_times(c.created, t1)),
        "email_marketing_consent": dict_col(email_consent, ["subscribed", "unsubscribed", "never_subscribed"]),
        "sms_marketing_consent": dict_col(sms_consent, ["subscribed", "unsubscribed", "never_subscribed"]),
        "is_test_account": c.test,
        "erasure_requested_at": ts_col(to_int_times(ctx.erasure, t1)),
        "updated_at": ts_col(to_int_times(updated, t1)),
    })
    return Part(table, _customer_exprs())


def _customer_exprs() -> dict[str, str]:
    """SQL for the formatted customer columns: ids, emails, phones, postal codes."""
    local = ("regexp_replace(strip_accents(lower(fn || '.' || ln)), '[^a-z.]', '', 'g') "
             "|| (cid % 100000)::VARCHAR")
    invalid = " ".join(f"WHEN {i} THEN {sql}" for i, sql in enumerate(
        ["'not-an-email'", f"{local} || '@'", f"{local} || '.example.com'", f"{local} || '@@example.com'"]))
    email = (f"CASE WHEN email_state = 1 THEN NULL "
             f"WHEN is_test_account THEN 'qa+' || (cid % 100000)::VARCHAR || '@example.com' "
             f"WHEN email_state = 2 THEN CASE email_kind {invalid} END "
             f"WHEN email_upper THEN upper(substr({local}, 1, 1)) || substr({local}, 2) || '@' "
             f"|| upper(substr(domain, 1, 1)) || substr(domain, 2) "
             f"ELSE {local} || '@' || domain END")
    calling = " ".join(f"WHEN '{code}' THEN '{cc}'" for code, cc in zip(cat.COUNTRY_CODES, cat.COUNTRY_CALLING,
                                                                        strict=True))
    nsn = " ".join(f"WHEN '{code}' THEN '{prefix}' || lpad((phone_number % {10 ** digits})::VARCHAR, {digits}, '0')"
                   for code, (prefix, digits) in PHONE_FORMATS.items())
    us = ("(200 + phone_number % 800)::VARCHAR || '55501' || lpad((phone_number // 1000 % 100)::VARCHAR, 2, '0')")
    nsn = f"(CASE country {nsn} ELSE {us} END)"
    phone = (f"CASE phone_kind WHEN 1 THEN '+' || (CASE country {calling} END) || {nsn} "
             f"WHEN 2 THEN (CASE WHEN country = 'US' THEN {nsn} ELSE '0' || {nsn} END) "
             f"WHEN 3 THEN (CASE phone_number % 3 WHEN 0 THEN '12345' WHEN 1 THEN 'n/a' "
             f"ELSE '+' || (CASE country {calling} END) || '000' END) END")
    outward = "[" + ", ".join(f"'{x}'" for x in cat.GB_OUTWARD) + "]"
    letters = "chr((65 + phone_number % 26)::INTEGER) || chr((65 + postal_number // 7 % 26)::INTEGER)"
    postal = (f"CASE WHEN postal_missing THEN NULL "
              f"WHEN country IN ('DE', 'FR', 'ES', 'IT', 'US') "
              f"THEN lpad((1000 + postal_number % 98999)::VARCHAR, 5, '0') "
              f"WHEN country = 'NL' THEN (1000 + postal_number % 9000)::VARCHAR || ' ' || {letters} "
              f"WHEN country = 'GB' THEN {outward}[1 + postal_number % {len(cat.GB_OUTWARD)}] || ' ' "
              f"|| (postal_number // 13 % 10)::VARCHAR || {letters} "
              f"ELSE (1000 + postal_number % 9000)::VARCHAR END")
    return {"customer_id": id_sql("cid", "customer"), "email": email, "phone": phone, "first_name": "fn",
            "last_name": "ln", "postal_code": postal}
