"""The public API on real data: held-out chemistry annotation, latent quality, save/load, inference."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from scdiva import ScDiVaInference, ScDiVaModel
from scdiva.data.vocab import GeneMismatchError
from scdiva.model.pretrained import CheckpointError


@pytest.mark.slow
def test_held_out_chemistry_annotation_and_latent_separation(trained, pbmc_split):
    """Accuracy on the unseen chemistry far above the majority-class rate; the latent separates
    cell types better than a random projection of the log-normalised data (silhouette, -1..1)."""
    from sklearn.metrics import silhouette_score

    model, history = trained
    _, query = pbmc_split
    truth = query.obs["cell_type"].astype(str).to_numpy()
    predicted, confidence = model.predict_labels(query)
    accuracy = np.mean(predicted == truth)
    majority = query.obs["cell_type"].value_counts(normalize=True).iloc[0]
    assert accuracy > max(0.75, 2 * majority), (accuracy, majority)
    assert ((confidence > 0) & (confidence <= 1)).all()

    latent = model.get_latent(query)
    counts = query.X.toarray()
    log_norm = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4)
    projection = log_norm @ np.random.default_rng(0).normal(size=(counts.shape[1], latent.shape[1]))
    silhouette_latent, silhouette_random = silhouette_score(latent, truth), silhouette_score(projection, truth)
    assert silhouette_latent > silhouette_random + 0.1, (silhouette_latent, silhouette_random)
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]


def test_save_load_round_trip_gives_identical_encodings(trained, pbmc_split, tmp_path):
    model, _ = trained
    _, query = pbmc_split
    model.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors", "vocab.json"]
    loaded = ScDiVaModel.from_pretrained(tmp_path / "ckpt", device="cpu")
    tokens = model.tokenize(query[:50])
    torch.testing.assert_close(loaded.encode(tokens), model.encode(tokens), rtol=0, atol=0)
    torch.testing.assert_close(loaded.predict(tokens, task="annotation"), model.predict(tokens, task="annotation"),
                               rtol=0, atol=0)
    assert loaded.config.tasks == model.config.tasks and loaded.vocab == model.vocab


def test_checkpoint_with_a_pickle_file_is_refused(trained, tmp_path):
    model, _ = trained
    directory = model.save_pretrained(tmp_path / "ckpt")
    (directory / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(CheckpointError, match=r"pickle-based file\(s\) \['pytorch_model.bin'\]"):
        ScDiVaModel.from_pretrained(directory)


def test_unreachable_hub_repo_gives_an_offline_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(CheckpointError, match="train a checkpoint locally"):
        ScDiVaModel.from_pretrained("scdiva-org/scdiva-base")


def test_counts_layer_is_used_when_x_is_log_normalised(trained, pbmc_split):
    model, _ = trained
    _, query = pbmc_split
    cells = query[:40].copy()
    processed = cells.copy()
    processed.layers["counts"] = processed.X.copy()
    processed.X = sp.csr_matrix(np.log1p(processed.X.toarray()))
    np.testing.assert_allclose(model.get_latent(processed), model.get_latent(cells), atol=1e-6)


def test_gene_mismatch_is_reported_before_any_work(trained, pbmc_split):
    model, _ = trained
    _, query = pbmc_split
    renamed = query[:10].copy()
    renamed.var_names = [f"ENSG{i:011d}" for i in range(renamed.n_vars)]
    with pytest.raises(GeneMismatchError, match="var_names"):
        model.get_latent(renamed)


def test_inference_annotate_embed_and_integrate_batches(trained, pbmc_split):
    model, _ = trained
    _, query = pbmc_split
    inference = ScDiVaInference(model=model)
    cells = query[:60].copy()
    assert inference.embed(cells) is cells and cells.obsm["X_scdiva"].shape == (60, model.config.n_latent)
    inference.annotate(cells)
    assert set(cells.obs["scdiva_prediction"].cat.categories) == set(model.module.heads["annotation"].categories)
    assert cells.obs["scdiva_confidence"].between(0, 1).all()

    # two "batches" with different gene sets (the second lacks 300 genes): each is aligned on its own
    first, second = query[:30].copy(), query[30:60, 300:].copy()
    merged = ScDiVaInference(model=ScDiVaModel.from_pretrained(_save(model))).integrate_batches(
        [first, second], batch_names=["a", "b"], max_steps=2)
    assert merged.n_obs == 60 and merged.obsm["X_scdiva"].shape == (60, model.config.n_latent)
    assert merged.obs["batch"].tolist() == ["a"] * 30 + ["b"] * 30
    assert np.isfinite(merged.obsm["X_scdiva"]).all()


def _save(model):
    import tempfile

    return model.save_pretrained(tempfile.mkdtemp() + "/ckpt")
