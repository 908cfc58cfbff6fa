"""Baseline annotation methods at their authors' recommended settings.

- `logreg`: logistic regression on log-normalised highly variable genes (scikit-learn
  defaults: L2, C=1, lbfgs), the classic strong baseline of annotation benchmarks.
- `knn_pca`: PCA (50 components) fitted on the reference only, query projected, 15-nearest-
  neighbour majority vote (15 = scanpy's neighbourhood default, as `sc.tl.ingest` uses).
- `scanvi`: scvi-tools scANVI with scArches query mapping, following the scvi-tools
  reference-mapping tutorial (scVI with layer norm, encoded covariates; scANVI 20 epochs,
  100 samples per label; query surgery 100 epochs, weight decay 0).
- `celltypist`: CellTypist trained locally with `celltypist.train` on the reference, with its
  stochastic-gradient-descent logistic regression (`use_SGD=True`, the solver CellTypist's own
  published models are trained with; all genes, log1p of counts per 10,000); no model download.
  Its default full-batch solver cannot run here: celltypist <= 1.7.1 passes `multi_class='ovr'`
  to scikit-learn's LogisticRegression, which scikit-learn 1.8 removed.

Parameter defaults (`*_DEFAULTS`) are the ones the method records in
`scdiva.bench.methods.catalog` accept; config `annotation.params.<method>` overrides them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anndata as ad
import numpy as np

from scdiva.bench.core.threads import limit_torch_threads
from scdiva.bench.methods._common import hvg_mask, raw_counts
from scdiva.bench.tasks.annotation.base import FittedAnnotator, dense

LOGREG_DEFAULTS: dict[str, Any] = {"C": 1.0, "max_iter": 1000}
KNN_PCA_DEFAULTS: dict[str, Any] = {"n_comps": 50, "n_neighbors": 15}
#: scvi_max_epochs None: scvi-tools' heuristic; accelerator: the workflow passes "gpu" when the job has one
SCANVI_ANNOTATION_DEFAULTS: dict[str, Any] = {"scvi_max_epochs": None, "scanvi_max_epochs": 20,
                                              "query_max_epochs": 100, "accelerator": "cpu"}
#: celltypist.train's own defaults for SGD (alpha, max_iter) and feature selection
CELLTYPIST_DEFAULTS: dict[str, Any] = {"feature_selection": False, "alpha": 0.0001, "max_iter": 1000}
SHUFFLED_DEFAULTS: dict[str, Any] = {}


def fit_logreg(reference: ad.AnnData, *, label_key: str, batch_key: str, seed: int,
               params: Mapping[str, Any], threads: int) -> FittedAnnotator:
    # deferred: imports sklearn (this module is imported at workflow parse time)
    from sklearn.linear_model import LogisticRegression

    params = {**LOGREG_DEFAULTS, **params}
    genes = hvg_mask(reference)
    model = LogisticRegression(C=float(params["C"]), max_iter=int(params["max_iter"]),
                               random_state=seed)
    model.fit(dense(reference.X[:, genes]), reference.obs[label_key].astype(str).to_numpy())
    return FittedAnnotator(predict=lambda query: model.predict(dense(query.X[:, genes])))


def fit_control_shuffled(reference: ad.AnnData, *, label_key: str, batch_key: str, seed: int,
                         params: Mapping[str, Any], threads: int) -> FittedAnnotator:
    """Negative control: the reference's labels, shuffled, handed out to the query cells at random
    (seeded; each label as often as it is in the reference). No expression is read."""
    labels = reference.obs[label_key].astype(str).to_numpy()

    def predict(query: ad.AnnData) -> np.ndarray:
        return np.random.default_rng(seed).choice(labels, size=query.n_obs, replace=True)

    return FittedAnnotator(predict=predict)


def fit_knn_pca(reference: ad.AnnData, *, label_key: str, batch_key: str, seed: int,
                params: Mapping[str, Any], threads: int) -> FittedAnnotator:
    # deferred: imports sklearn (this module is imported at workflow parse time)
    from sklearn.decomposition import PCA
    from sklearn.neighbors import KNeighborsClassifier

    params = {**KNN_PCA_DEFAULTS, **params}
    genes = hvg_mask(reference)
    x_ref = dense(reference.X[:, genes])
    n_comps = min(int(params["n_comps"]), x_ref.shape[0] - 1, x_ref.shape[1] - 1)
    pca = PCA(n_components=n_comps, random_state=seed).fit(x_ref)
    knn = KNeighborsClassifier(n_neighbors=int(params["n_neighbors"]), n_jobs=threads)
    knn.fit(pca.transform(x_ref), reference.obs[label_key].astype(str).to_numpy())
    return FittedAnnotator(predict=lambda query: knn.predict(pca.transform(dense(query.X[:, genes]))))


def _log1p_cp10k(adata: ad.AnnData) -> ad.AnnData:
    """CellTypist's expected input: log1p of counts normalised to 10,000 per cell, all genes."""
    # deferred: imports scanpy (this module is imported at workflow parse time)
    import scanpy as sc

    out = ad.AnnData(X=raw_counts(adata, method="celltypist").copy(), obs=adata.obs[[]].copy(), var=adata.var[[]].copy())
    sc.pp.normalize_total(out, target_sum=1e4)
    sc.pp.log1p(out)
    return out


