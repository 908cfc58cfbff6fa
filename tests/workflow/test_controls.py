"""Control methods: negative (random, batch-only, shuffled labels) and positive (cell types) reference points.

On the suite's 480 real PBMCs (three chemistries): what each control writes, that it is seeded, that
it sees labels only when declared (the positive control), and that the scIB totals order them around
a real method: positive control > scVI > every negative control.
"""

from __future__ import annotations

import numpy as np
import pytest

from scdiva.bench.api import annotate, integrate
from scdiva.bench.core.sampling import split_reference_query
from scdiva.bench.methods.catalog import method_records

CONTROLS = ["control_random", "control_batch", "control_celltype"]


def _embed(adata, method, seed=0, **kw):
    out = adata.copy()
    integrate(out, method, batch_key="donor", label_key="cell_type", seed=seed, threads=1, **kw)
    return out.obsm["X_emb"]


def test_controls_are_records_named_apart():
    integration, annotation = method_records("integration"), method_records("annotation")
    for name in [*CONTROLS, "control_shuffled"]:
        record = integration.get(name) or annotation[name]
        assert record.role == "control" and name.startswith("control_")
    assert [m for m in CONTROLS if integration[m].needs_labels] == ["control_celltype"]


def test_batch_and_celltype_controls_are_their_one_hot_plus_seeded_noise(pbmc_small):
    for method, key in (("control_batch", "donor"), ("control_celltype", "cell_type")):
        emb = _embed(pbmc_small, method)
        groups = pbmc_small.obs[key].astype(str).to_numpy()
        assert emb.shape == (pbmc_small.n_obs, len(set(groups)))
        # each cell's largest coordinate is its own group's column (sorted names), the noise sd ~0.1
        assert (np.array(sorted(set(groups)))[emb.argmax(1)] == groups).all()
        one_hot = (np.array(sorted(set(groups)))[None, :] == groups[:, None]).astype(np.float32)
        assert 0.08 < (emb - one_hot).std() < 0.12
        np.testing.assert_array_equal(emb, _embed(pbmc_small, method))
        assert not np.array_equal(emb, _embed(pbmc_small, method, seed=1))


def test_random_control_reads_nothing_of_the_cells(pbmc_small):
    emb = _embed(pbmc_small, "control_random")
    assert emb.shape == (pbmc_small.n_obs, 10) and abs(emb.mean()) < 0.1 and 0.9 < emb.std() < 1.1
    shuffled = pbmc_small[np.random.default_rng(0).permutation(pbmc_small.n_obs)].copy()
    np.testing.assert_array_equal(_embed(shuffled, "control_random"), emb)  # same numbers whatever the cells


def test_shuffled_labels_control_scores_near_chance_and_logreg_far_above(pbmc_small):
    reference, query = split_reference_query(pbmc_small, batch_key="donor", label_key="cell_type",
                                             reference_batches=["3pv2", "5p"], query_batches=["3pv1"])
    shuffled = [annotate("control_shuffled", reference, query, label_key="cell_type", batch_key="donor", seed=seed,
                         timing_repeats=1).scores["accuracy"] for seed in range(10)]
    logreg = annotate("logreg", reference, query, label_key="cell_type", batch_key="donor", timing_repeats=1)
    # chance: a reference label drawn at random matches a query cell's label with sum_c p_ref(c) p_query(c)
    freq = reference.obs["cell_type"].value_counts(normalize=True)
    chance = float((freq * query.obs["cell_type"].value_counts(normalize=True).reindex(freq.index).fillna(0)).sum())
    assert abs(np.mean(shuffled) - chance) < 0.05  # 117 query cells: one seed's sd is ~0.05
    assert len(set(shuffled)) > 1  # seeded: another seed, other draws
    assert logreg.scores["accuracy"] > max(shuffled) + 0.4


