"""Dagster definitions per domain: each subpackage exports `assets`, `asset_checks`, `sensors`, `jobs`."""
