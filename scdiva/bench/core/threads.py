"""Keep a job within its Snakemake ``threads``: BLAS/OpenMP, numba, XLA (JAX) and torch thread pools.

Without this, every job's libraries start one thread per core, and parallel jobs on a small
machine oversubscribe it many times over. The one place in scdiva.bench that limits threads:
:func:`limit_threads` for the whole process (at a job's start), :func:`limited_threadpools` for a
block, :func:`limit_torch_threads` for torch's intra-op pool.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - shipped with scikit-learn
    threadpool_limits = None


def _count(threads: int) -> int:
    return max(1, int(threads))


def limit_threads(threads: int) -> None:
    """Call at the start of a job, before JAX is imported (XLA reads its flags once)."""
    n = str(_count(threads))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = n
    if n == "1":
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_cpu_multi_thread_eigen" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1".strip()
    if threadpool_limits is not None:
        threadpool_limits(int(n))


@contextlib.contextmanager
def limited_threadpools(threads: int) -> Iterator[None]:
    """BLAS/OpenMP thread pools limited to ``threads`` inside the block (threadpoolctl), restored after."""
    if threadpool_limits is None:  # pragma: no cover - shipped with scikit-learn
        yield
        return
    with threadpool_limits(limits=threads):
        yield


def limit_torch_threads(threads: int) -> None:
    """Limit torch's intra-op threads to the job's Snakemake ``threads``."""
    # deferred: imports torch (it reads OMP_NUM_THREADS when loaded, so after limit_threads; jobs without torch skip it)
    import torch

    torch.set_num_threads(_count(threads))
