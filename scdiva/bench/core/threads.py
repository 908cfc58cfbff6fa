"""Keep a job within its Snakemake ``threads``: BLAS/OpenMP, numba and XLA (JAX) thread pools.

Without this, every job's libraries start one thread per core, and parallel jobs on a small
machine oversubscribe it many times over.
"""

from __future__ import annotations

import os


def limit_threads(threads: int) -> None:
    """Call at the start of a job, before JAX is imported (XLA reads its flags once)."""
    n = str(max(1, int(threads)))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = n
    if n == "1":
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_cpu_multi_thread_eigen" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1".strip()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - shipped with scikit-learn
        return
    threadpool_limits(int(n))
