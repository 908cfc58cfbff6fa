"""Integration entry points of the suite's run with failing methods (tests/workflow/conftest.py).

The integrate jobs import this module by name: the run puts tests/workflow on their PYTHONPATH.
"""

from __future__ import annotations

import numpy as np


def first_pcs(adata, *, batch_key, label_key, seed, params, threads, **_):
    """A working method: the first principal components."""
    adata.obsm["X_emb"] = np.asarray(adata.obsm["X_pca"][:, :8], dtype=np.float32)


def raises(adata, *, batch_key, label_key, seed, params, threads, **_):
    """A broken method: it raises deep inside its own code, on every seed."""
    raise ValueError("singular matrix in my_solver (2 of 300 cells have no counts)\nsecond line of detail")


def flaky(adata, *, batch_key, label_key, seed, params, threads, **_):
    """The first PCs on seed 0, an error on seed 1."""
    if seed == 1:
        raise RuntimeError("did not converge on seed 1")
    adata.obsm["X_emb"] = np.asarray(adata.obsm["X_pca"][:, :10], dtype=np.float32)
