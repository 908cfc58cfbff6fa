from types import SimpleNamespace

import numpy as np
import pytest
import torch

from scdiva import ScDiVaModel
from scdiva.module.scdiva_module import ScDiVaModule
from scdiva.train.trainer import lr_factor


def test_tiny_overfits_a_small_batch(pbmc):
    cells = pbmc[:32].copy()
    model = ScDiVaModel.from_config("tiny", genes=cells.var_names, dropout=0.0, seed=0)
    history = model.fit(cells, tasks=["annotation"], label_key="cell_type", max_steps=60, batch_size=32,
                        lr=3e-3, warmup_fraction=0.0, progress_bar=False)
    first, last = history[0]["loss"], np.mean([h["loss"] for h in history[-3:]])
    assert last < 0.1 * first, (first, last)
    labels, _ = model.predict_labels(cells)
    assert np.mean(labels == cells.obs["cell_type"].astype(str).to_numpy()) == 1.0


def test_resume_continues_the_loss_curve_exactly(small_pbmc, tmp_path, monkeypatch):
    settings = dict(tasks=["masked_expression", "integration"], batch_key="donor", max_steps=8, batch_size=32,
                    seed=1, progress_bar=False)
    uninterrupted = ScDiVaModel.from_config("tiny", genes=small_pbmc.var_names, seed=0).fit(small_pbmc, **settings)

    class Interrupted(Exception):
        pass

    original = ScDiVaModule.losses
    calls = {"n": 0}

    def losses_then_crash(self, batch, tasks, step):
        calls["n"] += 1
        if calls["n"] > 6:  # crash in step 7, after the checkpoint of step 4 (and before one at 8)
            raise Interrupted
        return original(self, batch, tasks, step)

    monkeypatch.setattr(ScDiVaModule, "losses", losses_then_crash)
    with pytest.raises(Interrupted):
        ScDiVaModel.from_config("tiny", genes=small_pbmc.var_names, seed=0).fit(
            small_pbmc, checkpoint_dir=tmp_path, checkpoint_every=4, **settings)
    monkeypatch.setattr(ScDiVaModule, "losses", original)
    assert (tmp_path / "last" / "model.safetensors").is_file()
    assert not any(p.suffix in (".pt", ".pkl", ".bin") for p in (tmp_path / "last").iterdir())

    resumed = ScDiVaModel.from_config("tiny", genes=small_pbmc.var_names, seed=123).fit(
        small_pbmc, checkpoint_dir=tmp_path, resume=True, checkpoint_every=4, **settings)
    assert [h["step"] for h in resumed] == list(range(1, 9))
    np.testing.assert_allclose([h["loss"] for h in resumed], [h["loss"] for h in uninterrupted], rtol=1e-5)


def test_resume_refuses_a_checkpoint_of_another_run(small_pbmc, tmp_path):
    model = ScDiVaModel.from_config("tiny", genes=small_pbmc.var_names)
    model.fit(small_pbmc, tasks=["masked_expression"], max_steps=2, batch_size=64, checkpoint_dir=tmp_path,
              progress_bar=False)
    with pytest.raises(ValueError, match="cannot resume"):
        model.fit(small_pbmc, tasks=["masked_expression"], max_steps=3, batch_size=64, checkpoint_dir=tmp_path,
                  resume=True, progress_bar=False)


def test_learning_rate_schedule_warms_up_then_decays():
    factors = [lr_factor(s, 100, 10) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:], strict=False)) and factors[-1] >= 0.1


def test_bad_training_input_fails_before_training(small_pbmc):
    model = ScDiVaModel.from_config("tiny", genes=small_pbmc.var_names)
    with pytest.raises(ValueError, match="needs label_key"):
        model.fit(small_pbmc, tasks=["annotation"], max_steps=1)
    with pytest.raises(KeyError, match="'celltype' is not in adata.obs"):
        model.fit(small_pbmc, tasks=["annotation"], label_key="celltype", max_steps=1)
    with pytest.raises(ValueError, match="unknown task"):
        model.fit(small_pbmc, tasks=["clustering"], max_steps=1)


