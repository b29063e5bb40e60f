"""Platform export files for the importer tests, written from the vendors' documented columns.

The real samples (`../shared/platform-samples/`) are read in place by the tests; these are
small, hand-checked files for the versions and cases the samples do not cover.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

#: Shopify "Export orders" columns: the 73-column version; 78 adds five, 79 one more.
SHOPIFY_ORDERS_73 = [
    "Name", "Email", "Financial Status", "Paid at", "Fulfillment Status", "Fulfilled at", "Accepts Marketing",
    "Currency", "Subtotal", "Shipping", "Taxes", "Total", "Discount Code", "Discount Amount", "Shipping Method",
    "Created at", "Lineitem quantity", "Lineitem name", "Lineitem price", "Lineitem compare at price",
    "Lineitem sku", "Lineitem requires shipping", "Lineitem taxable", "Lineitem fulfillment status",
    "Billing Name", "Billing Street", "Billing Address1", "Billing Address2", "Billing Company", "Billing City",
    "Billing Zip", "Billing Province", "Billing Country", "Billing Phone", "Shipping Name", "Shipping Street",
    "Shipping Address1", "Shipping Address2", "Shipping Company", "Shipping City", "Shipping Zip",
    "Shipping Province", "Shipping Country", "Shipping Phone", "Notes", "Note Attributes", "Cancelled at",
    "Payment Method", "Payment Reference", "Refunded Amount", "Vendor", "Outstanding Balance", "Employee",
    "Location", "Device ID", "Id", "Tags", "Risk Level", "Source", "Lineitem discount", "Tax 1 Name",
    "Tax 1 Value", "Tax 2 Name", "Tax 2 Value", "Tax 3 Name", "Tax 3 Value", "Tax 4 Name", "Tax 4 Value",
    "Tax 5 Name", "Tax 5 Value", "Phone", "Receipt Number", "Duties",
]
SHOPIFY_ORDERS_78 = SHOPIFY_ORDERS_73 + [
    "Billing Province Name", "Shipping Province Name", "Payment ID", "Payment Terms Name", "Next Payment Due At",
]
SHOPIFY_ORDERS_79 = SHOPIFY_ORDERS_78 + ["Payment References"]
SHOPIFY_VERSIONS = {73: SHOPIFY_ORDERS_73, 78: SHOPIFY_ORDERS_78, 79: SHOPIFY_ORDERS_79}

#: Three orders across the end of daylight saving in New York (-0400 then -0500): a
#: two-line order, a refunded one, a cancelled one without email.
SHOPIFY_ORDERS = [
    {"Name": "#2001", "Email": "Ana.Lopez@Example.com ", "Financial Status": "paid", "Fulfillment Status": "fulfilled",
     "Fulfilled at": "2024-10-30 12:00:00 -0400", "Accepts Marketing": "yes", "Currency": "USD", "Subtotal": "45.00",
     "Shipping": "5.00", "Taxes": "0.00", "Total": "50.00", "Discount Amount": "0.00",
     "Created at": "2024-10-30 09:15:00 -0400", "Lineitem quantity": "2", "Lineitem name": "Mug - $15 value pack",
     "Lineitem price": "15.00", "Lineitem sku": "MUG-1", "Billing Name": "Ana Lopez", "Billing Country": "US",
     "Billing Zip": "10001", "Refunded Amount": "0.00", "Id": "5550001", "Source": "web", "Phone": "+12125550101"},
    {"Name": "#2001", "Email": "Ana.Lopez@Example.com ", "Created at": "2024-10-30 09:15:00 -0400",
     "Lineitem quantity": "1", "Lineitem name": "Tea", "Lineitem price": "15.00", "Lineitem sku": "TEA-1"},
    {"Name": "#2002", "Email": "bo@example.com", "Financial Status": "partially_refunded",
     "Fulfillment Status": "fulfilled", "Fulfilled at": "2024-11-04 10:00:00 -0500", "Accepts Marketing": "no",
     "Currency": "USD", "Subtotal": "30.00", "Shipping": "0.00", "Taxes": "2.40", "Total": "32.40",
     "Discount Code": "WELCOME", "Discount Amount": "3.00", "Created at": "2024-11-03 23:30:00 -0500",
     "Lineitem quantity": "1", "Lineitem name": "Kettle", "Lineitem price": "30.00", "Refunded Amount": "12.40",
     "Id": "5550002", "Source": "pos"},
    {"Name": "#2003", "Email": "", "Financial Status": "voided", "Currency": "USD", "Subtotal": "9.00",
     "Shipping": "0.00", "Taxes": "0.00", "Total": "9.00", "Created at": "2024-11-05 08:00:00 -0500",
     "Lineitem quantity": "1", "Lineitem name": "Spoon", "Lineitem price": "9.00",
     "Cancelled at": "2024-11-05 09:00:00 -0500", "Refunded Amount": "0.00", "Id": "5550003", "Source": "web"},
]


def write_csv(path: Path, header: list[str], rows: list[dict]) -> Path:
    """Write rows (dicts by header name; missing keys empty) as an RFC 4180 CSV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for r in rows:
            w.writerow([r.get(h, "") for h in header])
    return path


