"""ScDiVa's benchmark adapters on a tiny checkpoint trained here (real PBMCs, a few steps)."""

import numpy as np
import pytest

from scdiva.bench.api import annotate, integrate
from scdiva.bench.core.sampling import split_reference_query
from scdiva.bench.methods.catalog import method_records


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


def graph_connectivity_vs_broken(embedding, labels):
    """graph_connectivity (the benchmark's metric, 15-NN graph) of ``embedding`` and of two broken
    outputs on the same cells: its rows shuffled (cells mixed up) and a constant embedding."""
    from scdiva.bench.tasks.integration.metrics import compute_neighbors, graph_connectivity

    rng = np.random.default_rng(0)
    broken = {"shuffled": embedding[rng.permutation(len(embedding))],
              "constant": np.zeros_like(embedding) + rng.normal(scale=1e-6, size=embedding.shape)}
    score = {name: graph_connectivity(compute_neighbors(x, n_neighbors=15), labels)
             for name, x in {"real": embedding, **broken}.items()}
    return score.pop("real"), score


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
    # both keep cell types together far better than a broken output (measured: 0.61 against <= 0.30)
    labels = adata.obs["cell_type"].astype(str).to_numpy()
    for name, embedding in (("zeroshot", zeroshot), ("finetuned", adata.obsm["X_emb"])):
        real, broken = graph_connectivity_vs_broken(np.asarray(embedding), labels)
        assert all(real > value + 0.15 for value in broken.values()), (name, real, broken)


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


def test_integration_fine_tune_trains_with_its_kl_weight(pbmc_preprocessed, checkpoint, monkeypatch):
    """``kl_weight`` weighs the KL term of the fine-tune's ELBO (training and held-out loss alike) and
    stays in the model's config; null keeps the checkpoint's; a negative weight fails before training."""
    from scdiva import ScDiVaModel
    from scdiva.bench.methods.scdiva import SCDIVA_FINETUNED_DEFAULTS, finetune_integration

    seen = []
    original = ScDiVaModel._train

    def recording_train(self, corpus, specs, run, **kwargs):
        seen.append(self.module.decoder.kl_weight(None))
        return original(self, corpus, specs, run, **kwargs)

    monkeypatch.setattr(ScDiVaModel, "_train", recording_train)
    params = {**SCDIVA_FINETUNED_DEFAULTS, "max_steps": 2, "batch_size": 32}
    for weight, expected in ((3.0, 3.0), (None, ScDiVaModel.from_pretrained(checkpoint).config.kl_weight)):
        model = ScDiVaModel.from_pretrained(checkpoint)
        finetune_integration(model, pbmc_preprocessed, batch_key="donor", seed=0, params={**params, "kl_weight": weight})
        assert seen.pop() == expected and model.config.kl_weight == expected
    with pytest.raises(ValueError, match="kl_weight must be >= 0"):
        finetune_integration(ScDiVaModel.from_pretrained(checkpoint), pbmc_preprocessed, batch_key="donor", seed=0,
                             params={**params, "kl_weight": -1.0})
    assert not seen  # nothing trained


def test_integrate_batches_trains_the_benchmarked_fine_tune(pbmc_preprocessed, checkpoint):
    """The Python API's batch correction is the workflow's ``scdiva_finetuned`` recipe: same checkpoint,
    cells and seed give the same latent and the same KL weight (run capped at a few steps)."""
    from scdiva import ScDiVaInference, ScDiVaModel
    from scdiva.bench.methods.scdiva import SCDIVA_FINETUNED_DEFAULTS, counts_view, finetune_integration

    capped = {"max_steps": 12}  # past one epoch: held-out evaluation and weight averaging both run
    workflow_model = ScDiVaModel.from_pretrained(checkpoint)
    workflow = finetune_integration(workflow_model, pbmc_preprocessed, batch_key="donor", seed=0,
                                    params={**SCDIVA_FINETUNED_DEFAULTS, **capped})
    api_model = ScDiVaModel.from_pretrained(checkpoint)
    merged = ScDiVaInference(model=api_model).integrate_batches([counts_view(pbmc_preprocessed)], batch_key="donor",
                                                                seed=0, **capped)
    np.testing.assert_allclose(merged.obsm["X_scdiva"], workflow, atol=1e-5)
    assert api_model.config.kl_weight == workflow_model.config.kl_weight == SCDIVA_FINETUNED_DEFAULTS["kl_weight"]


@pytest.mark.slow
def test_scdiva_annotation_and_missing_checkpoint(pbmc_preprocessed, checkpoint):
    reference, query = split_reference_query(pbmc_preprocessed, batch_key="donor", label_key="cell_type",
                                             reference_batches=["3pv2", "5p"])
    result = annotate("scdiva", reference, query, label_key="cell_type", batch_key="donor",
                      params={"checkpoint": checkpoint, "max_steps": 5, "batch_size": 32}, timing_repeats=2)
    assert result.predictions.shape[0] == query.n_obs
    assert set(result.predictions["predicted"]) <= set(reference.obs["cell_type"].astype(str))
    assert result.timings["inference_s_per_1k_cells"] > 0
    # far above broken predictions scored by the same metric (measured: accuracy 0.93 against 0.23
    # shuffled and 0.33 for the majority class)
    from test_annotation import assert_beats_broken

    assert_beats_broken(result, reference)
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
    from scdiva.bench.tasks.integration.metrics import compute_neighbors, ilisi

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



