"""Platform importers: Shopify, WooCommerce, helpdesk, review and survey exports → the contract sources.

Each kind of platform file is one YAML mapping (`platforms/<platform>/<kind>.yaml`, or a
`_mapping*.yaml` in a landing folder for any other tool) compiled into the loader's plans, so
validation, quarantine and the ledger are ingestion's own. See docs/importing.md.
"""

from pipelines.importers.driver import import_folders, ingest_platform_file, ingest_platforms
from pipelines.importers.identity import match_rates, resolve
from pipelines.importers.mapping import PLATFORMS, Mapping, MappingError, load_mapping, mappings_for

__all__ = [
    "PLATFORMS",
    "Mapping",
    "MappingError",
    "import_folders",
    "ingest_platform_file",
    "ingest_platforms",
    "load_mapping",
    "mappings_for",
    "match_rates",
    "resolve",
]
