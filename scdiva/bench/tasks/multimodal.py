"""Multi-modal (RNA + surface protein, CITE-seq) benchmark: ScDiVa with its protein modality beside
totalVI and RNA-only baselines.

One job = one dataset, method and seed (:func:`run_multimodal`). Two things are measured:

1. **Protein prediction from RNA on held-out cells.** A seeded fraction of cells (stratified by the
   batch, here the hashtag sample) is held out; each method learns from the others' RNA and protein
   and predicts the held-out cells' proteins from their RNA alone. Scores on ``log1p`` counts, per
   protein over the held-out cells, isotype controls (``IgG*``, ``isotype*``) left out:

   - ``protein_pearson`` / ``protein_spearman``: median over proteins of the Pearson / Spearman
     correlation between predicted and observed; in [-1, 1], higher is better (per-protein values
     are in the ``.proteins.csv`` file of the job);
   - ``protein_mse``: mean squared error of ``log1p`` counts over proteins and cells; >= 0, lower
     is better (scale-dependent: totalVI's prediction includes its background component);
   - ``protein_r2_vs_mean``: ``1 - protein_mse / mse(mean protein of the training cells)``; <= 1,
     higher is better, > 0 means better than predicting every cell's proteins as the training mean.

2. **The joint embedding of all cells** (each method trained on every cell's RNA and, if it can
   use them, proteins):

   - ``rna_graph_agreement`` / ``protein_graph_agreement``: mean Jaccard index of each cell's
     15 nearest neighbours in the embedding and in that modality's own space (RNA: 50-PC PCA of
     log-normalised highly variable genes; protein: PCA of CLR-normalised protein counts);
     in [0, 1], higher = the embedding keeps more of that modality's neighbourhoods;
   - ``hto_ilisi``: scaled iLISI (scib-metrics, 90 neighbours) of the hashtag samples; in [0, 1],
     higher = the technical aliquots are better mixed (they are one donor's cells, so they should mix);
   - ``protein_cluster_ari`` / ``protein_cluster_nmi``: Leiden clusters (resolution 1, 15-NN
     graph) of the embedding against Leiden clusters of the protein-only space (there are no
     cell-type labels); ARI in [-1, 1] (0 = chance), NMI in [0, 1]; higher = more concordant.

Methods (registry records, task ``"multimodal"``, :func:`builtin_records`): ``scdiva`` (RNA + protein in one latent,
:mod:`scdiva.module.protein`), ``totalvi`` (scvi-tools, its defaults; held-out proteins masked as a
missing-protein batch, the scvi-tools way to impute them), ``scvi`` and ``pca`` (RNA only; their
protein prediction is the mean protein of the 15 nearest training cells in their RNA space) and
``mean_protein`` (the training mean: the floor every method should beat; no embedding).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anndata as ad
import anndata.io
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

from scdiva import ScDiVaModel
from scdiva.bench.core.sampling import held_out_by_group, proportional_sample
from scdiva.bench.core.threads import limit_torch_threads
from scdiva.bench.methods.record import MethodRecord
from scdiva.bench.tasks.integration.metrics import compute_neighbors, ilisi
from scdiva.model.protein import ProteinDataError, protein_counts

TASK = "multimodal"  # registry task of the methods below
ISOTYPE = re.compile(r"^(igg|isotype|mouse.?igg|rat.?igg)", re.IGNORECASE)
PROTEIN_KEY = "protein"  # obsm key of the protein counts in the prepared AnnData (a DataFrame)
N_NEIGHBORS = 15

#: per-method parameters (None = the method authors' default); their records carry these
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "scdiva": {"size": "tiny", "max_steps": 600, "batch_size": 64, "lr": 1e-3},
    "totalvi": {"max_epochs": None},   # scvi-tools' heuristic (400 epochs up to 20,000 cells)
    "scvi": {"max_epochs": None},
    "pca": {"n_comps": 50},
    "mean_protein": {},
}


class MultimodalError(ValueError):
    """Bad multimodal input or settings (the message names the key and the fix)."""


@dataclass
class MethodOutput:
    """What one method produced: the joint embedding of all cells, held-out protein predictions."""

    embedding: np.ndarray | None
    predicted: np.ndarray | None
    runtime_s: float
    extra: dict[str, Any] = field(default_factory=dict)


# --- data ---------------------------------------------------------------------------------------

def prepare_multimodal(adata: ad.AnnData, *, protein_obsm_key: str, batch_key: str, n_top_genes: int = 2000,
                       subsample: int | None = None, seed: int = 0, dataset: str = "dataset") -> ad.AnnData:
    """RNA counts + proteins -> the AnnData every method reads.

    ``layers["counts"]`` (RNA counts of the highly variable genes, seurat_v3), ``X`` log1p of counts
    per 10,000, ``obsm["X_pca"]`` (RNA PCA), ``obsm["protein"]`` (raw protein counts, DataFrame),
    ``obsm["X_protein"]`` (PCA of CLR-normalised proteins, the protein-only space). ``subsample``
    keeps that many cells (stratified by ``batch_key``, seeded). Missing keys fail here with the key named.
    """
    # deferred: imports scanpy (this module is imported at workflow parse time)
    import scanpy as sc

    if batch_key not in adata.obs:
        raise MultimodalError(f"dataset {dataset!r}: batch_key {batch_key!r} is not an obs column "
                              f"(columns: {list(adata.obs.columns)})")
    try:
        proteins = protein_counts(adata, protein_obsm_key)
    except ProteinDataError as err:
        raise MultimodalError(f"dataset {dataset!r}: {err}") from None
    names = _protein_names(adata.obsm[protein_obsm_key], proteins.shape[1])
    if subsample is not None and subsample < adata.n_obs:
        keep = proportional_sample(adata.obs[batch_key].astype(str).to_numpy(), subsample, seed)
        adata, proteins = adata[keep], proteins[keep]
    counts = adata.X if sp.issparse(adata.X) else sp.csr_matrix(adata.X)
    out = ad.AnnData(X=sp.csr_matrix(counts, dtype=np.float32), obs=adata.obs[[batch_key]].copy(),
                     var=pd.DataFrame(index=adata.var_names.astype(str)))
    out.obs[batch_key] = out.obs[batch_key].astype(str).astype("category")
    sc.pp.filter_genes(out, min_cells=3)
    sc.pp.highly_variable_genes(out, n_top_genes=min(n_top_genes, out.n_vars), flavor="seurat_v3")
    out = out[:, out.var["highly_variable"].to_numpy()].copy()
    out.layers["counts"] = out.X.copy()
    sc.pp.normalize_total(out, target_sum=1e4)
    sc.pp.log1p(out)
    out.obsm["X_pca"] = sc.pp.pca(out.X, n_comps=min(50, out.n_obs - 1, out.n_vars - 1), random_state=seed)
    out.obsm[PROTEIN_KEY] = pd.DataFrame(proteins, index=out.obs_names, columns=names)
    clr = clr_normalise(proteins)
    out.obsm["X_protein"] = sc.pp.pca(clr, n_comps=min(20, proteins.shape[1] - 1, out.n_obs - 1), random_state=seed)
    out.uns["multimodal"] = {"batch_key": batch_key, "protein_obsm_key": protein_obsm_key, "dataset": dataset}
    return out


def clr_normalise(counts: np.ndarray) -> np.ndarray:
    """Centred log-ratio per cell, ``log1p(x) - mean(log1p(x))`` over the cell's proteins (Seurat's ADT CLR)."""
    logged = np.log1p(np.asarray(counts, dtype=np.float64))
    return (logged - logged.mean(1, keepdims=True)).astype(np.float32)


def held_out_mask(adata: ad.AnnData, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of held-out cells: ``fraction`` of each batch, seeded."""
    if not 0 < fraction < 1:
        raise MultimodalError(f"held_out_fraction must be in (0, 1), got {fraction}")
    return held_out_by_group(adata.obs[adata.uns["multimodal"]["batch_key"]].to_numpy(), fraction, seed)