def shopify_orders_csv(path: Path, version: int = 79, rows: list[dict] | None = None) -> Path:
    """A Shopify orders export of the given column version (73, 78 or 79)."""
    return write_csv(path, SHOPIFY_VERSIONS[version], SHOPIFY_ORDERS if rows is None else rows)


#: Shopify "Export customers": the current columns, and the older ones (no id, one consent).
SHOPIFY_CUSTOMERS_NEW = [
    "Customer ID", "First Name", "Last Name", "Email", "Accepts Email Marketing", "Default Address Company",
    "Default Address Address1", "Default Address Address2", "Default Address City",
    "Default Address Province Code", "Default Address Country Code", "Default Address Zip",
    "Default Address Phone", "Phone", "Accepts SMS Marketing", "Total Spent", "Total Orders", "Note",
    "Tax Exempt", "Tags",
]
SHOPIFY_CUSTOMERS_OLD = [
    "First Name", "Last Name", "Email", "Company", "Address1", "Address2", "City", "Province", "Province Code",
    "Country", "Country Code", "Zip", "Phone", "Accepts Marketing", "Total Spent", "Total Orders", "Tags", "Note",
    "Tax Exempt",
]


def shopify_customers_csv(path: Path, old: bool = False) -> Path:
    """A customers export: Ana (matches order #2001 by email) and one more customer."""
    if old:
        rows = [{"First Name": "Ana", "Last Name": "Lopez", "Email": "ana.lopez@example.com", "Country Code": "US",
                 "Zip": "10001", "Accepts Marketing": "yes", "Total Spent": "50.00", "Total Orders": "1"},
                {"First Name": "Cy", "Last Name": "Park", "Email": "cy@example.com", "Accepts Marketing": "no",
                 "Total Spent": "0.00", "Total Orders": "0"}]
        return write_csv(path, SHOPIFY_CUSTOMERS_OLD, rows)
    rows = [{"Customer ID": "'7000000001", "First Name": "Ana", "Last Name": "Lopez", "Email": "ANA.LOPEZ@example.com",
             "Accepts Email Marketing": "yes", "Default Address Country Code": "US", "Default Address Zip": "10001",
             "Phone": "+12125550101", "Accepts SMS Marketing": "no", "Total Spent": "50.00", "Total Orders": "1"},
            {"Customer ID": "7000000002", "First Name": "Cy", "Last Name": "Park", "Email": "cy@example.com",
             "Accepts Email Marketing": "no", "Accepts SMS Marketing": "yes", "Phone": "+4915112345678",
             "Total Spent": "0.00", "Total Orders": "0"}]
    return write_csv(path, SHOPIFY_CUSTOMERS_NEW, rows)


