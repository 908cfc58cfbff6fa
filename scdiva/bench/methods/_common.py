"""Helpers shared by the integration methods: input checks, parameters, seeds, atomic output."""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from scdiva.bench.core.io import write_h5ad_atomic
from scdiva.bench.core.threads import limit_torch_threads

EMBEDDING_KEY = "X_emb"
#: where a graph-only integration method (record ``output="graph"``, e.g. BBKNN) writes its result:
#: a sparse cells x cells matrix whose stored entries in row i are the distances to cell i's neighbours
GRAPH_KEY = "graph_distances"


def resolve_params(method: str, defaults: Mapping[str, Any], params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge config ``methods.<method>`` over the method's defaults; reject unknown keys early."""
    params = dict(params or {})
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(
            f"config methods.{method} has unknown parameter(s) {unknown}; "
            f"{method} accepts {sorted(defaults)}. Fix config/config.yaml (or your --configfile)."
        )
    return {**defaults, **params}


def check_obs_key(adata, key: str | None, role: str, method: str) -> None:
    """Raise a clear error when ``adata.obs[key]`` is missing or has missing values."""
    if key is None:
        raise ValueError(f"{method} needs a {role} key, but the dataset's {role}_key is not set in the config.")
    if key not in adata.obs:
        raise KeyError(
            f"{method}: obs column {key!r} ({role}_key) not found; available columns: {list(adata.obs.columns)}. "
            f"Set datasets.<name>.{role}_key in the config."
        )
    if adata.obs[key].isna().any():
        raise ValueError(f"{method}: obs column {key!r} ({role}_key) has missing values; fill or drop them.")


def hvg_mask(adata) -> np.ndarray:
    """Boolean mask of highly variable genes (all genes if the column is absent or selects none)."""
    if "highly_variable" in adata.var and adata.var["highly_variable"].any():
        return adata.var["highly_variable"].to_numpy(dtype=bool)
    return np.ones(adata.n_vars, dtype=bool)


def raw_counts(adata, *, method: str):
    """``layers["counts"]`` of the preprocessed AnnData: the raw integer counts that
    :func:`scdiva.bench.core.validate.check_counts` accepted before preprocessing (the one place they are
    checked); a clear error naming ``method`` if the layer is absent."""
    if "counts" not in adata.layers:
        raise KeyError(f"{method} needs raw counts in layers['counts'] of the preprocessed file "
                       "(results/<dataset>/preprocessed.h5ad); rerun the preprocess rule.")
    return adata.layers["counts"]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (if imported) torch so repeated runs with one seed agree."""
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:  # deferred: imports torch (this module is imported at workflow parse time)
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return
    torch.manual_seed(seed)


# methods/scdiva.py imports it under this name; the helper itself is scdiva.bench.core.threads'
set_threads = limit_torch_threads


def categories(values: Iterable) -> list[str]:
    return sorted({str(v) for v in values})


def write_embedding(adata, path: str | Path, *, method: str, seed: int) -> None:
    """Write obs index + ``obsm["X_emb"]`` (a graph-only method: ``obsp["graph_distances"]``) +
    ``uns["runtime_s"]`` to ``path`` atomically.

    ``uns["embedding_flags"]`` (one-line warnings :func:`scdiva.bench.api.integrate` left about
    the embedding, e.g. constant columns) goes into the file's uns too. The file is written next to
    its destination under a temporary name and renamed, so an interrupted job never leaves a
    complete-looking output behind.

    Parameters
    ----------
    adata
        The AnnData the method wrote ``obsm["X_emb"]`` into.
    path
        Destination ``.h5ad``.
    method, seed
        Recorded in the file's uns.
    """
    # deferred: imports anndata (this module is imported at workflow parse time)
    import anndata as ad
    import pandas as pd

    out = ad.AnnData(obs=pd.DataFrame(index=adata.obs_names.copy()))
    if EMBEDDING_KEY in adata.obsm:
        out.obsm[EMBEDDING_KEY] = np.asarray(adata.obsm[EMBEDDING_KEY], dtype=np.float32)
    elif GRAPH_KEY in adata.obsp:
        out.obsp[GRAPH_KEY] = adata.obsp[GRAPH_KEY]
    else:
        raise KeyError(f"{method} wrote neither adata.obsm[{EMBEDDING_KEY!r}] nor adata.obsp[{GRAPH_KEY!r}]")
    out.uns["runtime_s"] = float(adata.uns["runtime_s"])
    out.uns["method"] = method
    out.uns["seed"] = int(seed)
    flags = [str(flag) for flag in adata.uns.get("embedding_flags", [])]
    if flags:
        out.uns["embedding_flags"] = flags
    write_h5ad_atomic(out, path)
