"""Reference / query split by batch for label transfer."""

from __future__ import annotations

from collections.abc import Sequence

import anndata as ad

from scdiva.bench.validate import check_batch_overlap


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
