"""retain's pipelines: Dagster definitions, ingestion, importers, outreach, publishing and the `retain` CLI.

Importing this package turns Python's bytecode cache back on for this process and the
processes it starts (dbt, Streamlit, the test's subprocesses), where the environment turned it
off (`PYTHONDONTWRITEBYTECODE=1`, set in some machine images). Without the cache every
process compiles each module it imports from source: a `retain run` imports about 2,500
(Dagster, dbt, scikit-learn, pandas), and on the 300-customer shop's daily run that cost
12 s of 45 (44.6 s from source against 32.5 s from the cache, two pairs on one machine). The
cache is written next to the installed packages, in `__pycache__` folders that git ignores.
"""

import os as _os
import sys as _sys

_sys.dont_write_bytecode = False
_os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
