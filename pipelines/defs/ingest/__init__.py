"""Ingestion in Dagster: `raw/<source>` assets, their ledger checks, `ingest_job`, `landing_sensor`.

Exports the lists `pipelines/definitions.py` collects: `assets`, `asset_checks`, `sensors`,
`jobs`. The plain-Python work lives in `pipelines.ingest`.
"""

from pipelines.defs.ingest.assets import GROUP, POOL, ingest_assets, ingest_checks, ingest_job, raw_key
from pipelines.defs.ingest.identity import customer_identity
from pipelines.defs.ingest.sensor import build_landing_sensor, scan_landing

landing_sensor = build_landing_sensor(ingest_job)

assets = [*ingest_assets, customer_identity]
asset_checks = list(ingest_checks)
sensors = [landing_sensor]
jobs = [ingest_job]

__all__ = [
    "GROUP",
    "POOL",
    "asset_checks",
    "assets",
    "build_landing_sensor",
    "ingest_job",
    "jobs",
    "landing_sensor",
    "raw_key",
    "scan_landing",
    "sensors",
]
