"""What the browser tests share: the data folder they serve."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def browser_data_dir(request, purpose: str) -> Path:
    """The data folder browser tests serve: `RETAIN_DASHBOARD_TEST_DATA_DIR` if set, else the
    shared pipeline run's. Skips, naming `purpose`, when no headless browser is installed."""
    from dashboards import browser

    reason = browser.missing_browser()
    if reason:
        pytest.skip(f"no headless browser for the {purpose}: {reason}")
    reuse = os.environ.get("RETAIN_DASHBOARD_TEST_DATA_DIR")
    if reuse:
        return Path(reuse).resolve()
    return request.getfixturevalue("pipeline").data_dir
