"""Multi-task benchmark on the real PBMCs: tasks, held-out split, cell-cycle labels, scores."""

import numpy as np
import pytest

from scdiva.bench.tasks.multitask.run import (
    HEAD_SETS,
    PHASE_KEY,
    assign_cell_cycle_phase,
    batch_asw,
    held_out_split,
    multitask_long_form,
    run_multitask,
)


def test_head_sets_grow_by_prefix():
    assert HEAD_SETS[1] == ("annotation",)
    assert HEAD_SETS[3][:1] == HEAD_SETS[1] and HEAD_SETS[5][:3] == HEAD_SETS[3] and len(HEAD_SETS[5]) == 5


def test_held_out_split_keeps_every_class(pbmc_preprocessed):
    held = held_out_split(pbmc_preprocessed, "cell_type", 0.2, seed=0)
    labels = pbmc_preprocessed.obs["cell_type"].astype(str)
    assert set(labels[held]) == set(labels) and set(labels[~held]) == set(labels)
    assert abs(held.mean() - 0.2) < 0.02
    with pytest.raises(ValueError, match="held_out_fraction"):
        held_out_split(pbmc_preprocessed, "cell_type", 1.0, seed=0)


def test_cell_cycle_phase_reports_gene_coverage(pbmc_preprocessed):
    adata = pbmc_preprocessed.copy()
    info = assign_cell_cycle_phase(adata)
    assert 0 < len(info["s_genes_found"]) < info["n_s_genes"] == 43
    assert 0 < len(info["g2m_genes_found"]) < info["n_g2m_genes"] == 54
    assert set(adata.obs[PHASE_KEY]) <= {"G1", "S", "G2M"}


def test_batch_asw_separates_mixed_from_split():
    rng = np.random.default_rng(0)
    labels = np.repeat(["a", "b"], 100)
    batches = np.tile(["x", "y"], 100)
    mixed = rng.normal(size=(200, 5))
    split = mixed + (batches == "x")[:, None] * 10.0
    assert batch_asw(mixed, labels, batches) > 0.9 > 0.5 > batch_asw(split, labels, batches)


def test_one_and_five_heads_score_their_tasks_on_held_out_cells(pbmc_preprocessed):
    results, info = run_multitask(pbmc_preprocessed, label_key="cell_type", batch_key="donor",
                                  coarse_label_key="cell_type_broad", head_counts=(1, 5), max_steps=8,
                                  batch_size=32, fit_kwargs={"progress_bar": False})
    assert info["n_held_out"] + info["n_train"] == pbmc_preprocessed.n_obs
    one, five = results
    assert set(one.scores) == {"annotation_accuracy", "annotation_macro_f1", "integration_silhouette_batch",
                               "integration_silhouette_label"}
    assert {"coarse_accuracy", "cell_cycle_accuracy", "masked_expression_mse"} <= set(five.scores)
    assert all(0 <= v <= 1 for k, v in five.scores.items() if k.endswith(("accuracy", "f1")))
    table = multitask_long_form(results, "pbmc_3chem", 0)
    assert set(table["method"]) == {"scdiva_tasks1", "scdiva_tasks5"}


def test_scores_and_predictions_are_for_held_out_cells_only(pbmc_preprocessed, monkeypatch):
    """Every prediction is for a held-out cell, and no held-out cell is trained on (scoring training
    cells would make this fail); the scores are recomputed from the kept per-cell predictions."""
    from scdiva import ScDiVaModel
    from scdiva.bench.tasks.annotation.metrics import annotation_metrics
    from scdiva.bench.tasks.multitask.run import multitask_predictions_long_form

    trained_on: list[set[str]] = []
    original_fit = ScDiVaModel.fit

    def recording_fit(self, adata, *args, **kwargs):  # the real fit, with its cells noted
        trained_on.append(set(adata.obs_names))
        return original_fit(self, adata, *args, **kwargs)

    monkeypatch.setattr(ScDiVaModel, "fit", recording_fit)
    results, info = run_multitask(pbmc_preprocessed, label_key="cell_type", batch_key="donor",
                                  coarse_label_key="cell_type_broad", head_counts=(1,), max_steps=4,
                                  batch_size=32, seed=3)
    held = set(pbmc_preprocessed.obs_names[held_out_split(pbmc_preprocessed, "cell_type", 0.2, seed=3)])
    predictions = multitask_predictions_long_form(results, "pbmc", 3)
    assert set(predictions["cell"]) == held and len(predictions) == len(held) == info["n_held_out"]
    assert trained_on and all(not (cells & held) for cells in trained_on)
    assert set(predictions["task"]) == {"annotation"} and (predictions["seed"] == 3).all()
    truth = pbmc_preprocessed.obs.loc[predictions["cell"], "cell_type"].astype(str).to_numpy()
    assert (predictions["true"].to_numpy() == truth).all()
    again = annotation_metrics(predictions["true"], predictions["predicted"])
    assert results[0].scores["annotation_macro_f1"] == pytest.approx(again["macro_f1"])
    assert results[0].scores["annotation_accuracy"] == pytest.approx(again["accuracy"])
