"""Each integration method on real (preprocessed, 480-cell) PBMC data: shape, finiteness, seeds,
input checks, and that Harmony mixes the three chemistries better than the unintegrated PCA."""

from __future__ import annotations

import anndata
import numpy as np
import pytest

from scdiva.bench.api import integrate
from scdiva.bench.methods._common import write_embedding
from scdiva.bench.methods.catalog import method_records

QUICK = {"scvi": {"max_epochs": 2}, "scanvi": {"max_epochs": 2, "scanvi_max_epochs": 1}}
# ScDiVa's registry entries need a checkpoint; tests/paper/test_scdiva_methods.py covers them.
BASELINES = ["unintegrated", "harmony", "scanorama", "scvi", "scanvi"]


@pytest.fixture(scope="module")
def embeddings(pbmc_small):
    out = {}
    for method in BASELINES:
        adata = pbmc_small.copy()
        integrate(adata, method, batch_key="donor", label_key="cell_type", seed=0,
                  params=QUICK.get(method, {}), threads=1)
        out[method] = adata
    return out


def test_registry_is_consistent():
    records = method_records("integration")
    assert set(BASELINES) <= set(records)
    assert {m for m, r in records.items() if r.gpu} == {"scvi", "scanvi", "scdiva_zeroshot", "scdiva_finetuned"}
    assert [m for m, r in records.items() if r.needs_labels] == ["control_celltype", "scanvi"]
    assert records["scvi"].defaults["max_epochs"] is None  # None = scvi-tools' own heuristic
    assert all(callable(r.load()) for r in records.values())


@pytest.mark.parametrize("method", BASELINES)
def test_method_writes_a_finite_embedding(embeddings, pbmc_small, method):
    emb = embeddings[method].obsm["X_emb"]
    assert emb.shape[0] == pbmc_small.n_obs and 2 <= emb.shape[1] <= 100
    assert np.isfinite(emb).all()
    assert emb.std(axis=0).max() > 0  # not a constant output
    assert embeddings[method].uns["runtime_s"] > 0


def test_unintegrated_is_the_preprocessing_pca(embeddings, pbmc_small):
    np.testing.assert_allclose(embeddings["unintegrated"].obsm["X_emb"], pbmc_small.obsm["X_pca"], rtol=1e-6)


def test_scanvi_starts_from_scvi_and_uses_default_heuristic_epochs(embeddings):
    assert embeddings["scanvi"].uns["scvi_epochs"] == 2 and embeddings["scanvi"].uns["scanvi_epochs"] == 1


def test_harmony_mixes_batches_better_than_pca(embeddings):
    from scdiva.bench.tasks.integration.metrics import compute_neighbors, ilisi

    def batch_mixing(adata):
        return ilisi(compute_neighbors(adata.obsm["X_emb"]), adata.obs["donor"].to_numpy())

    pca, harmony = batch_mixing(embeddings["unintegrated"]), batch_mixing(embeddings["harmony"])
    assert harmony > pca + 0.1, (pca, harmony)


def test_same_seed_same_embedding(pbmc_small, embeddings):
    again = pbmc_small.copy()
    integrate(again, "harmony", batch_key="donor", label_key="cell_type", seed=0, params={}, threads=1)
    np.testing.assert_allclose(again.obsm["X_emb"], embeddings["harmony"].obsm["X_emb"], rtol=1e-5, atol=1e-5)


def test_unknown_parameter_fails_before_training(pbmc_small):
    with pytest.raises(ValueError, match=r"methods\.scvi.*max_epoch"):
        integrate(pbmc_small.copy(), "scvi", batch_key="donor", label_key="cell_type", seed=0,
                  params={"max_epoch": 3}, threads=1)


def test_unknown_method_and_missing_keys_are_named(pbmc_small):
    with pytest.raises(KeyError, match="unknown integration method 'mnn'"):
        integrate(pbmc_small.copy(), "mnn", batch_key="donor", label_key=None, seed=0)
    with pytest.raises(KeyError, match="'chemistry'"):
        integrate(pbmc_small.copy(), "harmony", batch_key="chemistry", label_key=None, seed=0)
    with pytest.raises(ValueError, match="label"):
        integrate(pbmc_small.copy(), "scanvi", batch_key="donor", label_key=None, seed=0, params=QUICK["scanvi"])


def test_write_embedding_is_minimal_and_atomic(embeddings, tmp_path):
    path = tmp_path / "out" / "seed0.h5ad"
    write_embedding(embeddings["harmony"], path, method="harmony", seed=0)
    back = anndata.read_h5ad(path)
    assert back.n_vars == 0 and list(back.obsm) == ["X_emb"]
    assert back.obs_names.equals(embeddings["harmony"].obs_names)
    assert back.uns["runtime_s"] > 0 and back.uns["seed"] == 0
    assert sorted(p.name for p in path.parent.iterdir()) == ["seed0.h5ad"]  # no temp file left


# --- scANVI starts from the scvi job's saved model (issue 18) ---------------------------------