def scored_proteins(names: list[str]) -> list[int]:
    """Positions of the proteins that are scored (isotype controls are not)."""
    return [i for i, n in enumerate(names) if not ISOTYPE.match(n)]


# --- metrics ------------------------------------------------------------------------------------

def protein_prediction_metrics(observed: np.ndarray, predicted: np.ndarray, train_mean: np.ndarray,
                               names: list[str]) -> tuple[dict[str, float], pd.DataFrame]:
    """Summary scores (see the module docstring) and a per-protein frame (protein, pearson, spearman, mse).

    ``observed``/``predicted`` are counts (cells x proteins) of the held-out cells; ``train_mean``
    is the mean of ``log1p`` counts over the training cells (the mean-protein predictor).
    """
    # deferred: imports scipy.stats (this module is imported at workflow parse time)
    from scipy.stats import pearsonr, spearmanr

    observed, predicted = np.asarray(observed, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    if observed.shape != predicted.shape:
        raise ValueError(f"observed {observed.shape} and predicted {predicted.shape} proteins differ in shape")
    keep = scored_proteins(names)
    lo, lp = np.log1p(observed[:, keep]), np.log1p(np.clip(predicted[:, keep], 0, None))
    rows = []
    for j, i in enumerate(keep):
        constant = np.ptp(lo[:, j]) == 0 or np.ptp(lp[:, j]) == 0
        rows.append({"protein": names[i],
                     "pearson": np.nan if constant else float(pearsonr(lp[:, j], lo[:, j])[0]),
                     "spearman": np.nan if constant else float(spearmanr(lp[:, j], lo[:, j])[0]),
                     "mse": float(((lp[:, j] - lo[:, j]) ** 2).mean())})
    per_protein = pd.DataFrame(rows)
    mse = float(((lp - lo) ** 2).mean())
    mse_mean = float(((np.asarray(train_mean)[keep] - lo) ** 2).mean())
    summary = {"protein_pearson": float(np.nanmedian(per_protein["pearson"])) if per_protein["pearson"].notna().any()
               else np.nan,
               "protein_spearman": float(np.nanmedian(per_protein["spearman"]))
               if per_protein["spearman"].notna().any() else np.nan,
               "protein_mse": mse, "protein_r2_vs_mean": 1.0 - mse / mse_mean}
    return summary, per_protein


def knn_sets(x: np.ndarray, k: int = N_NEIGHBORS) -> np.ndarray:
    """Indices of each cell's ``k`` nearest neighbours (itself excluded), exact Euclidean."""
    # deferred: imports sklearn (this module is imported at workflow parse time)
    from sklearn.neighbors import NearestNeighbors

    k = min(k, x.shape[0] - 1)
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    return idx[:, 1:]


def neighbour_agreement(embedding: np.ndarray, reference: np.ndarray, k: int = N_NEIGHBORS) -> float:
    """Mean Jaccard index of the k-NN sets of each cell in two spaces; in [0, 1], higher = more alike."""
    a, b = knn_sets(np.asarray(embedding, dtype=np.float32), k), knn_sets(np.asarray(reference, dtype=np.float32), k)
    inter = np.array([np.intersect1d(x, y).size for x, y in zip(a, b, strict=True)])
    return float((inter / (2 * a.shape[1] - inter)).mean())


def leiden_clusters(x: np.ndarray, seed: int = 0, resolution: float = 1.0) -> np.ndarray:
    """Leiden clusters of the 15-NN graph of ``x`` (scanpy, igraph flavour)."""
    # deferred: imports scanpy (this module is imported at workflow parse time)
    import scanpy as sc

    tmp = ad.AnnData(X=np.zeros((x.shape[0], 1), dtype=np.float32))
    tmp.obsm["rep"] = np.asarray(x, dtype=np.float32)
    sc.pp.neighbors(tmp, n_neighbors=N_NEIGHBORS, use_rep="rep", random_state=seed)
    sc.tl.leiden(tmp, resolution=resolution, random_state=seed, flavor="igraph", n_iterations=2, directed=False)
    return tmp.obs["leiden"].astype(str).to_numpy()


def embedding_metrics(embedding: np.ndarray, adata: ad.AnnData, *, seed: int = 0) -> dict[str, float]:
    """Graph agreement with each modality, hashtag mixing and protein-cluster concordance (module docstring)."""
    # deferred: imports sklearn (this module is imported at workflow parse time)
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    embedding = np.asarray(embedding, dtype=np.float32)
    if embedding.shape[0] != adata.n_obs or not np.isfinite(embedding).all():
        raise ValueError(f"embedding {embedding.shape} must be finite with one row per cell ({adata.n_obs})")
    batches = adata.obs[adata.uns["multimodal"]["batch_key"]].astype(str).to_numpy()
    neighbors = compute_neighbors(embedding, n_neighbors=min(90, adata.n_obs - 1), seed=seed)
    joint, protein_only = leiden_clusters(embedding, seed), leiden_clusters(adata.obsm["X_protein"], seed)
    return {"rna_graph_agreement": neighbour_agreement(embedding, adata.obsm["X_pca"]),
            "protein_graph_agreement": neighbour_agreement(embedding, adata.obsm["X_protein"]),
            "hto_ilisi": ilisi(neighbors, batches),
            "protein_cluster_ari": float(adjusted_rand_score(protein_only, joint)),
            "protein_cluster_nmi": float(normalized_mutual_info_score(protein_only, joint))}


# --- methods ------------------------------------------------------------------------------------

#: records (below) whose joint embedding takes the proteins; the others embed RNA only
_PROTEIN_INPUT = frozenset({"scdiva", "totalvi"})


def builtin_records() -> tuple:
    """The methods as records (collected by :mod:`scdiva.bench.methods.catalog`; rules and report
    sections list them from there)."""
    mm = "scdiva.bench.tasks.multimodal"
    return (
        MethodRecord("scdiva", TASK, f"{mm}:run_scdiva", DEFAULT_PARAMS["scdiva"], role="model",
                     description="RNA + protein in one variational latent"),
        MethodRecord("totalvi", TASK, f"{mm}:run_totalvi", DEFAULT_PARAMS["totalvi"],
                     description="scvi-tools TOTALVI, missing-protein imputation"),
        MethodRecord("scvi", TASK, f"{mm}:run_scvi_protein_knn", DEFAULT_PARAMS["scvi"],
                     description="RNA only; proteins: 15-NN mean in its latent"),
        MethodRecord("pca", TASK, f"{mm}:run_pca", DEFAULT_PARAMS["pca"],
                     description="RNA only; proteins: 15-NN mean in RNA PCA"),
        MethodRecord("mean_protein", TASK, f"{mm}:run_mean_protein", DEFAULT_PARAMS["mean_protein"], role="control",
                     description="training mean of each protein; no embedding"),
    )


def multimodal_methods() -> list[str]:
    """Names of the multimodal methods, in registration order (the model first)."""
    return [record.name for record in builtin_records()]


def uses_protein(method: str) -> bool:
    """True if ``method`` puts the proteins into its joint embedding (the others embed RNA only)."""
    return method in _PROTEIN_INPUT and method in multimodal_methods()


def method_params(method: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The method's defaults overlaid by ``params``; unknown methods or keys are errors."""
    if method not in multimodal_methods():
        raise MultimodalError(f"unknown multimodal method {method!r}; known: {', '.join(multimodal_methods())}")
    wrong = sorted(set(params or {}) - set(DEFAULT_PARAMS[method]))
    if wrong:
        raise MultimodalError(f"multimodal method {method!r} has no parameters {wrong}; it accepts: "
                              f"{', '.join(DEFAULT_PARAMS[method]) or '(none)'}")
    return {**DEFAULT_PARAMS[method], **(params or {})}


def _knn_protein(space: np.ndarray, train: np.ndarray, test: np.ndarray, proteins: np.ndarray) -> np.ndarray:
    """Mean protein counts of each held-out cell's 15 nearest training cells in ``space``."""
    # deferred: imports sklearn (this module is imported at workflow parse time)
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=min(N_NEIGHBORS, int(train.sum()))).fit(space[train])
    _, idx = nn.kneighbors(space[test])
    return proteins[train][idx].mean(1)


def run_pca(adata: ad.AnnData, test: np.ndarray, p: dict, seed: int) -> MethodOutput:
    start = time.perf_counter()
    # deferred: imports sklearn (this module is imported at workflow parse time)
    from sklearn.decomposition import PCA

    x = np.asarray(adata.X.toarray(), dtype=np.float32)
    train = ~test
    n = min(int(p["n_comps"]), int(train.sum()) - 1, x.shape[1] - 1)
    space = PCA(n_components=n, random_state=seed).fit(x[train]).transform(x)  # fitted on training cells only
    proteins = adata.obsm[PROTEIN_KEY].to_numpy()
    predicted = _knn_protein(space, train, test, proteins)
    return MethodOutput(adata.obsm["X_pca"], predicted, time.perf_counter() - start)


def run_scvi_protein_knn(adata: ad.AnnData, test: np.ndarray, p: dict, seed: int) -> MethodOutput:
    """scVI on RNA counts (its defaults). It has no protein decoder: its protein prediction is a
    15-nearest-neighbour average of training cells' proteins in the latent of an scVI fitted on the
    training cells only - a kNN regressor in scVI's space, labelled so in the docs and the report."""
    # deferred: imports scvi (this module is imported at workflow parse time)
    import scvi

    start = time.perf_counter()
    batch_key = adata.uns["multimodal"]["batch_key"]
    scvi.settings.seed = seed
    scvi.settings.dl_num_workers = 0
    rna = ad.AnnData(X=adata.layers["counts"].copy(), obs=adata.obs[[batch_key]].copy())
    scvi.model.SCVI.setup_anndata(rna, batch_key=batch_key)
    model = scvi.model.SCVI(rna)
    model.train(max_epochs=p["max_epochs"], accelerator="cpu", enable_progress_bar=False)
    latent = model.get_latent_representation()
    # prediction: an scVI fitted on the training cells only, held-out cells embedded, 15-NN protein mean
    train_model_data = rna[~test].copy()
    scvi.model.SCVI.setup_anndata(train_model_data, batch_key=batch_key)
    train_model = scvi.model.SCVI(train_model_data)
    train_model.train(max_epochs=p["max_epochs"], accelerator="cpu", enable_progress_bar=False)
    space = train_model.get_latent_representation(rna)
    predicted = _knn_protein(space, ~test, test, adata.obsm[PROTEIN_KEY].to_numpy())
    return MethodOutput(latent, predicted, time.perf_counter() - start)


def run_totalvi(adata: ad.AnnData, test: np.ndarray, p: dict, seed: int) -> MethodOutput:
    """totalVI (scvi-tools ``TOTALVI``, its default architecture; ``max_epochs=None`` = its epoch heuristic).

    Joint embedding: one model on every cell's RNA and proteins, batch = the hashtag sample.
    Held-out proteins: a second model where the held-out cells' protein counts are set to zero and
    the cells moved to batches of their own (``<sample>__held_out``). ``setup_anndata`` then marks
    those batches as having no protein data, so totalVI neither fits nor scores their proteins - the
    scvi-tools mechanism for missing proteins ("totalVI with missing proteins" tutorial). Their
    proteins are imputed with ``get_normalized_expression(indices=held-out cells,
    transform_batch=<the training batches>, include_protein_background=True, return_mean=True,
    n_samples=25)``: expected counts (foreground + background), comparable with observed counts.
    """
    # deferred: imports scvi (this module is imported at workflow parse time)
    import scvi

    start = time.perf_counter()
    batch_key = adata.uns["multimodal"]["batch_key"]
    scvi.settings.seed = seed
    scvi.settings.dl_num_workers = 0
    proteins = adata.obsm[PROTEIN_KEY]

    def fit(obs_batches: np.ndarray, protein: pd.DataFrame):
        data = ad.AnnData(X=adata.layers["counts"].copy(), obs=pd.DataFrame({"batch": obs_batches}, index=adata.obs_names))
        data.obsm["protein_expression"] = protein
        scvi.model.TOTALVI.setup_anndata(data, batch_key="batch", protein_expression_obsm_key="protein_expression")
        model = scvi.model.TOTALVI(data)
        model.train(max_epochs=p["max_epochs"], accelerator="cpu", enable_progress_bar=False)
        return model, data

    batches = adata.obs[batch_key].astype(str).to_numpy()
    model, _ = fit(batches, proteins)
    latent = model.get_latent_representation()
    # prediction: held-out cells' proteins zeroed and put in their own batches, which totalVI treats
    # as batches without protein data and imputes (the scvi-tools missing-protein workflow)
    masked = proteins.copy()
    masked.loc[test] = 0.0
    split_batches = np.where(test, np.char.add(batches.astype(str), "__held_out"), batches)
    model2, data2 = fit(split_batches, masked)
    train_batches = sorted(set(batches[~test]))
    _, protein_pred = model2.get_normalized_expression(
        data2, indices=np.flatnonzero(test), transform_batch=train_batches, include_protein_background=True,
        sample_protein_mixing=False, return_mean=True, n_samples=25)
    return MethodOutput(latent, np.asarray(protein_pred, dtype=np.float64), time.perf_counter() - start)


def run_scdiva(adata: ad.AnnData, test: np.ndarray, p: dict, seed: int) -> MethodOutput:
    start = time.perf_counter()
    batch_key = adata.uns["multimodal"]["batch_key"]
    data = ad.AnnData(X=adata.layers["counts"].copy(), obs=adata.obs[[batch_key]].copy(),
                      var=pd.DataFrame(index=adata.var_names))
    data.obsm["protein"] = adata.obsm[PROTEIN_KEY]
    settings = dict(tasks=["masked_expression", "integration"], batch_key=batch_key, max_steps=int(p["max_steps"]),
                    batch_size=int(p["batch_size"]), lr=float(p["lr"]), seed=seed, progress_bar=False,
                    protein_obsm_key="protein", layer=None)
    # joint embedding: trained on every cell's RNA and proteins, embedded with both
    model = ScDiVaModel.from_config(str(p["size"]), genes=data.var_names, seed=seed, device="cpu")
    history = model.fit(data, **settings)
    latent = model.get_latent(data, protein_obsm_key="protein", layer=None)
    # prediction: trained on the training cells only, held-out proteins decoded from RNA alone
    heldout_model = ScDiVaModel.from_config(str(p["size"]), genes=data.var_names, seed=seed, device="cpu")
    heldout_model.fit(data[~test].copy(), **settings)
    predicted = heldout_model.predict_protein(data[test].copy(), layer=None)
    return MethodOutput(latent, predicted, time.perf_counter() - start,
                        extra={"final_loss": float(history[-1]["loss"]), "steps": len(history)})


def run_mean_protein(adata: ad.AnnData, test: np.ndarray, p: dict, seed: int) -> MethodOutput:
    start = time.perf_counter()
    logged = np.log1p(adata.obsm[PROTEIN_KEY].to_numpy()[~test]).mean(0)
    predicted = np.tile(np.expm1(logged), (int(test.sum()), 1))
    return MethodOutput(None, predicted, time.perf_counter() - start)


def run_multimodal(adata: ad.AnnData, method: str, *, seed: int = 0, held_out_fraction: float = 0.2,
                   params: Mapping[str, Any] | None = None, threads: int = 1
                   ) -> tuple[pd.DataFrame, pd.DataFrame, MethodOutput]:
    """Run ``method`` on a :func:`prepare_multimodal` AnnData and score it.

    Returns the scores (long form: ``method, seed, metric, value``), the per-protein prediction
    scores and the raw output (embedding, predictions).
    """
    p = method_params(method, params)
    limit_torch_threads(threads)
    test = held_out_mask(adata, held_out_fraction, seed)
    # the observed proteins (the truth) are taken before the method runs: nothing it writes changes them
    names = list(adata.obsm[PROTEIN_KEY].columns)
    observed = adata.obsm[PROTEIN_KEY].to_numpy().copy()
    output = {record.name: record for record in builtin_records()}[method].load()(adata, test, p, seed)
    train_mean = np.log1p(observed[~test]).mean(0)
    scores, per_protein = protein_prediction_metrics(observed[test], output.predicted, train_mean, names)
    if output.embedding is not None:
        scores.update(embedding_metrics(output.embedding, adata, seed=seed))
    scores["runtime_s"] = output.runtime_s
    frame = pd.DataFrame({"method": method, "seed": seed, "metric": list(scores), "value": list(scores.values())})
    per_protein.insert(0, "method", method)
    return frame, per_protein, output


def _protein_names(matrix, n: int) -> list[str]:
    return [str(c) for c in matrix.columns] if hasattr(matrix, "columns") else [f"protein_{i}" for i in range(n)]


# --- checks before any job (the workflow calls these when it parses the config) -------------------

def _h5_obsm_keys(path) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """obs columns, obsm keys and, per DataFrame obsm entry, its column names - without reading matrices."""
    with h5py.File(path, "r") as handle:
        obs = list(anndata.io.read_elem(handle["obs"]).columns) if "obs" in handle else []
        obsm = handle.get("obsm")
        keys = sorted(obsm.keys()) if obsm is not None else []
        columns = {}
        for key in keys:
            node = obsm[key]
            if node.attrs.get("encoding-type") == "dataframe":
                columns[key] = [str(c) for c in node.attrs.get("column-order", [])]
    return obs, keys, columns


def check_multimodal_source(path, entry: Mapping[str, Any], *, dataset: str) -> None:
    """A multimodal dataset entry against its file: the protein obsm key and the batch column exist.

    Raises :class:`MultimodalError` naming the config key, what the file has and the fix.
    """
    where = f"multimodal.datasets.{dataset}"
    if "protein" not in entry.get("modalities", ["rna", "protein"]):
        raise MultimodalError(f"config `{where}.modalities` must include 'protein' (the benchmark measures RNA + "
                              "protein); RNA-only datasets belong under `datasets:`")
    try:
        obs, keys, columns = _h5_obsm_keys(path)
    except OSError as err:
        raise MultimodalError(f"dataset {dataset!r}: {path} is not a readable .h5ad ({err})") from None
    key = entry["protein_obsm_key"]
    if key not in keys:
        raise MultimodalError(f"dataset {dataset!r}: config `{where}.protein_obsm_key` is {key!r}, but {path} has no "
                              f"obsm[{key!r}]; its obsm keys: {keys or '(none)'}. Set protein_obsm_key to the entry "
                              "with the surface-protein counts.")
    if key in columns and len(columns[key]) < 2:
        raise MultimodalError(f"dataset {dataset!r}: obsm[{key!r}] has {len(columns[key])} protein columns; at least 2 needed")
    if entry["batch_key"] not in obs:
        raise MultimodalError(f"dataset {dataset!r}: config `{where}.batch_key` {entry['batch_key']!r} is not an obs "
                              f"column of {path}; columns: {obs}")