def test_second_fit_continues_the_kl_schedule_and_it_is_saved(small_pbmc, tmp_path):
    from scdiva import ScDiVaModel as Model

    model = Model.from_config("tiny", genes=small_pbmc.var_names, kl_warmup_steps=10)
    model.fit(small_pbmc, tasks=["integration"], batch_key="donor", max_steps=4, batch_size=64, progress_bar=False)
    decoder = model.module.decoder
    assert int(decoder.kl_step) == 4 and decoder.kl_weight(0) == pytest.approx(0.4)
    model.save_pretrained(tmp_path / "ckpt")
    reloaded = Model.from_pretrained(tmp_path / "ckpt")
    assert int(reloaded.module.decoder.kl_step) == 4
    reloaded.fit(small_pbmc, tasks=["integration"], batch_key="donor", max_steps=3, batch_size=64,
                 progress_bar=False)
    assert int(reloaded.module.decoder.kl_step) == 7
    # a fit without the integration task leaves the schedule where it was
    reloaded.fit(small_pbmc, tasks=["masked_expression"], max_steps=2, batch_size=64, progress_bar=False)
    assert int(reloaded.module.decoder.kl_step) == 7


def test_kl_weight_ramp_moves_the_weight_over_the_fits_epochs_and_a_reload_continues_it(small_pbmc, tmp_path):
    from scdiva import ScDiVaModel as Model

    model = Model.from_config("tiny", genes=small_pbmc.var_names, kl_warmup_steps=100)
    model.fit(small_pbmc, tasks=["integration"], batch_key="donor", max_steps=2, batch_size=64, progress_bar=False)
    decoder = model.module.decoder
    assert decoder.kl_weight(0) == pytest.approx(0.02)  # the warm-up, 2 steps of 100 in
    steps_per_epoch = -(-(small_pbmc.n_obs - round(0.1 * small_pbmc.n_obs)) // 64)
    model.fit(small_pbmc, tasks=["integration"], batch_key="donor", max_steps=1, batch_size=64,
              validation_fraction=0.1, kl_weight=3.0, kl_weight_ramp_epochs=2, progress_bar=False)
    ramp_steps = 2 * steps_per_epoch
    assert model.config.kl_weight_ramp == [1.0, 2, ramp_steps]
    # one step of the ramp is done; the next fit goes on from there, linearly, to 3, in place of the warm-up
    assert decoder.kl_weight(0) == pytest.approx(1.0 + 2.0 / ramp_steps)
    assert decoder.kl_weight(ramp_steps // 2 - 1) == pytest.approx(2.0)
    assert decoder.kl_weight(ramp_steps) == 3.0 and decoder.kl_weight(None) == 3.0  # held-out: the target
    model.save_pretrained(tmp_path / "ckpt")
    reloaded = Model.from_pretrained(tmp_path / "ckpt")
    assert reloaded.module.decoder.kl_weight(0) == pytest.approx(decoder.kl_weight(0))
    # a new weight given without a ramp applies at once, from where the ramp had got to otherwise
    reloaded.fit(small_pbmc, tasks=["integration"], batch_key="donor", max_steps=1, batch_size=64,
                 kl_weight=1.0, kl_weight_ramp_epochs=2, progress_bar=False)
    assert reloaded.config.kl_weight_ramp[0] == pytest.approx(1.0 + 2.0 / ramp_steps)
    reloaded.fit(small_pbmc, tasks=["integration"], batch_key="donor", max_steps=1, batch_size=64,
                 kl_weight=2.0, progress_bar=False)
    assert reloaded.config.kl_weight_ramp is None  # the warm-up applies again: 5 steps of 100 in
    assert reloaded.module.decoder.kl_weight(0) == pytest.approx(2.0 * 0.05)
    # a ramp without a new weight has nothing to move
    reloaded.fit(small_pbmc, tasks=["integration"], batch_key="donor", max_steps=1, kl_weight_ramp_epochs=2,
                 progress_bar=False)
    assert reloaded.config.kl_weight == 2.0 and reloaded.config.kl_weight_ramp is None


def test_classifier_depth_is_a_task_option_that_survives_a_reload(small_pbmc, tmp_path):
    from torch import nn

    from scdiva import ScDiVaModel as Model
    from scdiva.model.tasks import TaskSpec

    linear = TaskSpec("annotation", kind="classifier", obs_key="cell_type", hidden_layers=0)
    model = Model.from_config("tiny", genes=small_pbmc.var_names, seed=0)
    model.fit(small_pbmc, tasks=[linear], max_steps=3, batch_size=64, progress_bar=False)
    head = model.module.heads["annotation"]
    assert [type(m) for m in head.mlp] == [nn.Linear]  # a logistic regression on the latent mean
    model.save_pretrained(tmp_path / "ckpt")
    reloaded = Model.from_pretrained(tmp_path / "ckpt")
    assert [type(m) for m in reloaded.module.heads["annotation"].mlp] == [nn.Linear]
    np.testing.assert_allclose(reloaded.predict_proba(small_pbmc)[0], model.predict_proba(small_pbmc)[0],
                               rtol=1e-5, atol=1e-6)
    # the plain task name keeps the trained head; asking for another depth starts a fresh one
    reloaded.fit(small_pbmc, tasks=["annotation"], label_key="cell_type", max_steps=1, batch_size=64,
                 progress_bar=False)
    assert len(reloaded.module.heads["annotation"].mlp) == 1
    reloaded.fit(small_pbmc, tasks=[TaskSpec("annotation", obs_key="cell_type", hidden_layers=2)], max_steps=1,
                 batch_size=64, progress_bar=False)
    assert sum(isinstance(m, nn.Linear) for m in reloaded.module.heads["annotation"].mlp) == 3
    with pytest.raises(ValueError, match="classifier tasks only"):
        TaskSpec("integration", kind="integration", hidden_layers=0)


def _blind_latent_then_reload(model, adata, tmp_path, representation: str):
    """Zero the latent mean's layer, check the annotation head still tells cells apart (a head reading
    only the latent would give every cell the same logits), and that a saved and reloaded copy keeps
    the head's representation and predictions; returns the reloaded model."""
    from scdiva import ScDiVaModel as Model

    model.module.latent_mean.weight.data.zero_()
    model.module.latent_mean.bias.data.zero_()
    proba = model.predict_proba(adata)[0]
    assert np.ptp(proba, axis=0).max() > 1e-3
    model.save_pretrained(tmp_path / "ckpt")
    reloaded = Model.from_pretrained(tmp_path / "ckpt")
    assert reloaded.module.heads["annotation"].representation == representation
    np.testing.assert_allclose(reloaded.predict_proba(adata)[0], proba, rtol=1e-5, atol=1e-6)
    return reloaded


def test_classifier_can_read_the_cell_representation_before_the_bottleneck(small_pbmc, tmp_path):
    from scdiva import ScDiVaModel as Model
    from scdiva.model.tasks import TaskSpec

    on_cell = TaskSpec("annotation", obs_key="cell_type", representation="cell", hidden_layers=0)
    model = Model.from_config("tiny", genes=small_pbmc.var_names, seed=0)
    model.fit(small_pbmc, tasks=[on_cell], max_steps=2, batch_size=64, progress_bar=False)
    head = model.module.heads["annotation"]
    assert head.mlp[0].in_features == 2 * model.config.d_model
    # the logits follow the cell representation, not the latent
    reloaded = _blind_latent_then_reload(model, small_pbmc, tmp_path, "cell")
    # asking for the latent again starts a fresh head of the latent's width
    reloaded.fit(small_pbmc, tasks=[TaskSpec("annotation", obs_key="cell_type", representation="latent")],
                 max_steps=1, batch_size=64, progress_bar=False)
    assert reloaded.module.heads["annotation"].mlp[0].in_features == reloaded.config.n_latent
    with pytest.raises(ValueError, match="representation must be one of"):
        TaskSpec("annotation", obs_key="cell_type", representation="genes")


def test_wide_classifier_adds_a_linear_term_on_the_genes(small_pbmc, tmp_path):
    """``latent_and_genes``: the latent classifier plus a linear term on the log-normalised profile,
    zero at the start (so it starts as the latent classifier) and trained with the rest."""
    from scdiva import ScDiVaModel as Model
    from scdiva.model.tasks import TaskSpec

    wide = TaskSpec("annotation", obs_key="cell_type", representation="latent_and_genes", hidden_layers=0)
    model = Model.from_config("tiny", genes=small_pbmc.var_names, seed=0)
    model.fit(small_pbmc, tasks=[wide], max_steps=3, batch_size=64, progress_bar=False)
    head = model.module.heads["annotation"]
    assert head.genes.in_features == model.config.n_genes and head.mlp[0].in_features == model.config.n_latent
    assert head.genes.weight.abs().max() > 0  # the gene term learned
    # with the latent zeroed the logits still differ between cells: they read the genes
    _blind_latent_then_reload(model, small_pbmc, tmp_path, "latent_and_genes")
    head.genes.weight.data.zero_()  # without the gene term the logits no longer differ
    assert np.ptp(model.predict_proba(small_pbmc)[0], axis=0).max() < 1e-6


def test_early_stopping_watches_only_the_tasks_named(small_pbmc):
    """The held-out loss is the sum over the monitored tasks: with both tasks trained, monitoring both
    gives the ELBO's held-out loss plus the masked term's, each measured alone on the same weights."""
    settings = dict(tasks=["masked_expression", "integration"], batch_key="donor", max_steps=2, batch_size=64,
                    validation_fraction=0.2, eval_every=2, seed=3, progress_bar=False)

    def held_out(monitored):
        model = ScDiVaModel.from_config("tiny", genes=small_pbmc.var_names, seed=0)
        return model.fit(small_pbmc, early_stopping_tasks=monitored, **settings)[-1]["val_loss"]

    both, elbo, masked = held_out(None), held_out(["integration"]), held_out(["masked_expression"])
    assert elbo > 0 and masked > 0
    assert both == pytest.approx(elbo + masked, rel=1e-4)
    with pytest.raises(ValueError, match=r"early_stopping_tasks \['annotation'\] are not among the trained"):
        ScDiVaModel.from_config("tiny", genes=small_pbmc.var_names).fit(
            small_pbmc, early_stopping_tasks=["annotation"], **settings)


def test_count_thinning_reaches_the_training_steps(small_pbmc):
    settings = dict(tasks=["integration"], batch_key="donor", max_steps=2, batch_size=64, seed=1,
                    progress_bar=False)

    def first_loss(**extra):
        model = ScDiVaModel.from_config("tiny", genes=small_pbmc.var_names, seed=0)
        return model.fit(small_pbmc, **settings, **extra)[0]["loss"]

    assert first_loss(count_thinning=0.3) != pytest.approx(first_loss(), rel=1e-3)
    with pytest.raises(ValueError, match="count_thinning must be in"):
        first_loss(count_thinning=0.0)


@pytest.mark.parametrize("representation", ["latent_and_genes_ensemble", "cell_and_genes_ensemble"])
def test_ensemble_classifier_trains_each_expert_on_its_own_error_and_multiplies_them(small_pbmc, representation):
    """``*_and_genes_ensemble``: the loss is the MLP's cross-entropy (on the latent mean, or on the cell
    representation) plus the gene regression's, and the prediction is the normalised product of
    their probabilities."""
    import torch.nn.functional as F

    from scdiva.model.tasks import TaskSpec

    spec = TaskSpec("annotation", obs_key="cell_type", representation=representation)
    model = ScDiVaModel.from_config("tiny", genes=small_pbmc.var_names, seed=0)
    model.fit(small_pbmc, tasks=[spec], max_steps=3, batch_size=64, progress_bar=False)
    head = model.module.heads["annotation"]
    assert head.genes.weight.abs().max() > 0 and head.genes.bias.abs().max() > 0
    batch = model.tokenize(small_pbmc[:32])
    batch.labels["annotation"] = target = torch.tensor(
        [head.categories.index(c) for c in small_pbmc.obs["cell_type"][:32].astype(str)])
    with torch.inference_mode():
        out = model.module(batch)
        expert_input = out.qz_mean if representation.startswith("latent") else out.cell
        latent_logits, gene_logits = head.mlp(expert_input), head.genes(out.profile)
        expected_loss = F.cross_entropy(latent_logits, target) + F.cross_entropy(gene_logits, target)
        assert float(head.loss(out, batch, step=0)) == pytest.approx(float(expected_loss), rel=1e-5)
    product = F.softmax(latent_logits, -1) * F.softmax(gene_logits, -1)
    expected = (product / product.sum(-1, keepdim=True)).numpy()
    model.inference_precision = "fp32"  # as computed above, not bf16 where the CPU has it
    assert np.allclose(model.predict_proba(small_pbmc[:32])[0], expected, atol=1e-5)


def test_the_genes_expert_is_fitted_to_the_logistic_regression_optimum():
    """``fit_genes_expert`` solves scikit-learn's L2 multinomial logistic regression (C=1, intercept not
    penalised); unlabelled cells (-1) take no part."""
    from sklearn.linear_model import LogisticRegression

    from scdiva.config import ScDiVaConfig
    from scdiva.module.heads import ClassifierHead

    generator = torch.Generator().manual_seed(0)
    profile = torch.log1p(torch.poisson(torch.rand(300, 40, generator=generator) * 2, generator=generator))
    target = (profile[:, :3] * torch.tensor([1.0, 0.8, 0.6])).argmax(1)  # 3 classes, partly separable
    target[torch.rand(300, generator=generator) < 0.2] = 2
    target[:30] = -1
    head = ClassifierHead(ScDiVaConfig.from_size("tiny", n_genes=40), "annotation", categories=["a", "b", "c"],
                          representation="latent_and_genes_ensemble")
    head.fit_genes_expert(profile, target)
    reference = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(profile[30:].numpy(), target[30:].numpy())
    with torch.no_grad():
        ours = torch.softmax(head.genes(profile), -1).numpy()
    assert np.abs(ours - reference.predict_proba(profile.numpy())).max() < 2e-3
    with pytest.raises(ValueError, match="no genes expert"):
        ClassifierHead(ScDiVaConfig.from_size("tiny", n_genes=40), "annotation", categories=["a", "b"]
                       ).fit_genes_expert(profile, target)


def test_a_fit_leaves_the_genes_expert_at_its_optimum_whatever_the_seed(small_pbmc):
    """``converge_genes_expert`` (default): the genes expert depends on the labelled cells only, not on the
    seed or the network's training; without it, on both."""
    from scdiva.model.tasks import TaskSpec

    spec = TaskSpec("annotation", obs_key="cell_type", representation="latent_and_genes_ensemble")

    def genes_expert(seed: int, **extra) -> torch.Tensor:
        model = ScDiVaModel.from_config("tiny", genes=small_pbmc.var_names, seed=0)
        model.fit(small_pbmc, tasks=["integration", spec], batch_key="donor", max_steps=3, batch_size=32,
                  seed=seed, progress_bar=False, **extra)
        return model.module.heads["annotation"].genes.weight.detach().clone()

    converged = genes_expert(1)
    assert torch.allclose(converged, genes_expert(2), atol=1e-5)
    assert converged.abs().max() > 1e-2
    joint = genes_expert(1, converge_genes_expert=False)
    assert not torch.allclose(joint, genes_expert(2, converge_genes_expert=False), atol=1e-5)
    assert not torch.allclose(joint, converged, atol=1e-3)


def test_a_fit_with_the_same_seed_gives_the_same_model_whatever_the_global_random_state(small_pbmc):
    """The classifier head and the new batch's decoder rows a fit adds are drawn from its seed, not
    from whatever state the process's torch generator has reached."""
    from scdiva.model.tasks import TaskSpec

    reference = small_pbmc[small_pbmc.obs["donor"] != "3pv1"].copy()
    query = small_pbmc.copy()  # brings a batch (3pv1) the reference fit did not see
    spec = TaskSpec("annotation", obs_key="cell_type")
    settings = dict(tasks=["integration", spec], batch_key="donor", batch_size=32, seed=3, progress_bar=False)

    def annotator(global_seed: int) -> ScDiVaModel:
        model = ScDiVaModel.from_config("tiny", genes=small_pbmc.var_names, seed=0)
        torch.manual_seed(global_seed)
        model.fit(reference, max_steps=2, **settings)
        torch.manual_seed(global_seed)
        model.fit(query, max_steps=1, **settings)
        return model

    first, second = annotator(global_seed=1), annotator(global_seed=2)
    for (name, a), b in zip(first.module.state_dict().items(), second.module.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_weight_averaging_evaluates_and_keeps_the_averaged_weights(small_pbmc):
    """An average over a horizon far longer than the run stays at the starting weights: the held-out
    loss it is scored with does not move, and the model ends with those weights, while the raw
    weights (what training follows) moved."""
    settings = dict(tasks=["integration"], batch_key="donor", max_steps=4, batch_size=32, seed=0,
                    progress_bar=False, validation_fraction=0.2, eval_every=1)

    def trained(**extra):
        model = ScDiVaModel.from_config("tiny", genes=small_pbmc.var_names, seed=0)
        start = {k: v.detach().clone() for k, v in model.module.named_parameters()}
        history = model.fit(small_pbmc, **settings, **extra)
        moved = max(float((v - start[k]).abs().max()) for k, v in model.module.named_parameters()
                    if v.shape == start[k].shape)  # the decoder's batch rows are made by the fit
        return [h["val_loss"] for h in history], moved, history

    raw_val, raw_moved, raw_history = trained()
    averaged_val, averaged_moved, averaged_history = trained(weight_average_epochs=1e9)
    assert raw_moved > 1e-3 and averaged_moved < 1e-6
    assert max(averaged_val) - min(averaged_val) < 1e-4 < max(raw_val) - min(raw_val)
    # training itself follows the raw weights either way
    assert [h["loss"] for h in averaged_history] == pytest.approx([h["loss"] for h in raw_history], rel=1e-6)
    with pytest.raises(ValueError, match="weight_average_epochs must be > 0"):
        trained(weight_average_epochs=0)


def test_dropout_of_a_fit_replaces_the_configured_rate_for_that_fit_only(small_pbmc):
    """fit(dropout=0.0) on a model configured with dropout trains exactly as a model configured
    without it, and leaves the configured rate in place for later fits."""
    settings = dict(tasks=["integration"], batch_key="donor", max_steps=3, batch_size=32, seed=0, progress_bar=False)

    def losses(config_dropout: float, **extra) -> tuple[list[float], ScDiVaModel]:
        model = ScDiVaModel.from_config("tiny", genes=small_pbmc.var_names, dropout=config_dropout, seed=0)
        return [h["loss"] for h in model.fit(small_pbmc, **settings, **extra)], model

    without, _ = losses(0.0)
    configured, _ = losses(0.1)
    overridden, model = losses(0.1, dropout=0.0)
    assert configured != pytest.approx(without, rel=1e-6)
    assert overridden == pytest.approx(without, rel=1e-6)
    rates = {m.p for m in model.module.modules() if isinstance(m, torch.nn.Dropout)}
    assert rates == {0.1}
    with pytest.raises(ValueError, match="dropout must be in"):
        losses(0.1, dropout=1.0)


def _model_state(model):
    return (model.config.to_dict(), {k: v.clone() for k, v in model.module.state_dict().items()}, model.module.protein)


def _same_state(model, state) -> bool:
    config, weights, protein = state
    now = model.module.state_dict()
    return (model.config.to_dict() == config and model.module.protein is protein and now.keys() == weights.keys()
            and all(torch.equal(now[k], weights[k]) for k in weights))


@pytest.mark.parametrize("fit_integration", [False, True])
def test_a_fit_that_fails_on_its_input_leaves_the_model_as_it_was(small_pbmc, fit_integration):
    """New batch rows, a new classifier head or a protein modality are added only once every AnnData is
    known to be usable: a gene, label or protein error leaves no half-changed model behind."""
    from scdiva import ScDiVaModel as Model
    from scdiva.data.vocab import GeneMismatchError
    from scdiva.model.protein import ProteinDataError
    from scdiva.model.tasks import TaskSpec

    model = Model.from_config("tiny", genes=small_pbmc.var_names, seed=0)
    model.fit(small_pbmc, tasks=["integration"], batch_key="donor", max_steps=1, batch_size=64, progress_bar=False)
    before = _model_state(model)
    usable = small_pbmc.copy()
    usable.obs["donor"] = "new_chemistry"  # a batch the decoder would gain a row for
    foreign = usable.copy()
    foreign.var_names = [f"OTHER{i}" for i in range(foreign.n_vars)]  # no gene of the vocabulary
    if fit_integration:
        with pytest.raises(GeneMismatchError):
            model.fit_integration([usable, foreign], [usable.obs["donor"].to_numpy()] * 2, max_steps=1)
        assert _same_state(model, before)
        return
    with pytest.raises(GeneMismatchError):  # the second AnnData fails after the first was encoded
        model.fit([usable, foreign], tasks=["integration", "annotation"], batch_key="donor", label_key="cell_type",
                  max_steps=1, progress_bar=False)
    assert _same_state(model, before)
    with pytest.raises(KeyError, match="no_such_column"):  # the second task's label column is missing
        model.fit(usable, tasks=["integration", "annotation",
                                 TaskSpec("coarse", kind="classifier", obs_key="no_such_column")],
                  batch_key="donor", label_key="cell_type", max_steps=1, progress_bar=False)
    assert _same_state(model, before)
    with pytest.raises(ValueError, match="decoder_dispersion"):  # the objective is checked whole before it is set
        model.fit(usable, tasks=["integration"], batch_key="donor", kl_weight=3.0, decoder_dispersion="per-cell",
                  max_steps=1, progress_bar=False)
    assert _same_state(model, before)
    usable.obsm["protein"] = np.full((usable.n_obs, 3), 0.5, dtype=np.float32)  # not counts
    with pytest.raises(ProteinDataError):
        model.fit(usable, tasks=["integration"], batch_key="donor", protein_obsm_key="protein", max_steps=1,
                  progress_bar=False)
    assert _same_state(model, before)
    # and the same fit on usable input does change it
    usable.obsm["protein"] = np.ones((usable.n_obs, 3), dtype=np.float32)
    model.fit(usable, tasks=["integration", "annotation"], batch_key="donor", label_key="cell_type",
              protein_obsm_key="protein", max_steps=1, progress_bar=False)
    assert model.config.batch_categories[-1] == "new_chemistry" and "annotation" in model.tasks
    assert model.config.protein_names == ["protein_0", "protein_1", "protein_2"]


def test_fit_sets_the_integration_objective_and_a_saved_model_keeps_it(small_pbmc, tmp_path):
    from scdiva import ScDiVaModel as Model

    model = Model.from_config("tiny", genes=small_pbmc.var_names, seed=0, kl_warmup_steps=0)
    model.fit(small_pbmc, tasks=["integration"], batch_key="donor", max_steps=2, batch_size=64, progress_bar=False)
    decoder = model.module.decoder
    assert decoder.kl_weight(0) == 1.0 and decoder.batch_log_theta is None
    model.fit(small_pbmc, tasks=["integration"], batch_key="donor", max_steps=4, batch_size=64, lr=1e-2,
              kl_weight=3.0, decoder_dispersion="gene-batch", progress_bar=False)
    assert decoder.kl_weight(0) == 3.0 and model.config.kl_weight == 3.0
    # each chemistry has learned its own dispersion, starting from the shared per-gene values
    offsets = decoder.batch_log_theta.weight.detach()
    assert offsets.shape == (3, small_pbmc.n_vars) and not torch.equal(offsets[0], offsets[1])
    theta = decoder.dispersion(SimpleNamespace(batch=torch.tensor([0, 1, -1])))
    assert torch.allclose(theta[0], (decoder.log_theta + offsets[0]).exp())
    assert torch.allclose(theta[2], decoder.log_theta.exp())  # an unknown batch: the per-gene value
    model.save_pretrained(tmp_path / "ckpt")
    reloaded = Model.from_pretrained(tmp_path / "ckpt")
    assert reloaded.config.kl_weight == 3.0 and reloaded.config.decoder_dispersion == "gene-batch"
    assert torch.equal(reloaded.module.decoder.batch_log_theta.weight, offsets)