@pytest.fixture(scope="module")
def saved_scvi(pbmc_small, tmp_path_factory):
    adata = pbmc_small.copy()
    directory = tmp_path_factory.mktemp("scvi") / "seed0.model"
    integrate(adata, "scvi", batch_key="donor", label_key="cell_type", seed=0, params=QUICK["scvi"], threads=1,
              save_model=directory)
    return directory, adata


def test_scvi_saves_its_model_with_settings(saved_scvi):
    import json

    directory, _ = saved_scvi
    assert sorted(p.name for p in directory.iterdir()) == ["model.pt", "scdiva_settings.json"]
    settings = json.loads((directory / "scdiva_settings.json").read_text())
    assert settings["params"]["max_epochs"] == 2 and settings["batch_key"] == "donor" and settings["seed"] == 0
    assert not list(directory.parent.glob(".*.tmp"))  # no temporary directory left


def test_scanvi_starts_from_the_saved_scvi_without_training_it(saved_scvi, pbmc_small, embeddings, monkeypatch):
    from scdiva.bench.tasks.integration import scanvi_model
    from scdiva.bench.tasks.integration.metrics import compute_neighbors

    def no_training(*args, **kwargs):
        raise AssertionError("scanvi trained scVI although it was given the scvi job's model")

    monkeypatch.setattr(scanvi_model, "train_scvi", no_training)
    directory, scvi_adata = saved_scvi
    adata = pbmc_small.copy()
    integrate(adata, "scanvi", batch_key="donor", label_key="cell_type", seed=0, params=QUICK["scanvi"],
              threads=1, scvi_model=directory)
    assert adata.uns["scvi_reused"] and adata.uns["scvi_epochs"] == 2 and adata.uns["scanvi_epochs"] == 1
    emb = adata.obsm["X_emb"]
    assert emb.shape == embeddings["scanvi"].obsm["X_emb"].shape and np.isfinite(emb).all()
    assert not np.allclose(emb, scvi_adata.obsm["X_emb"], atol=1e-3)  # scANVI was trained on top of it

    def label_agreement(x):  # fraction of the 15 nearest neighbours with the cell's own label
        labels = pbmc_small.obs["cell_type"].to_numpy()
        idx = compute_neighbors(x, 16).indices[:, 1:]
        return float((labels[idx] == labels[:, None]).mean())

    # Sensible: cell types stay at least as separated as from the scanvi trained end to end.
    reused, own = label_agreement(emb), label_agreement(embeddings["scanvi"].obsm["X_emb"])
    assert reused > 0.6 and reused > own - 0.05, (reused, own)


def test_scanvi_refuses_a_scvi_model_with_other_settings(saved_scvi, pbmc_small):
    directory, _ = saved_scvi
    with pytest.raises(ValueError, match=r"other settings.*max_epochs"):
        integrate(pbmc_small.copy(), "scanvi", batch_key="donor", label_key="cell_type", seed=0,
                  params={"max_epochs": 3, "scanvi_max_epochs": 1}, threads=1, scvi_model=directory)
    with pytest.raises(ValueError, match=r"other settings.*seed"):
        integrate(pbmc_small.copy(), "scanvi", batch_key="donor", label_key="cell_type", seed=1,
                  params=QUICK["scanvi"], threads=1, scvi_model=directory)
    with pytest.raises(FileNotFoundError, match="rerun the scvi integration job"):
        integrate(pbmc_small.copy(), "scanvi", batch_key="donor", label_key="cell_type", seed=0,
                  params=QUICK["scanvi"], threads=1, scvi_model=directory.parent / "missing.model")


def test_shares_scvi_model_compares_resolved_scvi_settings():
    from scdiva.bench.tasks.integration.scanvi_model import shares_scvi_model

    assert shares_scvi_model({}, {})  # both the authors' defaults
    assert shares_scvi_model({"max_epochs": 5}, {"max_epochs": 5, "scanvi_max_epochs": 2})
    assert not shares_scvi_model({"max_epochs": 5}, {})
    assert not shares_scvi_model({}, {"n_latent": 30})


@pytest.mark.parametrize(("scanvi_params", "reuses"), [("{max_epochs: 5, scanvi_max_epochs: 2}", True),
                                                        ("{max_epochs: 3, scanvi_max_epochs: 2}", False)])
