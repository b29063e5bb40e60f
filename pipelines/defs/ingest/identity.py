"""Dagster asset for the customer identity table: `raw/_customer_identity` and `raw/_identity_match`.

Runs after every `raw/<source>` asset: `pipelines.importers.identity.resolve` recomputes which
platform customer keys are one customer, and each source's match rate, from the whole raw
layer (see docs/importing.md). dbt reads both tables as the `identity` source.
"""

import dagster as dg

from pipelines.core.contract import load_contract
from pipelines.core.spark import is_spark
from pipelines.defs.ingest.assets import GROUP, POOL, raw_key
from pipelines.defs.resources import WarehouseResource
from pipelines.importers.identity import resolve
from pipelines.ingest import lake


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            raw_key("_customer_identity"), group_name=GROUP, kinds={"duckdb"},
            deps=[raw_key(s) for s in load_contract()],
            description="Customer key (per platform) → retain customer id, by normalised email, else E.164 phone.",
        ),
        dg.AssetSpec(
            raw_key("_identity_match"), group_name=GROUP, kinds={"duckdb"},
            deps=[raw_key(s) for s in load_contract()],
            description="Per source and platform: rows matched to a shop customer and rows kept unmatched.",
        ),
    ],
    pool=POOL,
)
def customer_identity(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """Resolve customer identity across platforms and report each source's match rate."""
    with warehouse.connect() as con:
        rates = resolve(con)
        keys = con.execute("SELECT count(*) FROM raw._customer_identity").fetchone()[0]
        if is_spark():  # identity and ledger snapshots in the Parquet raw layer
            lake.sync(con, tables=[])
    for source, platform, rows, matched, unmatched, rate in rates:
        context.log.info(f"{source} from {platform}: {matched:,} of {rows:,} rows matched ({(rate or 0):.0%}), "
                         f"{unmatched:,} kept unmatched")
    # rows_in / rows_out 0: the run summary's ingest rows count landing rows, not this derived table
    yield dg.MaterializeResult(
        asset_key=raw_key("_customer_identity"), metadata={"dagster/row_count": keys, "rows_in": 0, "rows_out": 0}
    )
    yield dg.MaterializeResult(
        asset_key=raw_key("_identity_match"),
        metadata={
            "dagster/row_count": len(rates),
            "rows_in": 0,
            "rows_out": 0,
            "match_rates": dg.MetadataValue.json(
                [{"source": s, "platform": p, "rows": n, "matched": m, "unmatched": u} for s, p, n, m, u, _ in rates]
            ),
        },
    )
