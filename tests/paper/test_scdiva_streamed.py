"""The ScDiVa integration jobs stream the counts from the preprocessed file: same embedding as in memory."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
import torch
import yaml

from scdiva.bench.api import integrate
from scdiva.bench.checkpoints.fetch import sha256_of
from scdiva.bench.checkpoints.files import CHECKPOINT_FILES
from scdiva.bench.core.formats import open_rows_backed
from scdiva.bench.methods.catalog import get_method

REPO = Path(__file__).resolve().parents[2]
PBMC = REPO / "data" / "pbmc_3chem_symphony.h5ad"
_spec = importlib.util.spec_from_file_location("scdiva_tests_conftest", REPO / "tests" / "conftest.py")
_conftest = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(_conftest)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A real tiny checkpoint over the PBMC genes, trained a few steps."""
    from scdiva import ScDiVaModel

    torch.set_num_threads(1)
    pbmc = ad.read_h5ad(PBMC)
    model = ScDiVaModel.from_config("tiny", genes=pbmc.var_names, seed=0)
    model.fit(pbmc[::10].copy(), tasks=["masked_expression", "integration"], batch_key="donor", max_steps=3,
              seed=0, progress_bar=False)
    return model.save_pretrained(tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture(scope="module")
def preprocessed(tmp_path_factory) -> Path:
    """A preprocessed-like file: counts in layers["counts"], log1p in X, an obsm entry (as the workflow's)."""
    pbmc = ad.read_h5ad(PBMC)[:700].copy()
    pbmc.layers["counts"] = pbmc.X.copy()
    pbmc.X = sp.csr_matrix(np.log1p(pbmc.X.toarray()))
    pbmc.obsm["X_pca"] = np.zeros((pbmc.n_obs, 5), dtype=np.float32)
    path = tmp_path_factory.mktemp("pre") / "preprocessed.h5ad"
    pbmc.write_h5ad(path)
    return path


def test_backed_file_gives_the_in_memory_embedding(checkpoint, preprocessed):
    record = get_method("integration", "scdiva_zeroshot")
    kwargs = {"batch_key": "donor", "label_key": "cell_type", "seed": 0, "params": {"checkpoint": str(checkpoint)}}
    in_memory = ad.read_h5ad(preprocessed)
    integrate(in_memory, record, **kwargs)

    backed = open_rows_backed(preprocessed)
    assert backed.isbacked and len(backed.layers) == 0 and len(backed.obsm) == 0  # nothing large loaded
    assert list(backed.obs_names) == list(in_memory.obs_names)
    integrate(backed, dataclasses.replace(record, function=record.streams_from), **kwargs)
    np.testing.assert_allclose(backed.obsm["X_emb"], in_memory.obsm["X_emb"], rtol=0, atol=1e-6)
    assert backed.obsm["X_emb"].shape == (700, 16)

    with pytest.raises(ValueError, match="backed on the preprocessed"):
        integrate(ad.read_h5ad(preprocessed), dataclasses.replace(record, function=record.streams_from), **kwargs)


def test_streamed_latent_in_chunks_is_the_whole_latent(checkpoint, preprocessed):
    """The streamed jobs embed a chunk of cells at a time (the heap trimmed in between): every cell once,
    in file order, the values of one in-memory pass."""
    from scdiva import ScDiVaModel
    from scdiva.bench.methods.scdiva import counts_view, streamed_latent

    model = ScDiVaModel.from_pretrained(checkpoint)
    whole = model.get_latent(counts_view(ad.read_h5ad(preprocessed)))
    chunked = streamed_latent(model, open_rows_backed(preprocessed), chunk_cells=128)  # 700 cells: 6 chunks
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-6)


def test_backed_file_gives_the_in_memory_fine_tune(checkpoint, preprocessed):
    """Training batches drawn at random are read from disk row by row: same weights, same embedding."""
    record = get_method("integration", "scdiva_finetuned")
    assert record.streams_from is not None
    kwargs = {"batch_key": "donor", "label_key": "cell_type", "seed": 0,
              "params": {"checkpoint": str(checkpoint), "max_steps": 4, "batch_size": 64}}
    in_memory = ad.read_h5ad(preprocessed)
    integrate(in_memory, record, **kwargs)
    backed = open_rows_backed(preprocessed)
    integrate(backed, dataclasses.replace(record, function=record.streams_from), **kwargs)
    np.testing.assert_allclose(backed.obsm["X_emb"], in_memory.obsm["X_emb"], rtol=0, atol=1e-5)
    zero_shot = ad.read_h5ad(preprocessed)
    integrate(zero_shot, "scdiva_zeroshot", **{**kwargs, "params": {"checkpoint": str(checkpoint)}})
    assert np.abs(backed.obsm["X_emb"] - zero_shot.obsm["X_emb"]).max() > 1e-3  # it trained

    with pytest.raises(ValueError, match="backed on the preprocessed"):
        integrate(ad.read_h5ad(preprocessed), dataclasses.replace(record, function=record.streams_from), **kwargs)


@pytest.mark.slow  # a real download -> preprocess -> integrate run
def test_workflow_integrate_job_streams_and_matches(checkpoint, tmp_path):
    """The workflow's scdiva_zeroshot job (integrate.py, backed path) gives run_scdiva_zeroshot's in-memory result."""
    config = tmp_path / "ckpt.yaml"
    config.write_text(yaml.safe_dump({
        "checkpoints": {"given": {"published": {"path": str(checkpoint),
                                                "sha256": {f: sha256_of(checkpoint / f) for f in CHECKPOINT_FILES}}}},
        "methods": {"scdiva_zeroshot": {"checkpoint": "given"}}}))
    workdir = tmp_path / "wf"
    target = "results/pbmc_3chem/integration/scdiva_zeroshot/seed0.h5ad"
    proc = subprocess.run([*_conftest.snakemake_command(workdir, config, cores=1), target], cwd=REPO,
                          capture_output=True, text=True, env=_conftest.workflow_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    streamed = ad.read_h5ad(workdir / target)
    log = (workdir / "results" / "logs" / "integrate" / "pbmc_3chem.scdiva_zeroshot.seed0.log").read_text()
    assert "counts streamed from results/pbmc_3chem/preprocessed.h5ad (backed" in log

    in_memory = ad.read_h5ad(workdir / "results" / "pbmc_3chem" / "preprocessed.h5ad")
    integrate(in_memory, "scdiva_zeroshot", batch_key="donor", label_key="cell_type", seed=0,
              params={"checkpoint": str(workdir / "resources" / "checkpoints" / "given")})
    assert list(streamed.obs_names) == list(in_memory.obs_names)
    np.testing.assert_allclose(streamed.obsm["X_emb"], in_memory.obsm["X_emb"], rtol=0, atol=1e-6)
