"""ScDiVa's benchmark adapters on a tiny checkpoint trained here (real PBMCs, a few steps)."""

import numpy as np
import pytest

from scdiva.bench.annotation import annotate, split_reference_query
from scdiva.bench.methods import integrate, method_records


@pytest.fixture(scope="module")
def checkpoint(pbmc_preprocessed, tmp_path_factory):
    from scdiva import ScDiVaModel
    from scdiva.bench.methods.scdiva import counts_view

    model = ScDiVaModel.from_config("tiny", genes=pbmc_preprocessed.var_names)
    model.fit(counts_view(pbmc_preprocessed), tasks=["masked_expression", "integration"], batch_key="donor",
              max_steps=5, batch_size=32, progress_bar=False)
    path = tmp_path_factory.mktemp("ckpt") / "scdiva_tiny"
    model.save_pretrained(str(path))
    return str(path)


def test_scdiva_joins_the_integration_registry_twice(pbmc_preprocessed, checkpoint):
    assert {"scdiva_zeroshot", "scdiva_finetuned"} <= set(method_records("integration"))
    adata = pbmc_preprocessed.copy()
    integrate(adata, "scdiva_zeroshot", batch_key="donor", label_key="cell_type", seed=0,
              params={"checkpoint": checkpoint})
    zeroshot = adata.obsm["X_emb"].copy()
    integrate(adata, "scdiva_finetuned", batch_key="donor", label_key="cell_type", seed=0,
              params={"checkpoint": checkpoint, "max_steps": 3, "batch_size": 32})
    assert zeroshot.shape == adata.obsm["X_emb"].shape == (adata.n_obs, zeroshot.shape[1])
    assert not np.allclose(zeroshot, adata.obsm["X_emb"])  # fine-tuning moved the latent


def test_integration_fine_tune_weighs_its_tasks(pbmc_preprocessed, checkpoint, monkeypatch):
    """``task_weights`` reach the trainer as each task's loss weight; a weight for a task the fine-tune
    does not run is an error before any training."""
    from scdiva import ScDiVaModel
    from scdiva.bench.methods.scdiva import SCDIVA_FINETUNED_DEFAULTS, finetune_integration

    seen = {}
    original = ScDiVaModel.fit

    def recording_fit(self, adata, tasks, **kwargs):
        seen.update({spec.name: spec.weight for spec in tasks})
        return original(self, adata, tasks=tasks, **kwargs)

    monkeypatch.setattr(ScDiVaModel, "fit", recording_fit)
    params = {**SCDIVA_FINETUNED_DEFAULTS, "max_steps": 2, "batch_size": 32,
              "tasks": ["masked_expression", "integration"], "task_weights": {"masked_expression": 0.1}}
    latent = finetune_integration(ScDiVaModel.from_pretrained(checkpoint), pbmc_preprocessed, batch_key="donor",
                                  seed=0, params=params)
    assert latent.shape[0] == pbmc_preprocessed.n_obs
    assert seen == {"masked_expression": 0.1, "integration": 1.0}
    seen.clear()
    with pytest.raises(ValueError, match=r"task_weights names \['annotation'\]"):
        finetune_integration(ScDiVaModel.from_pretrained(checkpoint), pbmc_preprocessed, batch_key="donor", seed=0,
                             params={**params, "task_weights": {"annotation": 2.0}})
    assert not seen  # nothing trained


def test_scdiva_annotation_and_missing_checkpoint(pbmc_preprocessed, checkpoint):
    reference, query = split_reference_query(pbmc_preprocessed, batch_key="donor", label_key="cell_type",
                                             reference_batches=["3pv2", "5p"])
    result = annotate("scdiva", reference, query, label_key="cell_type", batch_key="donor",
                      params={"checkpoint": checkpoint, "max_steps": 5, "batch_size": 32}, timing_repeats=2)
    assert result.predictions.shape[0] == query.n_obs
    assert set(result.predictions["predicted"]) <= set(reference.obs["cell_type"].astype(str))
    assert result.timings["inference_s_per_1k_cells"] > 0
    with pytest.raises(FileNotFoundError, match="checkpoints.no_such_ckpt"):
        annotate("scdiva", reference, query, label_key="cell_type", batch_key="donor",
                 params={"checkpoint": "no_such_ckpt"})


@pytest.mark.slow
def test_integration_fine_tune_mixes_batches_better_than_zero_shot(pbmc_preprocessed, tmp_path):
    """The default fine-tune (integration ELBO only, the KL schedule continuing) must raise iLISI
    over the checkpoint it starts from; the previous recipe (masked expression in the fine-tune)
    lowered it."""
    from scdiva import ScDiVaModel
    from scdiva.bench.methods.scdiva import counts_view
    from scdiva.bench.metrics import compute_neighbors, ilisi

    data = counts_view(pbmc_preprocessed)
    model = ScDiVaModel.from_config("tiny", genes=data.var_names, seed=0)
    model.fit(data, tasks=["masked_expression", "integration"], batch_key="donor", max_steps=120, batch_size=128,
              progress_bar=False)
    path = model.save_pretrained(tmp_path / "ckpt")
    batches = pbmc_preprocessed.obs["donor"].to_numpy()

    def mixing(method: str, params: dict) -> float:
        adata = pbmc_preprocessed.copy()
        integrate(adata, method, batch_key="donor", label_key="cell_type", seed=0,
                  params={"checkpoint": str(path), **params})
        return ilisi(compute_neighbors(adata.obsm["X_emb"], 90), batches)

    zero_shot = mixing("scdiva_zeroshot", {})
    fine_tuned = mixing("scdiva_finetuned", {"max_steps": 200})
    assert fine_tuned > zero_shot + 0.02, (zero_shot, fine_tuned)
