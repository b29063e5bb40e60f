"""Fixed reference data of the synthetic shop: countries, carriers, products, names, texts.

Everything here is a constant or derived from a constant seed, so the catalogue is the same
for every `generate()` call whatever its seed: product P1001 is always the same product.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from pipelines.core import rules

# --- countries -------------------------------------------------------------------------------
# code, share of customers, currency, VAT/sales tax rate, calling code, days promised at
# checkout (base; +0/+1 per order), carriers as (name, share, late-delivery rate).
COUNTRIES: tuple[tuple, ...] = (
    ("DE", 0.28, "EUR", 0.19, "49", 2, (("DHL", 0.60, 0.07), ("DPD", 0.25, 0.11), ("Hermes", 0.15, 0.16))),
    ("FR", 0.13, "EUR", 0.20, "33", 3, (("Colissimo", 0.60, 0.10), ("Chronopost", 0.20, 0.07),
                                        ("DPD", 0.20, 0.11))),
    ("GB", 0.13, "GBP", 0.20, "44", 2, (("Royal Mail", 0.60, 0.12), ("Evri", 0.25, 0.17),
                                        ("DPD", 0.15, 0.08))),
    ("NL", 0.08, "EUR", 0.21, "31", 2, (("PostNL", 0.70, 0.07), ("DHL", 0.30, 0.08))),
    ("US", 0.10, "USD", 0.07, "1", 4, (("UPS", 0.50, 0.07), ("USPS", 0.35, 0.12), ("FedEx", 0.15, 0.08))),
    ("ES", 0.08, "EUR", 0.21, "34", 3, (("Correos", 0.60, 0.13), ("SEUR", 0.40, 0.10))),
    ("IT", 0.08, "EUR", 0.22, "39", 3, (("Poste Italiane", 0.50, 0.15), ("BRT", 0.50, 0.10))),
    ("AT", 0.04, "EUR", 0.20, "43", 3, (("Austrian Post", 0.70, 0.08), ("DPD", 0.30, 0.11))),
    ("BE", 0.04, "EUR", 0.21, "32", 3, (("bpost", 0.70, 0.09), ("DPD", 0.30, 0.11))),
    ("CH", 0.04, "CHF", 0.081, "41", 3, (("Swiss Post", 0.80, 0.05), ("DHL", 0.20, 0.08))),
)
COUNTRY_CODES = [c[0] for c in COUNTRIES]
COUNTRY_WEIGHTS = np.array([c[1] for c in COUNTRIES]) / sum(c[1] for c in COUNTRIES)
CURRENCIES = ["EUR", "GBP", "USD", "CHF"]
FX = np.array([1.0, 0.86, 1.09, 0.96])  # catalogue prices are set in EUR and converted
COUNTRY_CURRENCY = np.array([CURRENCIES.index(c[2]) for c in COUNTRIES])
COUNTRY_TAX = np.array([c[3] for c in COUNTRIES])
COUNTRY_CALLING = [c[4] for c in COUNTRIES]
COUNTRY_PROMISE = np.array([c[5] for c in COUNTRIES])
# Shipping fee per currency (cents) below the free-shipping threshold of 50 EUR equivalent.
SHIPPING_FEE = np.array([495, 399, 599, 690])
FREE_SHIPPING_FROM = (5000 * FX).astype(np.int64)

CARRIERS: list[str] = []
for _c in COUNTRIES:
    for _name, _share, _late in _c[6]:
        if _name not in CARRIERS:
            CARRIERS.append(_name)
MAX_CARRIERS = max(len(c[6]) for c in COUNTRIES)
# Per country: cumulative carrier shares and carrier index, padded to MAX_CARRIERS columns.
CARRIER_CUM = np.ones((len(COUNTRIES), MAX_CARRIERS))
CARRIER_IDX = np.zeros((len(COUNTRIES), MAX_CARRIERS), dtype=np.int64)
CARRIER_LATE = np.zeros((len(COUNTRIES), MAX_CARRIERS))
for _i, _c in enumerate(COUNTRIES):
    _cum = np.cumsum([s for _, s, _ in _c[6]])
    for _j, (_name, _share, _late) in enumerate(_c[6]):
        CARRIER_CUM[_i, _j] = _cum[_j]
        CARRIER_IDX[_i, _j] = CARRIERS.index(_name)
        CARRIER_LATE[_i, _j] = _late
    CARRIER_IDX[_i, len(_c[6]):] = CARRIER_IDX[_i, len(_c[6]) - 1]
    CARRIER_LATE[_i, len(_c[6]):] = CARRIER_LATE[_i, len(_c[6]) - 1]

# Postal code shapes (rendered in SQL by the customers writer).
GB_OUTWARD = ["SW1A", "EC1A", "M1", "B33", "LS1", "G2", "CF10", "BS1", "NE1", "L1", "OX1", "CB2"]

# --- names (small fixed list per country, same order as COUNTRIES) ---------------------------
FIRST_NAMES = {
    "DE": ["Anna", "Lukas", "Lena", "Leon", "Mia", "Paul", "Emma", "Jonas", "Hannah", "Felix"],
    "FR": ["Emma", "Gabriel", "Louise", "Raphaël", "Jade", "Léo", "Chloé", "Louis", "Manon", "Hugo"],
    "GB": ["Olivia", "Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Noah", "Emily", "Jack"],
    "NL": ["Emma", "Noah", "Julia", "Sem", "Mila", "Lucas", "Tess", "Finn", "Sophie", "Daan"],
    "US": ["Olivia", "Liam", "Emma", "Noah", "Ava", "James", "Sophia", "William", "Isabella", "Ethan"],
    "ES": ["Lucía", "Hugo", "Sofía", "Martín", "María", "Pablo", "Julia", "Daniel", "Paula", "Álvaro"],
    "IT": ["Sofia", "Leonardo", "Giulia", "Francesco", "Aurora", "Alessandro", "Alice", "Lorenzo",
           "Ginevra", "Mattia"],
    "AT": ["Marie", "Jakob", "Anna", "Maximilian", "Emilia", "Elias", "Laura", "David", "Sophia", "Tobias"],
    "BE": ["Olivia", "Noah", "Emma", "Arthur", "Louise", "Jules", "Mila", "Louis", "Alice", "Adam"],
    "CH": ["Mia", "Noah", "Emma", "Liam", "Sofia", "Matteo", "Lina", "Luca", "Elena", "Leon"],
}
LAST_NAMES = {
    "DE": ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz",
           "Hoffmann"],
    "FR": ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau"],
    "GB": ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Evans", "Walker"],
    "NL": ["de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Janssen", "Visser",
           "Smit", "Meijer"],
    "US": ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
           "Martinez"],
    "ES": ["García", "Rodríguez", "González", "Fernández", "López", "Martínez", "Sánchez", "Pérez", "Gómez",
           "Ruiz"],
    "IT": ["Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco"],
    "AT": ["Gruber", "Huber", "Bauer", "Wagner", "Müller", "Pichler", "Steiner", "Moser", "Mayer", "Hofer"],
    "BE": ["Peeters", "Janssens", "Maes", "Jacobs", "Mertens", "Willems", "Claes", "Goossens", "Wouters",
           "Dubois"],
    "CH": ["Müller", "Meier", "Schmid", "Keller", "Weber", "Huber", "Schneider", "Meyer", "Steiner", "Fischer"],
}
NAMES_PER_COUNTRY = 10
# Flat lists: the name of country c, slot j is at c * NAMES_PER_COUNTRY + j; test accounts use the
# two extra entries at the end.
FIRST_NAME_LIST = [n for c in COUNTRY_CODES for n in FIRST_NAMES[c]] + ["Test"]
LAST_NAME_LIST = [n for c in COUNTRY_CODES for n in LAST_NAMES[c]] + ["Account"]
# Reserved example domains only (RFC 2606): generated addresses can never reach a real person.
EMAIL_DOMAINS = ["example.com", "example.net", "example.org", "mail.example.com", "post.example.org",
                 "inbox.example.net"]
INVALID_EMAILS = ["not-an-email", "{local}@", "{local}.example.com", "{local}@@example.com"]

# --- sales channels, support ------------------------------------------------------------------
SALES_CHANNELS = ["web", "app", "marketplace", "pos", "phone"]
SALES_CHANNEL_WEIGHTS = np.array([0.55, 0.25, 0.10, 0.05, 0.05])
WEB, APP, MARKETPLACE, POS, PHONE = range(5)

TICKET_CHANNELS = ["email", "chat", "phone", "social", "web_form"]
TICKET_CHANNEL_WEIGHTS = np.array([0.40, 0.25, 0.15, 0.05, 0.15])
# Ticket types and categories, message types and which of them are marketing are business rules
# kept in the dbt seeds (seeds/*.csv, pipelines/core/rules.py): the generator writes what they
# list, and says clearly which seed lacks a value it simulates.
TICKET_TYPES = list(rules.ticket_types())
TICKET_CATEGORIES = list(rules.ticket_categories())
rules.require_values("ticket_types", "ticket_type", ["complaint", "question", "request"], "the generator")
rules.require_values("ticket_categories", "category",
                     ["wismo", "late_delivery", "damaged_item", "wrong_item", "return_refund", "billing",
                      "product_question", "other"], "the generator")
PRIORITIES = ["low", "normal", "high", "urgent"]
TICKET_STATUSES = ["open", "pending", "solved", "closed"]
RETURN_REASONS = ["damaged", "wrong_item", "not_as_described", "too_late", "changed_mind", "size_fit", "other"]
RETURN_STATUSES = ["requested", "approved", "received", "refunded", "rejected"]
ORDER_STATUSES = ["placed", "paid", "shipped", "delivered", "cancelled", "returned"]

# --- messages ---------------------------------------------------------------------------------
MSG_CHANNELS = ["email", "sms", "push", "whatsapp", "chat", "phone", "social"]
EMAIL, SMS, PUSH, WHATSAPP, CHAT, PHONE_CH, SOCIAL = range(7)
MSG_TYPES = list(rules.message_types())
MT = {name: i for i, name in enumerate(MSG_TYPES)}
#: Types sent only to customers with marketing consent (`needs_marketing_consent`).
MARKETING_TYPES = list(rules.consent_marketing_types())
DIRECTIONS = ["outbound", "inbound"]

# Engagement by (channel, message type): delivery, open and click-given-open rates. Emails to
# an invalid address bounce (never delivered); SMS opens are not tracked.
_OPEN_EMAIL = {"order_confirmation": 0.62, "shipping_update": 0.58, "out_for_delivery": 0.50,
               "delivered": 0.45, "thank_you": 0.48, "how_to_guide": 0.44, "product_care": 0.38,
               "review_request": 0.33, "survey_invite": 0.35, "cross_sell": 0.22, "winback_offer": 0.17,
               "loyalty": 0.30, "newsletter": 0.21, "promotion": 0.19, "support_reply": 0.70, "other": 0.3}
_CLICK_EMAIL = {"order_confirmation": 0.08, "shipping_update": 0.35, "out_for_delivery": 0.20,
                "delivered": 0.06, "thank_you": 0.10, "how_to_guide": 0.30, "product_care": 0.18,
                "review_request": 0.22, "survey_invite": 0.30, "cross_sell": 0.12, "winback_offer": 0.14,
                "loyalty": 0.16, "newsletter": 0.11, "promotion": 0.13, "support_reply": 0.10, "other": 0.1}

rules.require_values("message_types", "message_type", list(_OPEN_EMAIL), "the generator")


def engagement_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arrays [channel, type] of delivery, open and click-given-open probabilities."""
    nc, nt = len(MSG_CHANNELS), len(MSG_TYPES)
    deliver = np.zeros((nc, nt))
    open_ = np.zeros((nc, nt))
    click = np.zeros((nc, nt))
    missing = [name for name in MSG_TYPES if name not in _OPEN_EMAIL or name not in _CLICK_EMAIL]
    if missing:
        raise rules.SeedError(
            f"{rules.SEEDS_DIR / 'message_types.csv'} lists message type(s) {', '.join(missing)} that the "
            "generator has no email open and click rates for (_OPEN_EMAIL, _CLICK_EMAIL in "
            "pipelines/generate/catalog.py)"
        )
    for t, name in enumerate(MSG_TYPES):
        deliver[EMAIL, t], open_[EMAIL, t], click[EMAIL, t] = 0.985, _OPEN_EMAIL[name], _CLICK_EMAIL[name]
        deliver[SMS, t], open_[SMS, t], click[SMS, t] = 0.97, 0.0, 0.09
        deliver[PUSH, t], open_[PUSH, t], click[PUSH, t] = 0.92, 0.11, 0.5
        deliver[WHATSAPP, t], open_[WHATSAPP, t], click[WHATSAPP, t] = 0.98, 0.75, 0.1
        for ch in (CHAT, PHONE_CH, SOCIAL):
            deliver[ch, t], open_[ch, t], click[ch, t] = 0.99, 0.0, 0.0
    return deliver, open_, click