def fit_celltypist(reference: ad.AnnData, *, label_key: str, batch_key: str, seed: int,
                   params: Mapping[str, Any], threads: int) -> FittedAnnotator:
    # deferred: imports celltypist (this module is imported at workflow parse time)
    import celltypist

    params = {**CELLTYPIST_DEFAULTS, **params}
    np.random.seed(seed)  # celltypist's solvers draw from numpy's global state
    model = celltypist.train(_log1p_cp10k(reference), labels=reference.obs[label_key].astype(str).to_numpy(),
                             n_jobs=threads, feature_selection=bool(params["feature_selection"]), use_SGD=True,
                             mini_batch=False, alpha=float(params["alpha"]), max_iter=int(params["max_iter"]))

    def predict(query: ad.AnnData) -> np.ndarray:
        result = celltypist.annotate(_log1p_cp10k(query), model=model, majority_voting=False)
        return result.predicted_labels["predicted_labels"].astype(str).to_numpy()

    return FittedAnnotator(predict=predict)


UNLABELED = "Unknown"


def fit_scanvi(reference: ad.AnnData, *, label_key: str, batch_key: str, seed: int,
               params: Mapping[str, Any], threads: int) -> FittedAnnotator:
    # deferred: imports scvi (this module is imported at workflow parse time)
    import scvi

    params = {**SCANVI_ANNOTATION_DEFAULTS, **params}
    # The workflow passes "gpu" when the job was given one (config `gpu: true`), else "cpu".
    accelerator = str(params["accelerator"] or "cpu")
    devices = 1 if accelerator != "cpu" else "auto"  # the one GPU the job was given
    limit_torch_threads(threads)
    scvi.settings.seed = seed
    scvi.settings.dl_num_workers = 0
    ref = ad.AnnData(X=raw_counts(reference, method="scanvi").copy(), obs=reference.obs[[batch_key, label_key]].copy(),
                     var=reference.var[[]].copy())
    ref.obs[label_key] = ref.obs[label_key].astype(str)
    scvi.model.SCVI.setup_anndata(ref, batch_key=batch_key, labels_key=label_key)
    scvi_ref = scvi.model.SCVI(ref, n_layers=2, dropout_rate=0.2, encode_covariates=True,
                               deeply_inject_covariates=False, use_layer_norm="both", use_batch_norm="none")
    scvi_ref.train(max_epochs=params["scvi_max_epochs"], accelerator=accelerator, devices=devices, enable_progress_bar=False)
    scanvi_ref = scvi.model.SCANVI.from_scvi_model(scvi_ref, unlabeled_category=UNLABELED)
    scanvi_ref.train(max_epochs=int(params["scanvi_max_epochs"] or 20), n_samples_per_label=100,
                     accelerator=accelerator, devices=devices, enable_progress_bar=False)
    state: dict[str, Any] = {}

    def _query_adata(query: ad.AnnData) -> ad.AnnData:
        q = ad.AnnData(X=raw_counts(query, method="scanvi").copy(), obs=query.obs[[batch_key]].copy(), var=query.var[[]].copy())
        q.obs[label_key] = UNLABELED  # the query's labels are hidden from the model
        return q

    def map_query(query: ad.AnnData) -> None:
        q = _query_adata(query)
        scvi.model.SCANVI.prepare_query_anndata(q, scanvi_ref)
        model = scvi.model.SCANVI.load_query_data(q, scanvi_ref)
        model.train(max_epochs=int(params["query_max_epochs"] or 100), plan_kwargs={"weight_decay": 0.0},
                    check_val_every_n_epoch=10, accelerator=accelerator, devices=devices, enable_progress_bar=False)
        state["model"] = model

    def predict(query: ad.AnnData) -> np.ndarray:
        q = _query_adata(query)
        scvi.model.SCANVI.prepare_query_anndata(q, scanvi_ref)
        return np.asarray(state["model"].predict(q), dtype=str)

    return FittedAnnotator(predict=predict, map_query=map_query)
