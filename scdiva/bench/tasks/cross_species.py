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
(:func:`scdiva.bench.tasks.integration.metrics.compute_integration_metrics`; every value in [0, 1], higher is better).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from scdiva.bench.core.sampling import proportional_sample
from scdiva.bench.core.threads import limit_torch_threads
from scdiva.bench.core.validate import read_source_tables
from scdiva.bench.methods.record import MethodRecord
from scdiva.bench.tasks.annotation.baselines import (
    KNN_PCA_DEFAULTS,
    LOGREG_DEFAULTS,
    SCANVI_ANNOTATION_DEFAULTS,
)
from scdiva.bench.tasks.annotation.metrics import annotation_metrics
from scdiva.bench.tasks.annotation.run import checked_annotator, checked_predictions, without_labels
from scdiva.bench.tasks.integration.harmony import HARMONY_DEFAULTS
from scdiva.bench.tasks.integration.metrics import aggregate_scores, compute_integration_metrics
from scdiva.bench.tasks.integration.run import run as integrate
from scdiva.bench.tasks.integration.scvi_model import SCVI_DEFAULTS
from scdiva.bench.tasks.integration.unintegrated import UNINTEGRATED_DEFAULTS

SPECIES_KEY = "species"
BATCH_KEY = "xs_batch"  # species:batch, so the query's batches are new to a reference model
LABEL_KEY = "cell_type"
#: registry tasks of the two halves (the methods are MethodRecords, see :func:`builtin_records`)
ANNOTATION_TASK, INTEGRATION_TASK = "cross_species_annotation", "cross_species_integration"
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
    # deferred: imports scanpy (this module is imported at workflow parse time)
    import scanpy as sc

    parts = []
    for adata, entry, name in ((reference, reference_entry, reference_name), (query, query_entry, query_name)):
        for key in (entry["label_key"], entry["batch_key"]):
            if key not in adata.obs:
                raise CrossSpeciesError(f"dataset {name!r}: obs column {key!r} is missing "
                                        f"(columns: {list(adata.obs.columns)})")
        if subsample is not None and adata.n_obs > subsample:
            adata = adata[proportional_sample(adata.obs[entry["label_key"]].astype(str).to_numpy(), subsample, seed)]
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
    # deferred: imports torch (this module is imported at workflow parse time)
    from scdiva import ScDiVaModel

    data = ad.AnnData(X=combined.layers["counts"], obs=combined.obs[[BATCH_KEY]].copy(),
                      var=pd.DataFrame(index=combined.var_names))
    model = ScDiVaModel.from_config(str(params["size"]), genes=data.var_names, seed=seed, device="cpu")
    model.fit(data, tasks=["masked_expression", "integration"], batch_key=BATCH_KEY, max_steps=int(params["pretrain_steps"]),
              batch_size=int(params["pretrain_batch_size"]), seed=seed, progress_bar=False, layer=None,
              data_name="cross_species_corpus")
    return model


def builtin_records() -> tuple:
    """The methods of both halves as records (collected by :mod:`scdiva.bench.methods.catalog`):
    annotation - ScDiVa (the model) and the annotation benchmark's logistic regression, kNN on PCA and
    scANVI (same functions and defaults); integration - the integration benchmark's unintegrated PCA
    (control), Harmony and scVI, and ScDiVa's pretrained latent. Rules and sections list methods from here."""
    xs, a, m = "scdiva.bench.tasks.cross_species", "scdiva.bench.tasks.annotation.baselines", "scdiva.bench.tasks.integration"
    return (
        MethodRecord("scdiva", ANNOTATION_TASK, f"{xs}:fit_scdiva_cross_species", SCDIVA_DEFAULTS, needs_labels=True,
                     role="model", pretrains=True,
                     description="tiny ScDiVa pretrained on both species, fine-tuned on the reference"),
        MethodRecord("logreg", ANNOTATION_TASK, f"{a}:fit_logreg", LOGREG_DEFAULTS, needs_labels=True),
        MethodRecord("knn_pca", ANNOTATION_TASK, f"{a}:fit_knn_pca", KNN_PCA_DEFAULTS, needs_labels=True),
        MethodRecord("scanvi", ANNOTATION_TASK, f"{a}:fit_scanvi", SCANVI_ANNOTATION_DEFAULTS, needs_labels=True),
        MethodRecord("unintegrated", INTEGRATION_TASK, f"{m}.unintegrated:run_unintegrated", UNINTEGRATED_DEFAULTS,
                     role="control", description="PCA of both species (no integration)"),
        MethodRecord("harmony", INTEGRATION_TASK, f"{m}.harmony:run_harmony", HARMONY_DEFAULTS),
        MethodRecord("scvi", INTEGRATION_TASK, f"{m}.scvi_model:run_scvi", SCVI_DEFAULTS),
        MethodRecord("scdiva", INTEGRATION_TASK, f"{xs}:embed_scdiva_cross_species", SCDIVA_DEFAULTS, role="model",
                     pretrains=True,
                     description="latent of a tiny ScDiVa pretrained on both species"),
    )