# --- products ---------------------------------------------------------------------------------
# name, share of order lines, median price EUR, price spread (lognormal sigma), base return
# rate, gets a how-to guide after delivery, gets a product-care email, adjectives, nouns.
CATEGORIES: tuple[tuple, ...] = (
    ("apparel", 0.20, 39.0, 0.45, 0.12, False, True,
     ["Merino", "Linen", "Organic", "Classic", "Relaxed", "Slim"],
     ["Crew Sweater", "Shirt", "T-Shirt", "Chinos", "Dress"]),
    ("shoes", 0.09, 85.0, 0.35, 0.11, False, True,
     ["Leather", "Trail", "Canvas", "Suede", "Everyday", "Court"],
     ["Sneaker", "Boot", "Loafer", "Sandal", "Runner"]),
    ("accessories", 0.09, 29.0, 0.55, 0.06, False, True,
     ["Leather", "Woven", "Recycled", "Travel", "Mini", "Classic"],
     ["Belt", "Wallet", "Tote Bag", "Scarf", "Cap"]),
    ("home", 0.11, 45.0, 0.60, 0.05, False, True,
     ["Linen", "Stoneware", "Oak", "Wool", "Cotton", "Rattan"],
     ["Cushion Cover", "Vase", "Throw", "Lamp", "Rug"]),
    ("kitchen", 0.11, 49.0, 0.70, 0.04, True, False,
     ["Cast Iron", "Ceramic", "Steel", "Bamboo", "Copper", "Pro"],
     ["Pan", "Knife Set", "Kettle", "Espresso Maker", "Blender"]),
    ("electronics", 0.10, 89.0, 0.75, 0.07, True, False,
     ["Wireless", "Smart", "Compact", "Noise-Cancelling", "Portable", "Ultra"],
     ["Headphones", "Speaker", "Charger", "Fitness Tracker", "Camera"]),
    ("beauty", 0.11, 22.0, 0.50, 0.03, True, False,
     ["Hydrating", "Vitamin C", "Gentle", "Night", "Mineral", "Repair"],
     ["Serum", "Face Cream", "Cleanser", "Hair Dryer", "Sunscreen"]),
    ("sports", 0.08, 45.0, 0.60, 0.06, True, True,
     ["Yoga", "Trail", "Training", "Cycling", "Swim", "Pro"],
     ["Mat", "Bottle", "Backpack", "Gloves", "Jacket"]),
    ("toys", 0.06, 29.0, 0.55, 0.04, False, False,
     ["Wooden", "Magnetic", "Plush", "Building", "Puzzle", "Musical"],
     ["Train Set", "Blocks", "Bear", "Kit", "Game"]),
    ("books", 0.05, 16.0, 0.35, 0.02, False, False,
     ["Illustrated", "Pocket", "Collector's", "Paperback", "Hardcover", "Signed"],
     ["Cookbook", "Travel Guide", "Novel", "Field Guide", "Atlas"]),
)
CATEGORY_NAMES = [c[0] for c in CATEGORIES]
CATEGORY_WEIGHTS = np.array([c[1] for c in CATEGORIES]) / sum(c[1] for c in CATEGORIES)
CATEGORY_RETURN = np.array([c[4] for c in CATEGORIES])
CATEGORY_GUIDE = np.array([c[5] for c in CATEGORIES])
CATEGORY_CARE = np.array([c[6] for c in CATEGORIES])
CATEGORY_SIZE_FIT = np.array([c[0] in ("apparel", "shoes") for c in CATEGORIES])
PRODUCTS_PER_CATEGORY = 30
CATALOGUE_SEED = 20230101