def shopify_api_order(order_id: int, customer_id: int | None = 7000000001, refunded: bool = False) -> dict:
    """One order as the Shopify Admin API returns it (the fields the importer reads, and some more)."""
    order = {
        "id": order_id, "name": f"#{order_id % 10000}", "email": "ana.lopez@example.com",
        "created_at": "2024-03-09T21:00:00-05:00", "updated_at": "2024-03-12T10:00:00-04:00",
        "cancelled_at": None, "financial_status": "partially_refunded" if refunded else "paid",
        "fulfillment_status": "fulfilled", "currency": "USD", "subtotal_price": "40.00", "total_discounts": "0.00",
        "total_tax": "3.20", "total_price": "43.20", "source_name": "web", "discount_codes": [],
        "total_shipping_price_set": {"shop_money": {"amount": "0.00", "currency_code": "USD"}},
        "fulfillments": [{"created_at": "2024-03-11T09:00:00-04:00"}],
        "customer": None if customer_id is None else {
            "id": customer_id, "email": "ana.lopez@example.com", "first_name": "Ana", "last_name": "Lopez",
            "phone": None, "created_at": "2023-01-01T10:00:00-05:00",
            "email_marketing_consent": {"state": "subscribed"}, "sms_marketing_consent": {"state": "not_subscribed"},
            "default_address": {"country_code": "US", "zip": "10001"},
        },
        "line_items": [
            {"id": 1, "product_id": 9001, "sku": "MUG-1", "title": "Mug", "name": "Mug - Blue", "quantity": 2,
             "price": "15.00"},
            {"id": 2, "product_id": 9002, "sku": "", "title": "Tea", "name": "Tea", "quantity": 1, "price": "10.00"},
        ],
        "refunds": [
            {"id": 801, "created_at": "2024-03-12T10:00:00-04:00", "processed_at": "2024-03-12T10:05:00-04:00",
             "transactions": [{"amount": "10.00", "kind": "refund"}]}
        ] if refunded else [],
    }
    return order


def shopify_orders_json(path: Path, lines: bool = False) -> Path:
    """An orders.json page ({"orders": [...]}) or the same orders one per line."""
    orders = [shopify_api_order(4400000001), shopify_api_order(4400000002, customer_id=None, refunded=True)]
    path.parent.mkdir(parents=True, exist_ok=True)
    if lines:
        path.write_text("".join(json.dumps(o) + "\n" for o in orders))
    else:
        path.write_text(json.dumps({"orders": orders}, indent=2))
    return path


def woocommerce_order(order_id: int, customer_id: int, email: str, refund: str | None = None) -> dict:
    """One order as the WooCommerce REST API v3 returns it."""
    return {
        "id": order_id, "parent_id": 0, "number": str(order_id), "status": "refunded" if refund else "completed",
        "currency": "EUR", "date_created": "2024-06-01T12:00:00", "date_created_gmt": "2024-06-01T10:00:00",
        "date_modified": "2024-06-03T12:00:00", "date_modified_gmt": "2024-06-03T10:00:00",
        "date_completed_gmt": "2024-06-02T10:00:00", "discount_total": "0.00", "shipping_total": "4.90",
        "total_tax": "0.00", "total": "24.90", "customer_id": customer_id, "created_via": "checkout",
        "billing": {"first_name": "Eve", "last_name": "Meyer", "email": email, "phone": "+4930123456",
                    "country": "DE", "postcode": "10115"},
        "line_items": [{"id": 11, "name": "Socks", "product_id": 301, "variation_id": 0, "quantity": 2,
                        "subtotal": "20.00", "total": "20.00", "sku": "SO-1", "price": 10}],
        "coupon_lines": [],
        "refunds": [{"id": 991, "reason": "damaged", "total": refund}] if refund else [],
    }


def woocommerce_orders_json(path: Path) -> Path:
    """A page of orders: a registered customer's, and a guest's (customer_id 0) that was refunded."""
    orders = [woocommerce_order(101, 17, "eve@example.com"),
              woocommerce_order(102, 0, "Guest@Example.com", refund="-10.00")]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(orders))
    return path


def airbyte_envelope(path: Path, stream: str, records: list[dict], extra_lines: list[str] = ()) -> Path:
    """Airbyte's local JSON output: one {"stream", "data", "emitted_at"} per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"stream": stream, "data": r, "emitted_at": 1717236000000}) for r in records]
    path.write_text("\n".join([*lines, *extra_lines]) + "\n")
    return path
