"""Planted product journeys: what a customer buys next, and which first purchase brings them back.

A step of its own, run on top of the simulation (see docs/generator.md, "Product journeys"):

* **Affinities.** A customer whose previous order held a trigger product (`AFFINITIES`) buys
  its partner on the next order with probability `Params.affinity_share`: the partner
  replaces the first line of that next order. "Buyers of the Suede Loafer buy the
  Leather Belt next" is then far above any other transition from the pan.
* **Consumables.** A customer whose previous order held a consumable (`CONSUMABLE_NOUNS` of
  the beauty category: serums, creams, cleansers, sunscreens) buys the same product again on
  the next order with probability `Params.rebuy_share` (when no affinity applied).
* **First-category retention.** After a first order in `Params.first_category`, the
  customer's dropout hazard is multiplied by `Params.first_category_hazard` (< 1: they come
  back more often), on top of the experience effects in `core.simulate_orders`.

The affinities draw from their own random stream (`product_journeys`), so the other sources'
draws stay as they were; the retention effect changes who drops out, and with it every later
order of the shop. Nothing here loops over rows.
"""

from __future__ import annotations

from functools import lru_cache
from types import SimpleNamespace

import numpy as np

from pipelines.generate import catalog as cat

#: (trigger product name, partner product name): buyers of the first buy the second next.
AFFINITIES: tuple[tuple[str, str], ...] = (
    ("Suede Loafer", "Leather Belt"),
    ("Steel Espresso Maker", "Collector's Cookbook"),
    ("Smart Headphones", "Portable Charger"),
)
#: Category and nouns of the products that are re-bought (used up and bought again).
CONSUMABLE_CATEGORY = "beauty"
CONSUMABLE_NOUNS: tuple[str, ...] = ("Serum", "Face Cream", "Cleanser", "Sunscreen")


def _index(name: str) -> int:
    catl = cat.catalogue()
    try:
        return catl.product_name.index(name)
    except ValueError:
        raise ValueError(f"planted product {name!r} is not in the catalogue") from None


@lru_cache(maxsize=1)
def partner_of() -> np.ndarray:
    """Per catalogue product: the index of its planted partner, or -1."""
    out = np.full(cat.catalogue().size, -1, dtype=np.int64)
    for trigger, partner in AFFINITIES:
        out[_index(trigger)] = _index(partner)
    return out


@lru_cache(maxsize=1)
def consumable() -> np.ndarray:
    """Per catalogue product: True for the planted consumables."""
    catl = cat.catalogue()
    c = cat.CATEGORY_NAMES.index(CONSUMABLE_CATEGORY)
    names = np.array(catl.product_name)
    nouns = np.array([any(n.endswith(noun) for noun in CONSUMABLE_NOUNS) for n in names])
    return (catl.category == c) & nouns


def planted_pairs() -> list[tuple[str, str, str, str]]:
    """The planted affinities as (trigger id, trigger name, partner id, partner name)."""
    catl = cat.catalogue()
    return [(catl.product_id[_index(t)], t, catl.product_id[_index(p)], p) for t, p in AFFINITIES]


def first_order_hazard(category: np.ndarray, k: int, first_category: str, factor: float) -> np.ndarray:
    """Dropout hazard multiplier of round `k`'s orders: `factor` after a first order in `first_category`."""
    if k != 0:
        return np.ones(len(category))
    return np.where(category == cat.CATEGORY_NAMES.index(first_category), factor, 1.0)


def plant_next_products(rng: np.random.Generator, o: SimpleNamespace, row: np.ndarray, line: np.ndarray,
                        product: np.ndarray, affinity_share: float, rebuy_share: float) -> np.ndarray:
    """The order lines' products with the affinities and consumable re-buys planted.

    `row` is each line's order (orders sorted by customer, then time), `line` its position in
    the order, `product` the simulated product. The previous order of the same customer
    decides (a cancelled one does not count); the next order's first line is replaced.
    """
    product = product.copy()
    n = o.n
    if n == 0 or len(product) == 0:
        return product
    partner = np.full(n, -1, dtype=np.int64)
    np.maximum.at(partner, row, partner_of()[product])
    rebuy = np.full(n, -1, dtype=np.int64)
    np.maximum.at(rebuy, row, np.where(consumable()[product], product, -1))
    prev = np.arange(n) - 1
    has_prev = np.zeros(n, dtype=bool)
    has_prev[1:] = (o.cust[1:] == o.cust[:-1]) & ~o.cancelled[:-1]
    prev_partner = np.where(has_prev, partner[np.maximum(prev, 0)], -1)
    prev_rebuy = np.where(has_prev, rebuy[np.maximum(prev, 0)], -1)
    u = rng.random(n)
    new_first = np.where((prev_partner >= 0) & (u < affinity_share), prev_partner,
                         np.where((prev_rebuy >= 0) & (u >= 1.0 - rebuy_share), prev_rebuy, -1))
    first_line = np.flatnonzero(line == 0)  # one per order, in order
    planted = new_first >= 0
    product[first_line[planted]] = new_first[planted]
    return product
