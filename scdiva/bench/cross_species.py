"""Cross-species benchmark: cell-type annotation trained on one species and applied to the other, and
the two species integrated with species as the batch.

Genes are mapped between species by **upper-casing the symbols** (mouse ``Gcg`` -> ``GCG``), the
simple baseline of cross-species work. No orthology table is used: none of the installed packages
(scanpy, scvi-tools, scib, ...) ships one for offline use, and the packages that provide one
(e.g. ``pyensemblorthologues``, ``pybiomart``) download it from Ensembl at run time, which this
workflow does not do. Symbols that collide after upper-casing (mouse ``PISD`` and ``Pisd``) keep the
gene with more counts. One-to-many orthologs and renamed genes are lost (a known limitation).

Annotation scores (:func:`cross_species_annotation_scores`), on the query cells:

- ``accuracy`` / ``macro_f1``: over the query cells whose type the reference has (the *shared*
  types), in [0, 1], higher is better; macro-F1 is the unweighted mean of the shared types' F1;
- ``f1:<type>``: F1 of each shared type, in [0, 1];
- ``accuracy_all``: over every query cell, in [0, 1]; cells of types the reference lacks can never
  be right, so this is at most ``1 - unseen_fraction``;
- ``unseen_fraction`` and ``unseen_cells:<type>``: query cells (fraction, counts per type) whose
  type the reference lacks - reported, not dropped.

Integration of both species (species = batch) is scored with the workflow's scib-metrics table
(:func:`scdiva.bench.metrics.compute_integration_metrics`; every value in [0, 1], higher is better).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

SPECIES_KEY = "species"
BATCH_KEY = "xs_batch"  # species:batch, so the query's batches are new to a reference model
LABEL_KEY = "cell_type"
ANNOTATION_METHODS = ("scdiva", "logreg", "knn_pca", "scanvi")
INTEGRATION_METHODS = ("unintegrated", "harmony", "scvi", "scdiva")
#: ScDiVa here: a tiny model pretrained on both species' cells without labels (masked expression +
#: the ELBO, species:batch as the decoder's batch), then fine-tuned on the reference's labels with
#: the workflow's annotation fine-tune (scdiva.bench.methods.scdiva.fit_annotation_model)
SCDIVA_DEFAULTS: dict[str, Any] = {"size": "tiny", "pretrain_steps": 800, "pretrain_batch_size": 128,
                                   "finetune": {}}
MIN_SHARED_GENES = 200


class CrossSpeciesError(ValueError):
    """Bad cross-species input (the message names the datasets, the genes and the fix)."""


def mapped_symbols(var_names) -> pd.Index:
    """Upper-cased gene symbols (the cross-species key)."""
    return pd.Index([str(g).upper() for g in var_names])


def shared_genes(reference_genes, query_genes) -> list[str]:
    """Upper-cased symbols present in both species, in the reference's order."""
    query = set(mapped_symbols(query_genes))
    return [g for g in dict.fromkeys(mapped_symbols(reference_genes)) if g in query]


def check_species_pair(reference: str, query: str, reference_genes, query_genes, *,
                       min_shared_genes: int = MIN_SHARED_GENES) -> list[str]:
    """The shared genes of a pair; :class:`CrossSpeciesError` when fewer than ``min_shared_genes``."""
    shared = shared_genes(reference_genes, query_genes)
    if len(shared) < min_shared_genes:
        example_ref = list(mapped_symbols(reference_genes)[:3])
        example_query = list(mapped_symbols(query_genes)[:3])
        raise CrossSpeciesError(
            f"cross-species pair {reference!r} -> {query!r}: only {len(shared)} genes are shared after upper-casing "
            f"symbols (at least {min_shared_genes} needed; e.g. {example_ref} vs {example_query}). Both datasets "
            "need gene symbols in var_names (or set gene_id_column to a var column of symbols); Ensembl ids of "
            "different species never match.")
    return shared