@pytest.mark.slow
@pytest.mark.jax
def test_positive_control_beats_scvi_beats_every_negative_control(pbmc_small):
    from scdiva.bench.tasks.integration.metrics import score_embedding

    adata = pbmc_small.copy()
    totals = {}
    for method, params in (("control_celltype", {}), ("scvi", {"max_epochs": 100}), ("control_random", {}),
                           ("control_batch", {})):
        adata.obsm[method] = _embed(pbmc_small, method, params=params)
        scores = score_embedding(adata, method, batch_key="donor", label_key="cell_type")
        totals[method] = float(scores.set_index("metric").loc["total_score", "value"])
    print(totals)
    assert totals["control_celltype"] > totals["scvi"] > max(totals["control_random"], totals["control_batch"])


def test_tables_list_controls_after_every_method_and_never_rank_one_best(tmp_path):
    import pandas as pd

    from scdiva.bench.report.tables import wide_table

    totals = {"control_celltype": 0.95, "scvi": 0.70, "harmony": 0.65, "flaky": 0.99, "control_random": 0.30}
    long = pd.DataFrame([{"dataset": "d", "method": m, "metric": "total_score", "value": v} for m, v in totals.items()])
    assert list(wide_table(long, "d")) == ["total_score"]
    assert list(wide_table(long, "d").index) == ["flaky", "scvi", "harmony", "control_celltype", "control_random"]
    # flaky missed a seed: after the ranked methods, before the controls
    assert list(wide_table(long, "d", ranked=["scvi", "harmony", "control_celltype", "control_random"]).index) == [
        "scvi", "harmony", "flaky", "control_celltype", "control_random"]


def test_scores_scaled_between_the_controls_and_methods_at_a_negative_control_flagged():
    import pandas as pd

    from scdiva.bench.report.integration import scaled_by_controls

    wide = pd.DataFrame({"total_score": [0.9, 0.7, 0.35, 0.4, 0.3], "bio_score": [1.0, 0.6, 0.2, 0.1, 0.4]},
                        index=["control_celltype", "scvi", "weak", "control_batch", "control_random"])
    scaled, below = scaled_by_controls(wide, ["total_score", "bio_score"])
    # total: negative = best negative control 0.4, positive 0.9 -> scvi (0.7 - 0.4) / 0.5 = 0.6
    assert scaled.loc["scvi", "total_score"] == pytest.approx(0.6)
    assert scaled.loc["weak", "total_score"] == pytest.approx(-0.1)
    # bio: negative 0.4 (control_random's), positive 1.0 -> scvi 0.2 / 0.6
    assert scaled.loc["scvi", "bio_score"] == pytest.approx(1 / 3)
    assert list(scaled.index) == ["scvi", "weak"] and below == ["weak"]
    # no positive control: nothing to scale by, the flag still stands
    assert scaled_by_controls(wide.drop(index="control_celltype"), ["total_score"]) == (None, ["weak"])


def test_integration_section_shows_the_scaled_scores_and_the_flag(tmp_path, report_files):
    import pandas as pd

    from scdiva.bench.report.integration import DatasetInputs, integration_sections
    from scdiva.bench.report.tables import summarise_seeds

    totals = {"scvi": 0.7, "weak": 0.35, "control_celltype": 0.9, "control_batch": 0.4, "control_random": 0.3}
    preprocessed, paths = report_files(totals)
    by_seed = pd.DataFrame([{"dataset": "d", "method": m, "seed": 0, "metric": "total_score", "kind": "aggregate",
                             "value": v} for m, v in totals.items()])
    sections = integration_sections(summarise_seeds(by_seed), {"d": DatasetInputs("batch", "label", preprocessed, paths)},
                                    tmp_path / "report", bench_dir=tmp_path / "none", by_seed=by_seed, reference="scvi")
    text = next(s for s in sections if s.title == "Integration: d").markdown
    assert "Best total score: **scvi** (0.700)" in text
    assert "**Against `scvi`, seed by seed**" in text and "| weak     | 1       | -0.350" in text
    assert "**Scaled between the controls**" in text and "**At or below a negative control** (total score): `weak`." in text
    scaled = pd.read_csv(tmp_path / "report/tables/d_integration_scaled.csv", index_col=0)
    assert scaled.iloc[:, 0].round(3).to_dict() == {"scvi": 0.6, "weak": -0.1}