def cross_species_record(task: str, method: str):
    """The record of ``method`` for ``task``; an unknown method is a :class:`CrossSpeciesError`."""
    records = {record.name: record for record in builtin_records() if record.task == task}
    if method not in records:
        raise CrossSpeciesError(f"unknown {task.replace('_', ' ')} method {method!r}; known: {', '.join(records)}")
    return records[method]


def method_params(task: str, method: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """``params`` over the method's defaults; unknown keys are a :class:`CrossSpeciesError` naming them."""
    try:
        return cross_species_record(task, method).params(params)
    except ValueError as err:
        if isinstance(err, CrossSpeciesError):
            raise
        raise CrossSpeciesError(f"cross_species.params.{method}: {err}") from None


def fit_scdiva_cross_species(reference: ad.AnnData, *, label_key: str, batch_key: str, seed: int,
                             params: Mapping[str, Any], threads: int, corpus: ad.AnnData):
    """ScDiVa's annotator: pretrained without labels on ``corpus`` (both species), then fine-tuned on the
    reference labels with the annotation benchmark's fine-tune (its defaults overlaid by ``params["finetune"]``)."""
    # deferred: imports torch (this module is imported at workflow parse time)
    from scdiva.bench.methods.scdiva import SCDIVA_ANNOTATION_DEFAULTS, fit_annotation_model

    model = pretrain_scdiva(corpus, seed=seed, params=params)
    finetune = {**SCDIVA_ANNOTATION_DEFAULTS, **params["finetune"]}
    return fit_annotation_model(model, reference, label_key=label_key, batch_key=batch_key, seed=seed, params=finetune)


def embed_scdiva_cross_species(combined: ad.AnnData, *, seed: int, params: Mapping[str, Any]) -> np.ndarray:
    """Both species embedded by a tiny ScDiVa pretrained on them (species:batch as the decoder's batch)."""
    model = pretrain_scdiva(combined, seed=seed, params=params)
    return model.get_latent(ad.AnnData(X=combined.layers["counts"], var=pd.DataFrame(index=combined.var_names)),
                            layer=None)


def run_cross_species_annotation(combined: ad.AnnData, method: str, *, reference: str, seed: int = 0,
                                 params: Mapping[str, Any] | None = None, threads: int = 1
                                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train ``method`` on the cells of dataset ``reference``, predict the other's; returns the scores
    (long form: ``method, seed, metric, value``) and the predictions (cell, true, predicted)."""
    record = cross_species_record(ANNOTATION_TASK, method)
    p = method_params(ANNOTATION_TASK, method, params)
    limit_torch_threads(threads)
    is_ref = (combined.obs["dataset"] == reference).to_numpy()
    if not is_ref.any() or is_ref.all():
        raise CrossSpeciesError(f"reference {reference!r} must be one of the two datasets of the pair")

    ref, query = combined[is_ref].copy(), combined[~is_ref]
    # the truth stays here: the method gets the query (and the corpus) without labels
    true = query.obs[LABEL_KEY].astype(str).to_numpy().copy()
    ref_labels = set(ref.obs[LABEL_KEY].astype(str))
    query = without_labels(query, batch_key=BATCH_KEY)
    start = time.perf_counter()
    fit = record.load()
    # a fitter that pretrains (ScDiVa) also gets both species' cells, without their labels
    corpus = {"corpus": without_labels(combined, batch_key=BATCH_KEY)} if record.pretrains else {}
    fitted = checked_annotator(fit(ref, label_key=LABEL_KEY, batch_key=BATCH_KEY, seed=seed, params=p,
                                   threads=threads, **corpus), method=method)
    if fitted.map_query is not None:
        fitted.map_query(query)
    predicted = checked_predictions(fitted.predict(query), n_cells=len(true), method=method)
    runtime = time.perf_counter() - start
    scores = cross_species_annotation_scores(true, predicted, ref_labels)
    scores["runtime_s"] = runtime
    frame = pd.DataFrame({"method": method, "seed": seed, "metric": list(scores), "value": list(scores.values())})
    predictions = pd.DataFrame({"cell": query.obs_names, "true": true, "predicted": predicted})
    return frame, predictions


def run_cross_species_integration(combined: ad.AnnData, method: str, *, seed: int = 0,
                                  params: Mapping[str, Any] | None = None, threads: int = 1
                                  ) -> tuple[pd.DataFrame, np.ndarray]:
    """Embed both species with species as the batch and score the embedding with scib-metrics
    (labels: the cell types). Returns the scores (long form) and the embedding."""
    record = cross_species_record(INTEGRATION_TASK, method)
    p = method_params(INTEGRATION_TASK, method, params)
    start = time.perf_counter()
    if record.pretrains:  # ScDiVa: its own pretraining on both species, without their labels
        unlabelled = ad.AnnData(X=combined.X, layers={"counts": combined.layers["counts"]},
                                obs=combined.obs[[BATCH_KEY]].copy(), var=combined.var[[]].copy())
        embedding = record.load()(unlabelled, seed=seed, params=p)
    else:  # the integration benchmark's method, species as the batch

        data = combined.copy()
        data.obs["_batch"] = data.obs[SPECIES_KEY].astype(str).astype("category")
        integrate(data, record, batch_key="_batch", label_key=LABEL_KEY, seed=seed, params=p, threads=threads)
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