def _to_symbols(adata: ad.AnnData, dataset: str) -> ad.AnnData:
    """Counts with upper-cased symbols; a collision keeps the gene with more counts."""
    import scipy.sparse as sp

    counts = sp.csr_matrix(adata.X, dtype=np.float32)
    symbols = mapped_symbols(adata.var_names)
    totals = np.asarray(counts.sum(0)).ravel()
    order = np.lexsort((-totals, symbols.to_numpy()))  # per symbol, the highest total first
    keep = np.sort(order[~symbols[order].duplicated()])
    out = ad.AnnData(X=counts[:, keep], obs=adata.obs.copy(), var=pd.DataFrame(index=symbols[keep]))
    out.uns["collisions"] = int(len(symbols) - len(keep))
    return out


def prepare_pair(reference: ad.AnnData, query: ad.AnnData, *, reference_entry: Mapping[str, Any],
                 query_entry: Mapping[str, Any], reference_name: str, query_name: str,
                 min_shared_genes: int = MIN_SHARED_GENES, n_top_genes: int = 2000,
                 subsample: int | None = None, seed: int = 0) -> ad.AnnData:
    """Both species on their shared upper-cased genes, one AnnData.

    ``obs``: ``species``, ``cell_type`` (from each entry's ``label_key``), ``xs_batch``
    (``species:batch``), ``dataset``; ``layers["counts"]``; ``X`` log1p counts per 10,000;
    ``var["highly_variable"]`` (seurat_v3 with species as the batch); ``obsm["X_pca"]``.
    ``subsample`` keeps at most that many cells per species (stratified by cell type, seeded).
    """
    import scanpy as sc

    parts = []
    for adata, entry, name in ((reference, reference_entry, reference_name), (query, query_entry, query_name)):
        for key in (entry["label_key"], entry["batch_key"]):
            if key not in adata.obs:
                raise CrossSpeciesError(f"dataset {name!r}: obs column {key!r} is missing "
                                        f"(columns: {list(adata.obs.columns)})")
        if subsample is not None and adata.n_obs > subsample:
            from scdiva.bench.multimodal import _stratified

            adata = adata[_stratified(adata.obs[entry["label_key"]].astype(str).to_numpy(), subsample, seed)]
        part = _to_symbols(adata, name)
        part.obs = pd.DataFrame({SPECIES_KEY: entry["species"], LABEL_KEY: adata.obs[entry["label_key"]].astype(str).to_numpy(),
                                 BATCH_KEY: [f"{entry['species']}:{b}" for b in adata.obs[entry["batch_key"]].astype(str)],
                                 "dataset": name}, index=[f"{name}:{c}" for c in adata.obs_names])
        parts.append(part)
    genes = check_species_pair(reference_name, query_name, parts[0].var_names, parts[1].var_names,
                               min_shared_genes=min_shared_genes)
    combined = ad.concat([p[:, genes] for p in parts], join="inner")
    for column in (SPECIES_KEY, LABEL_KEY, BATCH_KEY, "dataset"):
        combined.obs[column] = combined.obs[column].astype("category")
    combined.layers["counts"] = combined.X.copy()
    sc.pp.highly_variable_genes(combined, n_top_genes=min(n_top_genes, combined.n_vars), flavor="seurat_v3",
                                batch_key=SPECIES_KEY, layer="counts")
    sc.pp.normalize_total(combined, target_sum=1e4)
    sc.pp.log1p(combined)
    hvg = combined.var["highly_variable"].to_numpy()
    combined.obsm["X_pca"] = sc.pp.pca(combined.X[:, hvg], n_comps=min(50, combined.n_obs - 1, int(hvg.sum()) - 1),
                                       random_state=seed)
    combined.uns["cross_species"] = {"reference": reference_name, "query": query_name, "n_shared_genes": len(genes),
                                     "collisions": {reference_name: parts[0].uns["collisions"],
                                                    query_name: parts[1].uns["collisions"]},
                                     "species": {reference_name: reference_entry["species"],
                                                 query_name: query_entry["species"]}}
    return combined


