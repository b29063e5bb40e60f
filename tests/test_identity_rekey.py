"""A later file that links two customer keys re-keys the rows incremental models already hold.

An order known only by its buyer's phone is built into `stg_shop__orders` under the phone's
`ph_` key. The customers export that arrives next gives that phone an email: the identity
table now resolves the `ph_` key to the email's key, and the next Dagster dbt step sees the
kept key re-linked and rebuilds the incremental models (docs/importing.md).
"""

from __future__ import annotations

import os

import dagster as dg
import duckdb

from pipelines.defs.resources import RESOURCES, WarehouseResource
from pipelines.ingest import ingest
from tests import platform_fixtures as pf

ORDERS = [("staging", "stg_shop__orders"), ("staging", "stg_shop__customers")]


def _build(caplog) -> None:
    from pipelines.defs.dbt import assets

    caplog.clear()
    result = dg.materialize(assets, selection=dg.AssetSelection.assets(*ORDERS),
                            instance=dg.DagsterInstance.ephemeral(), resources=RESOURCES)
    assert result.success


def test_a_later_file_linking_keys_rebuilds_the_incremental_models(tmp_path, monkeypatch, caplog):
    for var in [v for v in os.environ if v.startswith("RETAIN_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("RETAIN_DATA_DIR", str(tmp_path))
    folder = tmp_path / "landing" / "shopify"
    folder.mkdir(parents=True)
    pf.write_csv(folder / "orders_phone.csv", pf.SHOPIFY_ORDERS_79, [dict(pf.SHOPIFY_ORDERS[2], **{
        "Email": "", "Phone": "+1 212-555-0101", "Cancelled at": "", "Financial Status": "paid"})])
    warehouse = tmp_path / "warehouse.duckdb"
    ingest(landing=tmp_path / "landing", warehouse=warehouse)
    _build(caplog)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        (first,) = con.execute("SELECT customer_id FROM staging.stg_shop__orders").fetchone()
    assert first.startswith("ph_")

    pf.shopify_customers_csv(folder / "customers_export.csv")  # Ana: email, phone +12125550101
    ingest(landing=tmp_path / "landing", warehouse=warehouse)
    from pipelines.defs.dbt.assets import _rekeyed_models

    assert "staging.stg_shop__orders" in _rekeyed_models(WarehouseResource())
    _build(caplog)
    assert "dbt build --full-refresh" in caplog.text
    with duckdb.connect(str(warehouse), read_only=True) as con:
        (now,) = con.execute("SELECT customer_id FROM staging.stg_shop__orders").fetchone()
        ana = con.execute("SELECT customer_id FROM raw.customers WHERE _source_file = 'shopify/customers_export.csv' "
                          "AND _source_row = 1").fetchone()[0]
    assert now == ana and ana.startswith("em_")
    assert _rekeyed_models(WarehouseResource()) == []  # nothing left to re-key: the next run is incremental again