def test_fine_tunes_condition_on_the_batches_the_checkpoint_corpus_named(pbmc_preprocessed, tmp_path):
    """A recipe checkpoint's corpus names batches ``<dataset>/<batch>``; both fine-tunes of that dataset
    (in memory and streamed from the file, as the workflow runs it) condition on those pretrained
    decoder categories instead of adding bare-named ones. A checkpoint that never saw the dataset
    keeps the bare names."""
    import copy

    from scdiva import ScDiVaModel
    from scdiva.bench.checkpoints.fetch import corpus_batches
    from scdiva.bench.core.formats import open_rows_backed
    from scdiva.bench.methods.scdiva import (
        SCDIVA_ANNOTATION_DEFAULTS,
        SCDIVA_FINETUNED_DEFAULTS,
        counts_view,
        finetune_integration,
        fit_annotation_model,
    )

    dataset = pbmc_preprocessed.uns["preprocess"]["dataset"]
    assert dataset == "pbmc_3chem"
    corpus = counts_view(pbmc_preprocessed)
    corpus.obs["batch"] = corpus_batches(dataset, corpus.obs["donor"])
    pretrained = ScDiVaModel.from_config("tiny", genes=corpus.var_names)
    pretrained.fit(corpus, tasks=["integration"], batch_key="batch", max_steps=2, batch_size=32, progress_bar=False)
    named = sorted(f"{dataset}/{b}" for b in pbmc_preprocessed.obs["donor"].unique())
    assert pretrained.config.batch_categories == named
    short = {"max_steps": 1, "batch_size": 32, "validation_fraction": 0.0, "early_stopping_patience": None}

    tuned = copy.deepcopy(pretrained)
    finetune_integration(tuned, pbmc_preprocessed, batch_key="donor", seed=0,
                         params={**SCDIVA_FINETUNED_DEFAULTS, **short})
    assert tuned.config.batch_categories == named  # no new category: the pretrained ones were trained on
    before, after = (m.module.decoder.batch_embeddings[0].weight.detach() for m in (pretrained, tuned))
    assert not np.allclose(before, after)
    path = tmp_path / "preprocessed.h5ad"
    pbmc_preprocessed.write_h5ad(path)
    streamed = copy.deepcopy(pretrained)
    finetune_integration(streamed, open_rows_backed(path), batch_key="donor", seed=0,
                         params={**SCDIVA_FINETUNED_DEFAULTS, **short})
    assert streamed.config.batch_categories == named

    reference, query = split_reference_query(pbmc_preprocessed, label_key="cell_type", batch_key="donor",
                                             reference_batches=["3pv2", "5p"], query_batches=["3pv1"])
    annotator = copy.deepcopy(pretrained)
    fitted = fit_annotation_model(annotator, reference, label_key="cell_type", batch_key="donor", seed=0,
                                  params={**SCDIVA_ANNOTATION_DEFAULTS, **short, "query_epochs": 1})
    fitted.map_query(query)
    assert annotator.config.batch_categories == named

    elsewhere = ScDiVaModel.from_config("tiny", genes=corpus.var_names)  # pretrained without this dataset
    corpus.obs["batch"] = "other/a"
    elsewhere.fit(corpus, tasks=["integration"], batch_key="batch", max_steps=1, batch_size=32, progress_bar=False)
    finetune_integration(elsewhere, pbmc_preprocessed, batch_key="donor", seed=0,
                         params={**SCDIVA_FINETUNED_DEFAULTS, **short})
    assert elsewhere.config.batch_categories == ["other/a", *sorted(pbmc_preprocessed.obs["donor"].unique())]


def test_a_derived_method_trains_with_its_override(pbmc_preprocessed, checkpoint, monkeypatch):
    """config `methods.<name>: {base: scdiva_finetuned, params: {...}}` is ScDiVa's fine-tune under another
    name: its parameter reaches the model that is trained, and it keeps the base's role and checkpoint."""
    from scdiva import ScDiVaModel
    from scdiva.bench.api import integrate
    from scdiva.bench.methods.catalog import get_method

    seen = []
    original = ScDiVaModel._train

    def recording_train(self, corpus, specs, run, **kwargs):
        seen.append((self.module.decoder.kl_weight(None), run.trunk_lr_factor))
        return original(self, corpus, specs, run, **kwargs)

    monkeypatch.setattr(ScDiVaModel, "_train", recording_train)
    record = get_method("integration", "scdiva_kl2", {"base": "scdiva_finetuned",
                                                      "params": {"kl_weight": 2.0, "trunk_lr_factor": 1.0}})
    assert record.role == "model" and record.checkpoint_param == "checkpoint" and record.name == "scdiva_kl2"
    adata = pbmc_preprocessed.copy()
    integrate(adata, record, batch_key="donor", label_key=None, seed=0, threads=1,
              params={"checkpoint": checkpoint, "max_steps": 2, "batch_size": 32})
    assert seen == [(2.0, 1.0)] and adata.obsm["X_emb"].shape[0] == adata.n_obs