def cross_species_annotation_scores(true, predicted, reference_types) -> dict[str, float]:
    """Scores of predictions on the query (see the module docstring)."""
    from scdiva.bench.annotation.metrics import annotation_metrics

    true, predicted = np.asarray(true, dtype=str), np.asarray(predicted, dtype=str)
    shared = np.isin(true, list(reference_types))
    if not shared.any():
        raise CrossSpeciesError("the query has no cell of a type the reference has; nothing to score")
    scores = annotation_metrics(true[shared], predicted[shared])
    scores["accuracy_all"] = float((true == predicted).mean())
    scores["unseen_fraction"] = float((~shared).mean())
    for label, n in pd.Series(true[~shared]).value_counts().sort_index().items():
        scores[f"unseen_cells:{label}"] = float(n)
    return scores


def pretrain_scdiva(combined: ad.AnnData, *, seed: int, params: Mapping[str, Any]):
    """A tiny ScDiVa pretrained on every cell of both species, without labels (species:batch = batch)."""
    from scdiva import ScDiVaModel

    data = ad.AnnData(X=combined.layers["counts"], obs=combined.obs[[BATCH_KEY]].copy(),
                      var=pd.DataFrame(index=combined.var_names))
    model = ScDiVaModel.from_config(str(params["size"]), genes=data.var_names, seed=seed, device="cpu")
    model.fit(data, tasks=["masked_expression", "integration"], batch_key=BATCH_KEY, max_steps=int(params["pretrain_steps"]),
              batch_size=int(params["pretrain_batch_size"]), seed=seed, progress_bar=False, layer=None,
              data_name="cross_species_corpus")
    return model


def scdiva_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    wrong = sorted(set(params or {}) - set(SCDIVA_DEFAULTS))
    if wrong:
        raise CrossSpeciesError(f"cross_species scdiva has no parameters {wrong}; it accepts {sorted(SCDIVA_DEFAULTS)}")
    return {**SCDIVA_DEFAULTS, **(params or {})}


def _fitter(method: str):
    from scdiva.bench.annotation.baselines import fit_knn_pca, fit_logreg, fit_scanvi

    return {"logreg": fit_logreg, "knn_pca": fit_knn_pca, "scanvi": fit_scanvi}[method]