@dataclass(frozen=True)
class Catalogue:
    """The fixed product catalogue, sorted by (category, EUR price)."""

    product_id: list[str]
    product_name: list[str]
    category: np.ndarray  # category index per product
    price: np.ndarray  # cents, [product, currency]
    price_eur: np.ndarray  # cents
    start: np.ndarray  # first product index of each category
    count: np.ndarray  # products per category

    @property
    def size(self) -> int:
        """Number of products."""
        return len(self.product_id)


def _charm(cents: np.ndarray) -> np.ndarray:
    """Round prices to charm endings (x.99, or x.95 above 100) as shops do."""
    whole = np.maximum(np.floor(cents / 100.0), 1)
    return (whole * 100 + np.where(whole >= 100, -5, 99)).astype(np.int64)


@lru_cache(maxsize=1)
def catalogue() -> Catalogue:
    """Build the catalogue of 300 products (10 categories x 30) from a constant seed."""
    rng = np.random.default_rng(CATALOGUE_SEED)
    ids, names, cats, eur = [], [], [], []
    for c, (_name, _w, median, sigma, *_rest, adjectives, nouns) in enumerate(CATEGORIES):
        combos = [f"{a} {n}" for a in adjectives for n in nouns][:PRODUCTS_PER_CATEGORY]
        prices = median * np.exp(rng.normal(0.0, sigma, len(combos)))
        order = np.argsort(prices, kind="stable")
        for j in order:
            names.append(combos[j])
            cats.append(c)
            eur.append(prices[j] * 100)
    for i in range(len(names)):
        ids.append(f"P{1001 + i}")
    eur_c = _charm(np.array(eur))
    price = np.stack([_charm(eur_c * fx) if k else eur_c for k, fx in enumerate(FX)], axis=1)
    cats_a = np.array(cats, dtype=np.int64)
    count = np.bincount(cats_a, minlength=len(CATEGORIES))
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    return Catalogue(ids, names, cats_a, price, eur_c, start, count)


