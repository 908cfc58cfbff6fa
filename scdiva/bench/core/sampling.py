"""Sampling cells: stratified subsamples and the reference / query split by batch for label transfer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from scdiva.bench.core.validate import check_batch_overlap

if TYPE_CHECKING:  # annotations only: reading formats must not import anndata and pandas
    import anndata as ad
    import pandas as pd



def _group_codes(obs: pd.DataFrame, strata: Sequence[str]) -> np.ndarray:
    """Group code per cell, groups ordered as the sorted strings of their values (as ``stratified_indices``
    always did), built column by column in O(n log n) rather than by joining strings row by row."""
    combined = np.zeros(len(obs), dtype=np.int64)
    for column in strata:
        _, codes = np.unique(obs[column].astype(str).to_numpy(), return_inverse=True)
        combined = combined * (int(codes.max()) + 1 if len(codes) else 1) + codes
    return np.unique(combined, return_inverse=True)[1].ravel()


def stratified_indices(obs: pd.DataFrame, n_cells: int, strata: Sequence[str], seed: int) -> np.ndarray:
    """Sorted row positions of ``n_cells`` cells, each stratum (e.g. batch x label) in proportion to its size.

    Quotas use largest remainders, so the total is exactly ``n_cells``; cells are drawn without
    replacement with a seeded generator. All rows when ``n_cells`` >= the number of cells.
    Thousands of strata cost one sort, not one pass per stratum.
    """
    n = len(obs)
    if n_cells >= n:
        return np.arange(n)
    codes = _group_codes(obs, strata)
    sizes = np.bincount(codes)
    exact = sizes * n_cells / n
    quota = np.floor(exact).astype(int)
    order = np.argsort(-(exact - quota), kind="stable")
    quota[order[: n_cells - quota.sum()]] += 1
    members = np.argsort(codes, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    rng = np.random.default_rng(seed)
    keep = [rng.choice(members[bounds[g]:bounds[g + 1]], size=q, replace=False) for g, q in enumerate(quota) if q]
    return np.sort(np.concatenate(keep))


def proportional_sample(groups: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted positions of about ``n`` cells drawn from each group in proportion to its size (seeded).

    Every group keeps at least one cell (so the total can exceed ``n``); the multi-modal and
    cross-species benchmarks subsample with it."""
    rng = np.random.default_rng(seed)
    keep = []
    for group in np.unique(groups):
        cells = np.flatnonzero(groups == group)
        take = max(1, int(round(n * cells.size / groups.size)))
        keep.append(rng.choice(cells, size=min(take, cells.size), replace=False))
    return np.sort(np.concatenate(keep))


def held_out_by_group(groups: np.ndarray, fraction: float, seed: int, *, order: Sequence[str] | None = None,
                      at_least_one: bool = False) -> np.ndarray:
    """Boolean mask of held-out cells: ``fraction`` of each group's cells (e.g. each batch or label), seeded.

    Groups are drawn from in ``order`` (default: sorted), one draw of the same generator after the
    other. With ``at_least_one`` a group of two or more cells gives at least one cell and a one-cell
    group none (every class with a training cell is tested); otherwise each gives its rounded share.
    """
    groups = np.asarray(groups).astype(str)
    rng = np.random.default_rng(seed)
    mask = np.zeros(groups.size, dtype=bool)
    for group in (np.unique(groups) if order is None else order):
        cells = np.flatnonzero(groups == group)
        if at_least_one and cells.size < 2:
            continue
        n = int(round(fraction * cells.size))
        mask[rng.choice(cells, size=max(1, n) if at_least_one else n, replace=False)] = True
    return mask


def split_reference_query(
    adata: ad.AnnData,
    *,
    batch_key: str,
    label_key: str,
    reference_batches: Sequence[str],
    query_batches: Sequence[str] | None = None,
    dataset: str = "adata",
) -> tuple[ad.AnnData, ad.AnnData]:
    """Split cells into a labelled reference and a query by batch.

    `query_batches=None` takes every batch not in the reference. Raises a `ValueError` naming
    the key or batch before any training, so a typo in the config fails fast.
    """
    for key in (batch_key, label_key):
        if key not in adata.obs:
            raise ValueError(f"obs has no column '{key}'; columns are {list(adata.obs.columns)}")
    batches = adata.obs[batch_key].astype(str)
    present = set(batches)
    reference_batches = [str(b) for b in reference_batches]
    query_batches = (
        sorted(present - set(reference_batches)) if query_batches is None else [str(b) for b in query_batches]
    )
    unknown = [b for b in [*reference_batches, *query_batches] if b not in present]
    if unknown:
        raise ValueError(
            f"annotation batches {unknown} are not values of obs['{batch_key}'] (present: {sorted(present)}); "
            "fix datasets.<name>.annotation in the config"
        )
    check_batch_overlap(reference_batches, query_batches, dataset=dataset)
    if not reference_batches or not query_batches:
        raise ValueError("annotation needs at least one reference batch and one query batch")
    reference = adata[batches.isin(reference_batches).to_numpy()].copy()
    query = adata[batches.isin(query_batches).to_numpy()].copy()
    return reference, query


def unseen_classes(reference: ad.AnnData, query: ad.AnnData, label_key: str) -> dict[str, int]:
    """Query classes absent from the reference, with their cell counts.

    No reference-trained classifier can predict them, so their cells count as errors.
    """
    ref = set(reference.obs[label_key].astype(str))
    counts = query.obs[label_key].astype(str).value_counts()
    return {label: int(n) for label, n in counts.items() if label not in ref}