def run_cross_species_annotation(combined: ad.AnnData, method: str, *, reference: str, seed: int = 0,
                                 params: Mapping[str, Any] | None = None, threads: int = 1
                                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train ``method`` on the cells of dataset ``reference``, predict the other's; returns the scores
    (long form: ``method, seed, metric, value``) and the predictions (cell, true, predicted)."""
    import torch

    if method not in ANNOTATION_METHODS:
        raise CrossSpeciesError(f"unknown cross-species annotation method {method!r}; known: {ANNOTATION_METHODS}")
    torch.set_num_threads(threads)
    is_ref = (combined.obs["dataset"] == reference).to_numpy()
    if not is_ref.any() or is_ref.all():
        raise CrossSpeciesError(f"reference {reference!r} must be one of the two datasets of the pair")
    ref, query = combined[is_ref].copy(), combined[~is_ref].copy()
    start = time.perf_counter()
    if method == "scdiva":
        from scdiva.bench.methods.scdiva import SCDIVA_ANNOTATION_DEFAULTS, fit_annotation_model

        p = scdiva_params(params)
        model = pretrain_scdiva(combined, seed=seed, params=p)
        finetune = {**SCDIVA_ANNOTATION_DEFAULTS, **p["finetune"]}
        fitted = fit_annotation_model(model, ref, label_key=LABEL_KEY, batch_key=BATCH_KEY, seed=seed, params=finetune)
    else:
        fitted = _fitter(method)(ref, label_key=LABEL_KEY, batch_key=BATCH_KEY, seed=seed, params=dict(params or {}),
                                 threads=threads)
    if fitted.map_query is not None:
        fitted.map_query(query)
    predicted = np.asarray(fitted.predict(query), dtype=str)
    runtime = time.perf_counter() - start
    true = query.obs[LABEL_KEY].astype(str).to_numpy()
    scores = cross_species_annotation_scores(true, predicted, set(ref.obs[LABEL_KEY].astype(str)))
    scores["runtime_s"] = runtime
    frame = pd.DataFrame({"method": method, "seed": seed, "metric": list(scores), "value": list(scores.values())})
    predictions = pd.DataFrame({"cell": query.obs_names, "true": true, "predicted": predicted})
    return frame, predictions


def run_cross_species_integration(combined: ad.AnnData, method: str, *, seed: int = 0,
                                  params: Mapping[str, Any] | None = None, threads: int = 1
                                  ) -> tuple[pd.DataFrame, np.ndarray]:
    """Embed both species with species as the batch and score the embedding with scib-metrics
    (labels: the cell types). Returns the scores (long form) and the embedding."""
    from scdiva.bench.metrics import aggregate_scores, compute_integration_metrics

    if method not in INTEGRATION_METHODS:
        raise CrossSpeciesError(f"unknown cross-species integration method {method!r}; known: {INTEGRATION_METHODS}")
    start = time.perf_counter()
    if method == "scdiva":
        model = pretrain_scdiva(combined, seed=seed, params=scdiva_params(params))
        embedding = model.get_latent(ad.AnnData(X=combined.layers["counts"], var=pd.DataFrame(index=combined.var_names)),
                                     layer=None)
    else:
        from scdiva.bench.methods import integrate

        data = combined.copy()
        data.obs["_batch"] = data.obs[SPECIES_KEY].astype(str).astype("category")
        integrate(data, method, batch_key="_batch", label_key=LABEL_KEY, seed=seed, params=dict(params or {}),
                  threads=threads)
        embedding = np.asarray(data.obsm["X_emb"], dtype=np.float32)
    runtime = time.perf_counter() - start
    values = compute_integration_metrics(embedding, batches=combined.obs[SPECIES_KEY].astype(str).to_numpy(),
                                         labels=combined.obs[LABEL_KEY].astype(str).to_numpy(),
                                         pre_embedding=combined.obsm["X_pca"], seed=seed, progress=False)
    values = {**values, **aggregate_scores(values), "runtime_s": runtime}
    frame = pd.DataFrame({"method": method, "seed": seed, "metric": list(values), "value": list(values.values())})
    return frame, embedding


# --- checks before any job (the workflow calls these when it parses the config) -------------------

def check_cross_species_config(section: Mapping[str, Any], paths: Mapping[str, Any]) -> None:
    """Every pair of config ``cross_species`` against its files: datasets configured, species differ,
    obs columns present, and at least ``min_shared_genes`` genes shared after upper-casing.

    ``paths`` maps dataset names to local .h5ad paths. Reads obs and var only.
    """
    from scdiva.bench.validate import read_source_tables

    datasets = section.get("datasets", {})
    tables = {}
    for name, entry in datasets.items():
        obs, var, *_ = read_source_tables(paths[name], dataset=name)
        for role in ("label_key", "batch_key"):
            if entry[role] not in obs.columns:
                raise CrossSpeciesError(f"dataset {name!r}: config `cross_species.datasets.{name}.{role}` "
                                        f"{entry[role]!r} is not an obs column of {paths[name]}; columns: "
                                        f"{list(obs.columns)}")
        genes = var[entry["gene_id_column"]] if entry.get("gene_id_column") else var.index
        tables[name] = genes
    for i, pair in enumerate(section.get("pairs", [])):
        for role in ("reference", "query"):
            if pair[role] not in datasets:
                raise CrossSpeciesError(f"config `cross_species.pairs[{i}].{role}` names {pair[role]!r}, which is not "
                                        f"under `cross_species.datasets` ({sorted(datasets)})")
        ref, query = pair["reference"], pair["query"]
        if datasets[ref]["species"] == datasets[query]["species"]:
            raise CrossSpeciesError(f"config `cross_species.pairs[{i}]`: {ref!r} and {query!r} are both "
                                    f"{datasets[ref]['species']!r}; a cross-species pair needs two species")
        check_species_pair(ref, query, tables[ref], tables[query],
                           min_shared_genes=int(section.get("min_shared_genes", MIN_SHARED_GENES)))