# --- free text ----------------------------------------------------------------------------------
# Survey comments by cause; the survey builder picks the list that matches what happened.
COMMENTS = {
    "late": ["Parcel arrived days after the promised date.", "Delivery was late and tracking was useless.",
             "Took far too long to arrive.", "Late again. Not impressed."],
    "damaged": ["The item arrived damaged.", "Box was crushed and the product broken.",
                "Wrong item in the parcel, had to send it back."],
    "support_bad": ["Still waiting for an answer from customer service.",
                    "Support never solved my problem.", "Had to chase support three times."],
    "support_good": ["Support sorted it out quickly, thank you!", "Problem fixed within a day, great service."],
    "negative": ["Quality is not what I expected.", "Too expensive for what you get.",
                 "Not happy with this order."],
    "neutral": ["OK overall.", "Fine, nothing special.", "Delivery fine, product as described."],
    "positive": ["Great quality, will order again!", "Fast delivery and lovely packaging.",
                 "Love it, exactly as described.", "Excellent service as always."],
}
COMMENT_KEYS = list(COMMENTS)
COMMENT_LIST = [c for k in COMMENT_KEYS for c in COMMENTS[k]]
COMMENT_START = np.cumsum([0] + [len(COMMENTS[k]) for k in COMMENT_KEYS])[:-1]
COMMENT_COUNT = np.array([len(COMMENTS[k]) for k in COMMENT_KEYS])

REVIEW_TITLES = {
    1: ["Very disappointed", "Would not buy again", "Broke after a week"],
    2: ["Not great", "Below expectations", "Meh"],
    3: ["It's okay", "Decent for the price", "Average"],
    4: ["Very good", "Happy with it", "Nice quality"],
    5: ["Love it!", "Perfect", "Best purchase this year"],
}
REVIEW_BODIES = {
    1: ["Stopped working almost immediately and the return was a hassle.",
        "Looks nothing like the pictures."],
    2: ["Quality feels cheap. Arrived late too.", "Does the job but I expected more."],
    3: ["Fine for everyday use, nothing special.", "Good value but the sizing is a bit off."],
    4: ["Solid quality and quick delivery.", "Works well, would recommend."],
    5: ["Excellent quality, exactly as described. Will order again.",
        "Fantastic, arrived early and beautifully packaged."],
}
REVIEW_TITLE_LIST = [t for r in range(1, 6) for t in REVIEW_TITLES[r]]
REVIEW_BODY_LIST = [t for r in range(1, 6) for t in REVIEW_BODIES[r]]
REVIEW_SOURCES = ["site", "email", "marketplace"]
