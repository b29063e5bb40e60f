"""Thread limits for small workloads.

scikit-learn's gradient boosting and BLAS use every core through OpenMP/OpenBLAS. On small
data the work per thread is tiny and, on a machine that is busy with other jobs, spinning
threads make a one-second fit take a minute; one thread is then faster.
"""

from __future__ import annotations

from contextlib import nullcontext

from threadpoolctl import threadpool_limits

#: Below this many rows a single thread is used.
SMALL_ROWS = 200_000


def threads_for(n_rows: int):
    """A context manager limiting native thread pools to one thread for small inputs."""
    return threadpool_limits(1) if n_rows < SMALL_ROWS else nullcontext()
