"""Subsample, validate and preprocess a staged dataset into the AnnData every method reads.

Output contract (``results/{dataset}/preprocessed.h5ad``): ``layers["counts"]`` raw integer
counts, ``X`` = log1p(normalize_total(counts)), ``var["highly_variable"]`` (batch-aware),
``obsm["X_pca"]`` (on the highly variable genes), ``var["gene_symbol"]`` or ``var["gene_id"]``
when known, and ``uns["preprocess"]`` with the settings and what QC removed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scanpy as sc
import scipy.sparse as sp

from scdiva.bench.core.sampling import stratified_indices
from scdiva.bench.core.validate import (
    DatasetValidationError,
    check_categories,
    counts_matrix,
    is_ensembl,
    validate_dataset,
)

if TYPE_CHECKING:
    import anndata

logger = logging.getLogger(__name__)

SEURAT_V3_SPANS = (0.3, 0.5, 1.0)  # scanpy's default first


@dataclass(frozen=True)
class PreprocessSettings:
    """Config ``preprocess`` section; defaults suit the embedded PBMC data (see config/schema.yaml)."""

    min_genes: int = 50
    min_counts: int = 100
    min_cells: int = 3
    target_sum: float | None = 1e4
    n_top_genes: int = 2000
    hvg_flavor: str = "seurat_v3"
    n_pcs: int = 50
    min_cells_per_batch: int = 10

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> PreprocessSettings:
        return cls(**dict(section or {}))


def stratified_subsample(
    adata: anndata.AnnData, n_cells: int, strata: list[str], seed: int
) -> anndata.AnnData:
    """Keep ``n_cells`` cells, each stratum (batch x label) in proportion to its size.

    Quotas use largest remainders, so the total is exactly ``n_cells``; cells are drawn without
    replacement with a seeded generator and returned in their original order
    (:func:`scdiva.bench.core.sampling.stratified_indices`, which reads only these rows from a file).
    """
    if n_cells >= adata.n_obs:
        return adata
    return adata[stratified_indices(adata.obs, n_cells, strata, seed)].copy()


def set_gene_names(adata: anndata.AnnData, gene_id_column: str | None) -> None:
    """Use ``var[gene_id_column]`` as var_names if given; record symbols / Ensembl ids in var.

    Keeps ``var["gene_id"]`` (Ensembl) and ``var["gene_symbol"]`` when they can be told apart, so
    methods and reports can use either.
    """
    if gene_id_column is not None:
        original = adata.var_names.to_numpy(dtype=str)
        adata.var_names = adata.var[gene_id_column].astype(str).to_numpy()
        other = "gene_id" if is_ensembl(original) else "gene_symbol"
        if other not in adata.var.columns:
            adata.var[other] = original
    own = "gene_id" if is_ensembl(adata.var_names) else "gene_symbol"
    if own not in adata.var.columns:
        adata.var[own] = adata.var_names.to_numpy(dtype=str)
    if not adata.var_names.is_unique:
        n_dup = int(adata.var_names.duplicated().sum())
        logger.warning("%d duplicated gene names made unique by suffixing (-1, -2, ...)", n_dup)
        adata.var_names_make_unique()


def drop_small_batches(adata: anndata.AnnData, batch_key: str, minimum: int, *, dataset: str,
                       annotation: Mapping[str, Any] | None = None) -> dict[str, int]:
    """Drop the cells of batches with fewer than ``minimum`` cells, with a warning; returns {batch: cells}.

    A batch of one cell crashes seurat_v3 gene selection (a segmentation fault in its loess fit) and
    a batch of a few cells says nothing about mixing, so such batches are left out. A dropped batch
    that the annotation split names is an error (the split would be empty).
    """
    sizes = adata.obs[batch_key].astype(str).value_counts()
    small = {str(b): int(n) for b, n in sizes.items() if n < minimum}
    if not small:
        return {}
    logger.warning("dataset %r: dropping %d batches of obs[%r] with fewer than %d cells (config "
                   "`preprocess.min_cells_per_batch`): %s", dataset, len(small), batch_key, minimum,
                   ", ".join(f"{b} ({n} cells)" for b, n in list(small.items())[:10])
                   + (f" and {len(small) - 10} more" if len(small) > 10 else ""))
    named = sorted(set(small) & set((annotation or {}).get("reference_batches", []))
                   | set(small) & set((annotation or {}).get("query_batches", [])))
    if named:
        raise DatasetValidationError(
            f"dataset {dataset!r}: batches {named} of `datasets.{dataset}.annotation` have fewer than {minimum} "
            f"cells after subsampling and QC ({', '.join(f'{b}: {small[b]}' for b in named)}). Remove them from "
            f"the annotation split, raise `datasets.{dataset}.subsample`, or lower `preprocess.min_cells_per_batch`."
        )
    adata._inplace_subset_obs(~adata.obs[batch_key].astype(str).isin(small).to_numpy())
    if adata.obs[batch_key].dtype.name == "category":
        adata.obs[batch_key] = adata.obs[batch_key].cat.remove_unused_categories()
    if adata.obs[batch_key].nunique() < 2:
        raise DatasetValidationError(
            f"dataset {dataset!r}: after dropping the {len(small)} batches of obs[{batch_key!r}] with fewer than "
            f"{minimum} cells, {adata.obs[batch_key].nunique()} are left; at least 2 are needed. Is "
            f"`datasets.{dataset}.batch_key` a column of batches (donors, chemistries) rather than one nearly "
            "unique per cell? Otherwise lower `preprocess.min_cells_per_batch`."
        )
    return small


def qc_filter(adata: anndata.AnnData, settings: PreprocessSettings) -> dict[str, int]:
    """Drop low-quality cells, then rarely detected genes (on raw counts); returns what was removed."""
    x = adata.layers["counts"]
    counts = np.asarray(x.sum(axis=1)).ravel()
    genes = np.asarray((x > 0).sum(axis=1)).ravel()
    keep_cells = (counts >= settings.min_counts) & (genes >= settings.min_genes)
    removed = {"cells_in": int(adata.n_obs), "genes_in": int(adata.n_vars)}
    adata._inplace_subset_obs(keep_cells)
    detected_in = np.asarray((adata.layers["counts"] > 0).sum(axis=0)).ravel()
    adata._inplace_subset_var(detected_in >= settings.min_cells)
    removed.update(
        cells_removed=removed["cells_in"] - int(adata.n_obs),
        genes_removed=removed["genes_in"] - int(adata.n_vars),
        cells_kept=int(adata.n_obs),
        genes_kept=int(adata.n_vars),
    )
    return removed


def select_hvgs(adata: anndata.AnnData, settings: PreprocessSettings, batch_key: str) -> int:
    """Mark ``var["highly_variable"]`` batch-aware; all genes when there are no more than ``n_top_genes``.

    seurat_v3 (the default) models the mean-variance trend of raw counts, as scvi-tools and scIB do;
    cell_ranger works on the log-normalised X. With ``batch_key`` genes are ranked by how many batches
    find them variable, so a gene variable only because of one batch is not preferred.
    """
    if settings.n_top_genes >= adata.n_vars:
        adata.var["highly_variable"] = True
        logger.info("n_top_genes=%d >= %d genes: all genes are highly variable", settings.n_top_genes, adata.n_vars)
        return int(adata.n_vars)
    kwargs: dict[str, Any] = {"n_top_genes": settings.n_top_genes, "batch_key": batch_key, "subset": False}
    if settings.hvg_flavor == "cell_ranger":
        sc.pp.highly_variable_genes(adata, flavor="cell_ranger", **kwargs)
        return int(adata.var["highly_variable"].sum())
    # seurat_v3 fits a loess of log variance on log mean per batch; in small batches with many
    # rarely detected genes the fit can be singular ("near singularities"). A wider span smooths
    # over them (the usual workaround), so retry with one before giving up.
    for span in SEURAT_V3_SPANS:
        try:
            sc.pp.highly_variable_genes(adata, flavor="seurat_v3", layer="counts", span=span, **kwargs)
            adata.uns["hvg"]["span"] = span
            break
        except ValueError as err:
            if span == SEURAT_V3_SPANS[-1]:
                raise DatasetValidationError(
                    f"seurat_v3 highly variable gene selection failed ({err}); "
                    "set `preprocess.hvg_flavor: cell_ranger` or use more cells."
                ) from err
            logger.warning("seurat_v3 loess fit failed with span=%.1f (%s); retrying with a wider span", span, err)
    return int(adata.var["highly_variable"].sum())


def preprocess(
    adata: anndata.AnnData,
    *,
    dataset: str,
    batch_key: str,
    label_key: str,
    settings: PreprocessSettings | None = None,
    coarse_label_key: str | None = None,
    counts_layer: str | None = None,
    gene_id_column: str | None = None,
    subsample: int | None = None,
    annotation: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> anndata.AnnData:
    """Subsample, validate, QC-filter, normalise, select HVGs and run PCA; returns a new AnnData.

    Raises :class:`~scdiva.bench.core.validate.DatasetValidationError` before any computation if the
    data do not match the config entry.
    """
    settings = settings or PreprocessSettings()
    # A missing key is left to validate_dataset, which names it; subsampling needs both keys.
    if subsample is not None and subsample < adata.n_obs and {batch_key, label_key} <= set(adata.obs.columns):
        logger.info("subsampling %d of %d cells (stratified by %s x %s, seed %d)",
                    subsample, adata.n_obs, batch_key, label_key, seed)
        adata = stratified_subsample(adata, subsample, [batch_key, label_key], seed)
    elif subsample is not None and subsample > adata.n_obs:
        logger.warning("dataset %r: `datasets.%s.subsample` is %d but the data have %d cells: all %d are kept "
                       "(uns['preprocess']['subsample'] records %d)", dataset, dataset, subsample, adata.n_obs,
                       adata.n_obs, adata.n_obs)
    # What the subsample kept, not what was asked for: a subsample larger than the data keeps every cell.
    subsampled = min(int(subsample), adata.n_obs) if subsample else 0
    validate_dataset(
        adata,
        dataset=dataset,
        batch_key=batch_key,
        label_key=label_key,
        coarse_label_key=coarse_label_key,
        counts_layer=counts_layer,
        gene_id_column=gene_id_column,
        annotation=dict(annotation) if annotation else None,
    )

    counts = counts_matrix(adata, counts_layer, dataset=dataset)
    counts = sp.csr_matrix(counts, dtype=np.float32) if not sp.issparse(counts) else counts.tocsr().astype(np.float32)
    out = sc.AnnData(X=counts.copy(), obs=adata.obs.copy(), var=adata.var.copy())
    out.layers["counts"] = counts
    set_gene_names(out, gene_id_column)
    for key in (batch_key, label_key, coarse_label_key):
        if key is not None:
            out.obs[key] = out.obs[key].astype(str).astype("category")

    qc = qc_filter(out, settings)
    logger.info("QC removed %d of %d cells and %d of %d genes (min_counts=%d, min_genes=%d, min_cells=%d)",
                qc["cells_removed"], qc["cells_in"], qc["genes_removed"], qc["genes_in"],
                settings.min_counts, settings.min_genes, settings.min_cells)
    if out.n_obs == 0 or out.n_vars == 0:
        raise DatasetValidationError(
            f"dataset {dataset!r}: QC removed every cell or gene ({qc}); lower `preprocess.min_genes`, "
            "`preprocess.min_counts` or `preprocess.min_cells`."
        )
    dropped = drop_small_batches(out, batch_key, settings.min_cells_per_batch, dataset=dataset,
                                 annotation=annotation)
    check_categories(out, batch_key, dataset=dataset, config_key="batch_key", what="batches",
                     stage="after subsampling and QC")
    check_categories(out, label_key, dataset=dataset, config_key="label_key", what="labels",
                     stage="after subsampling and QC")

    sc.pp.normalize_total(out, target_sum=settings.target_sum)
    sc.pp.log1p(out)
    n_hvg = select_hvgs(out, settings, batch_key)
    n_pcs = min(settings.n_pcs, out.n_obs - 1, n_hvg - 1)
    sc.pp.pca(out, n_comps=n_pcs, mask_var="highly_variable", random_state=seed)
    logger.info("%d highly variable genes (%s), %d principal components", n_hvg, settings.hvg_flavor, n_pcs)

    out.uns["preprocess"] = {
        "dataset": dataset,  # the name a recipe checkpoint's corpus gives its batches (<dataset>/<batch>)
        **{k: v for k, v in asdict(settings).items() if v is not None},
        **qc,
        "n_highly_variable": n_hvg,
        "n_pcs_used": n_pcs,
        "subsample": subsampled,  # cells the subsample kept (0: not subsampled); before QC
        "subsample_requested": int(subsample) if subsample else 0,  # `datasets.<name>.subsample`
        "seed": seed,
        "batch_key": batch_key,
        "label_key": label_key,
        "counts_source": f"layers[{counts_layer}]" if counts_layer else "X",
        "dropped_batches": dict(dropped),
    }
    return out