def test_workflow_gives_scanvi_the_scvi_model_only_with_the_same_settings(workflow_tools, tmp_path, scanvi_params,
                                                                          reuses):
    import subprocess

    overlay = tmp_path / "scanvi.yaml"
    overlay.write_text(f"methods:\n  scvi: {{max_epochs: 5}}\n  scanvi: {scanvi_params}\n")
    target = "results/pbmc_3chem/integration/scanvi/seed0.h5ad"
    proc = subprocess.run([*workflow_tools.command(tmp_path / "wd", overlay), "--dry-run", target],
                          cwd=workflow_tools.repo, capture_output=True, text=True, env=workflow_tools.env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    planned = proc.stdout + proc.stderr
    assert ("integration/scvi/seed0.model/model.pt" in planned) is reuses
    assert ("integrate_scvi" in planned) is reuses


def _label_agreement(embedding, labels, k=15):
    """Mean fraction of each cell's k nearest neighbours (itself excluded) that share its label."""
    from scdiva.bench.tasks.integration.metrics import compute_neighbors

    idx = compute_neighbors(embedding, n_neighbors=k + 1).indices[:, 1:]
    return float(np.mean(labels[idx] == labels[:, None]))


@pytest.mark.parametrize("method", BASELINES)
def test_embedding_rows_belong_to_their_cells(embeddings, pbmc_small, method):
    """Row i of X_emb is cell i: neighbours share its cell type far more often than for shuffled rows
    (a method that returned its cells in another order, e.g. grouped by batch, fails this)."""
    labels = pbmc_small.obs["cell_type"].astype(str).to_numpy()
    emb = embeddings[method].obsm["X_emb"]
    shuffled = emb[np.random.default_rng(0).permutation(len(emb))]
    aligned, control = _label_agreement(emb, labels), _label_agreement(shuffled, labels)
    assert aligned > 0.6 and aligned > control + 0.3, (method, aligned, control)
    assert embeddings[method].obs_names.equals(pbmc_small.obs_names)


@pytest.mark.parametrize("method", ["scvi", "scanvi"])
def test_scvi_and_scanvi_keep_cell_types_far_better_than_a_broken_embedding(embeddings, pbmc_small, method):
    """graph_connectivity, the benchmark's own metric (15-NN graph), of the method's embedding against
    the same embedding with its rows shuffled (cells mixed up) and a constant one: finiteness and
    shape alone pass both broken outputs."""
    from scdiva.bench.tasks.integration.metrics import compute_neighbors, graph_connectivity

    labels = pbmc_small.obs["cell_type"].astype(str).to_numpy()
    emb = np.asarray(embeddings[method].obsm["X_emb"])
    rng = np.random.default_rng(0)
    scored = {name: graph_connectivity(compute_neighbors(x, n_neighbors=15), labels) for name, x in {
        "real": emb, "shuffled": emb[rng.permutation(len(emb))],
        "constant": np.zeros_like(emb) + rng.normal(scale=1e-6, size=emb.shape)}.items()}
    assert scored["real"] > max(scored["shuffled"], scored["constant"]) + 0.15, (method, scored)


def test_batch_mixing_gain_is_not_bought_with_biology(embeddings, pbmc_small):
    """Partner of the batch-mixing test: shuffled rows mix batches too (higher iLISI than PCA), so
    Harmony must also keep cell types as well as PCA does, and far better than the shuffled control."""
    from scdiva.bench.tasks.integration.metrics import clisi, compute_neighbors, ilisi, silhouette_label

    labels = pbmc_small.obs["cell_type"].astype(str).to_numpy()
    batches = pbmc_small.obs["donor"].astype(str).to_numpy()
    harmony = embeddings["harmony"].obsm["X_emb"]
    shuffled = harmony[np.random.default_rng(0).permutation(len(harmony))]
    pca = embeddings["unintegrated"].obsm["X_emb"]
    nn = {name: compute_neighbors(x) for name, x in (("harmony", harmony), ("shuffled", shuffled), ("pca", pca))}
    assert ilisi(nn["shuffled"], batches) > ilisi(nn["pca"], batches)  # the batch test alone would pass it
    assert clisi(nn["harmony"], labels) > clisi(nn["shuffled"], labels) + 0.2
    assert silhouette_label(harmony, labels) > silhouette_label(shuffled, labels) + 0.05
    assert clisi(nn["harmony"], labels) >= clisi(nn["pca"], labels) - 0.05


def test_derived_method_errors_name_the_method_and_the_fix():
    from scdiva.bench.methods.catalog import get_method
    from scdiva.bench.methods.record import MethodConfigError

    cases = [({"base": "scvii"}, "`base` 'scvii' is not a built-in integration method"),
             ({"base": "scvi", "params": {"n_latnet": 7}}, r"\['n_latnet'\] are not parameters of 'scvi'"),
             ({"base": "scvi", "entry_point": "x:y"}, r"unknown keys \['entry_point'\]"),
             ({"base": "logreg", "task": "annotation"}, "defined for task 'annotation'")]
    for entry, message in cases:
        with pytest.raises(MethodConfigError, match=message):
            get_method("integration", "my_variant", entry)
    with pytest.raises(MethodConfigError, match="'harmony' is a built-in integration method"):
        get_method("integration", "harmony", {"base": "scvi"})


def test_derived_method_override_reaches_the_fitted_model(pbmc_small):
    from scdiva.bench.methods.catalog import get_method

    record = get_method("integration", "scvi_latent7", {"base": "scvi", "params": {"n_latent": 7, "max_epochs": 1}})
    adata = pbmc_small.copy()
    integrate(adata, record, batch_key="donor", label_key="cell_type", seed=0, threads=1)
    assert adata.obsm["X_emb"].shape == (pbmc_small.n_obs, 7)  # scvi's own default is 10
    assert record.gpu and record.saves_model and record.role == "baseline"
