"""Known answers for the rest of the scoring path: annotation metrics (orientation, macro-F1 over the
true classes), mean/std over seeds, the benchmark tables, and cell alignment of embedding files."""

from __future__ import annotations

import re

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from scdiva.bench.report.seed_tables import summarise_seeds as summarise_any
from scdiva.bench.report.tables import (
    BY_SEED_COLUMNS,
    LONG_COLUMNS,
    read_metric_files,
    sort_metrics,
    summarise_seeds,
    wide_table,
)
from scdiva.bench.tasks.annotation.metrics import annotation_metrics, confusion_table

# --- annotation ---------------------------------------------------------------------------------


def test_annotation_scores_by_hand_with_a_class_the_truth_lacks():
    # Truth has A and B; the prediction also names C (never true).
    true = ["A", "A", "A", "A", "B", "B"]
    predicted = ["A", "A", "C", "B", "B", "B"]
    scores = annotation_metrics(true, predicted)
    # A: tp 2, fn 2, fp 0 -> F1 = 4 / 6; B: tp 2, fn 0, fp 1 -> F1 = 4 / 5. Macro over {A, B} only.
    assert scores["accuracy"] == pytest.approx(4 / 6)
    assert scores["f1:A"] == pytest.approx(2 / 3) and scores["f1:B"] == pytest.approx(0.8)
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert "f1:C" not in scores  # the predicted-only class is not averaged in (that would give / 3)
    assert set(scores) == {"accuracy", "macro_f1", "f1:A", "f1:B"}
    # Truth and prediction swapped: the classes are now A, B, C, so the answer differs.
    swapped = annotation_metrics(predicted, true)
    assert swapped["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 0.0) / 3)
    assert "f1:C" in swapped


def test_macro_f1_is_sklearns_macro_over_true_classes_not_weighted():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    true = rng.choice(["T", "B", "NK", "rare"], size=300, p=[0.6, 0.25, 0.13, 0.02])
    predicted = np.where(rng.random(300) < 0.7, true, rng.choice(["T", "B", "NK", "Mono"], size=300))
    scores = annotation_metrics(true, predicted)
    classes = sorted(set(true))
    assert scores["macro_f1"] == pytest.approx(f1_score(true, predicted, labels=classes, average="macro"))
    assert scores["macro_f1"] != pytest.approx(f1_score(true, predicted, labels=classes, average="weighted"))
    assert scores["accuracy"] == pytest.approx(np.mean(true == predicted))


def test_a_class_never_predicted_counts_zero():
    scores = annotation_metrics(["A", "A", "B", "RARE"], ["A", "A", "B", "A"])
    assert scores["f1:RARE"] == 0.0
    assert scores["f1:A"] == pytest.approx(0.8)
    assert scores["macro_f1"] == pytest.approx((0.8 + 1.0 + 0.0) / 3)
    assert annotation_metrics(["A", "B"], ["A", "B"]) == {"accuracy": 1.0, "macro_f1": 1.0, "f1:A": 1.0, "f1:B": 1.0}


def test_annotation_bad_input():
    with pytest.raises(ValueError, match="equally long"):
        annotation_metrics(["A", "B"], ["A"])
    with pytest.raises(ValueError, match="non-empty"):
        annotation_metrics([], [])


def test_confusion_table_rows_are_truth_columns_predictions():
    table = confusion_table(["A", "A", "B"], ["A", "C", "A"])
    assert list(table.index) == ["A", "B", "C"] and list(table.columns) == ["A", "B", "C"]
    assert table.loc["A", "A"] == 1 and table.loc["A", "C"] == 1 and table.loc["B", "A"] == 1
    assert table.to_numpy().sum() == 3 and table.loc["C"].sum() == 0


def test_labels_of_any_type_are_compared_as_text():
    # integer-coded cell types (cluster ids) on one side, their text on the other: the same classes
    true, predicted = [0, 0, 1, 2], ["0", "1", "1", "2"]
    expected = {"accuracy": 0.75, "macro_f1": pytest.approx((2 / 3 + 2 / 3 + 1.0) / 3),
                "f1:0": pytest.approx(2 / 3), "f1:1": pytest.approx(2 / 3), "f1:2": 1.0}
    assert annotation_metrics(true, predicted) == expected
    assert annotation_metrics(predicted, true) == expected  # the same classes both ways: F1 is symmetric
    for table in (confusion_table(true, predicted), confusion_table(predicted, true)):
        assert list(table.index) == list(table.columns) == ["0", "1", "2"]
        assert int(np.trace(table.to_numpy())) == 3 and table.to_numpy().sum() == 4


# --- mean and std over seeds --------------------------------------------------------------------


def _by_seed(values_by_seed: dict[int, float], method: str = "m", metric: str = "ilisi") -> pd.DataFrame:
    return pd.DataFrame([{"dataset": "d", "method": method, "seed": s, "metric": metric, "kind": "batch",
                          "value": v} for s, v in values_by_seed.items()])


def test_seed_summary_known_mean_and_sample_std():
    frame = pd.concat([_by_seed({0: 0.2, 1: 0.4, 2: 0.9}), _by_seed({0: 0.5}, method="one")], ignore_index=True)
    for summarise in (summarise_seeds, lambda f: summarise_any(f, ("dataset", "method", "metric", "kind"))):
        out = summarise(frame).set_index("method")
        assert out.loc["m", "value"] == pytest.approx(0.5)
        assert out.loc["m", "std"] == pytest.approx(np.sqrt(((0.3) ** 2 + 0.1 ** 2 + 0.4 ** 2) / 2))  # ddof = 1
        assert out.loc["m", "n_seeds"] == 3
        assert out.loc["one", "value"] == pytest.approx(0.5) and np.isnan(out.loc["one", "std"])
        assert out.loc["one", "n_seeds"] == 1
    assert list(summarise_seeds(frame).columns) == LONG_COLUMNS


def test_seed_summary_keeps_groups_apart_and_names_missing_columns():
    frame = pd.concat([_by_seed({0: 0.1, 1: 0.3}), _by_seed({0: 0.7, 1: 0.9}, metric="kbet")], ignore_index=True)
    out = summarise_any(frame, ("dataset", "method", "metric"))
    assert dict(zip(out["metric"], out["value"], strict=True)) == pytest.approx({"ilisi": 0.2, "kbet": 0.8})
    assert list(out.columns) == ["dataset", "method", "metric", "value", "std", "n_seeds"]
    with pytest.raises(ValueError, match=r"\['n_tasks'\]"):
        summarise_any(frame, ("dataset", "method", "n_tasks", "metric"))
    with pytest.raises(ValueError, match=r"\['value'\]"):
        summarise_any(frame.drop(columns="value"))


def test_read_metric_files_sorts_and_checks_columns(tmp_path):
    rows = [{"dataset": "d", "method": "m", "seed": 0, "metric": name, "kind": "batch", "value": 0.5}
            for name in ("total_score", "zzz_extra", "kbet", "isolated_labels")]
    good = tmp_path / "a.csv"
    pd.DataFrame(rows).assign(extra_column=1).to_csv(good, index=False)
    frame = read_metric_files([good])
    assert list(frame.columns) == BY_SEED_COLUMNS
    assert list(frame["metric"]) == ["isolated_labels", "kbet", "total_score", "zzz_extra"]  # METRIC_ORDER, unknown last
    bad = tmp_path / "b.csv"
    pd.DataFrame(rows).drop(columns="kind").to_csv(bad, index=False)
    with pytest.raises(ValueError, match=r"b\.csv: missing columns \['kind'\]"):
        read_metric_files([good, bad])
    with pytest.raises(ValueError, match="no metric files"):
        read_metric_files([])


def test_sort_metrics_orders_by_dataset_method_then_metric():
    frame = pd.DataFrame({"dataset": ["d2", "d1", "d1", "d1"], "method": ["a", "b", "a", "a"],
                          "metric": ["kbet", "kbet", "total_score", "isolated_labels"]})
    out = sort_metrics(frame)
    assert list(zip(out["dataset"], out["method"], out["metric"], strict=True)) == [
        ("d1", "a", "isolated_labels"), ("d1", "a", "total_score"), ("d1", "b", "kbet"), ("d2", "a", "kbet")]


def test_wide_table_ranks_methods_by_mean_total():
    by_seed = pd.concat([
        _by_seed({0: 0.6, 1: 0.8}, method="good", metric="total_score"),
        _by_seed({0: 0.9, 1: 0.1}, method="noisy", metric="total_score"),
        _by_seed({0: 0.2, 1: 0.4}, method="good", metric="ilisi"),
        _by_seed({0: 0.3, 1: 0.3}, method="noisy", metric="ilisi"),
    ], ignore_index=True)
    long = summarise_seeds(by_seed)
    wide = wide_table(long, "d")
    assert list(wide.index) == ["good", "noisy"]  # 0.7 > 0.5
    assert list(wide.columns) == ["ilisi", "total_score"]
    assert wide.loc["good", "ilisi"] == pytest.approx(0.3)
    with pytest.raises(ValueError, match="'other'"):
        wide_table(long, "other")


# --- embedding files: scored against the right cells -------------------------------------------


@pytest.fixture(scope="module")
def scoring_files(tmp_path_factory):
    """A preprocessed-like AnnData (3 types x 2 batches, batch offset in PCA) and embedding files."""
    rng = np.random.default_rng(0)
    n = 120
    labels = np.repeat(["A", "B", "C"], n // 3)
    batches = np.tile(["x", "y"], n // 2)
    centres = {"A": [0, 0, 0], "B": [12, 0, 0], "C": [0, 12, 0]}
    emb = np.array([centres[lab] for lab in labels], dtype=np.float32) + rng.normal(size=(n, 3)).astype(np.float32)
    pca = emb.copy()
    pca[batches == "y", 2] += 8.0
    cells = [f"cell{i:03d}" for i in range(n)]
    ref = ad.AnnData(obs=pd.DataFrame({"donor": batches, "cell_type": labels}, index=cells),
                     obsm={"X_pca": pca})
    root = tmp_path_factory.mktemp("scoring")
    ref.write_h5ad(root / "preprocessed.h5ad")
    order = rng.permutation(n)

    def write(name, rows, names):
        path = root / f"{name}.h5ad"
        ad.AnnData(obs=pd.DataFrame(index=list(names)), obsm={"X_emb": rows}).write_h5ad(path)
        return path

    files = {
        "ordered": write("ordered", emb, cells),
        "reordered": write("reordered", emb[order], np.array(cells)[order]),  # same cells, another order
        "misaligned": write("misaligned", emb[order], cells),  # rows shuffled, names not: wrong cells
    }
    return root, files


def _score(root, runs, **kw):
    from scdiva.bench.tasks.integration.metrics import score_embedding_files

    return score_embedding_files(runs, root / "preprocessed.h5ad", root / "metrics.csv", dataset="d",
                                 batch_key="donor", label_key="cell_type", **kw)


@pytest.mark.jax
def test_scoring_realigns_embedding_rows_by_cell_name(scoring_files):
    root, files = scoring_files
    result = _score(root, [(name, 0, path) for name, path in files.items()])
    values = result.pivot(index="metric", columns="method", values="value")
    # kBET's diffusion step depends on cell order a little; every other metric is order-free.
    exact = [m for m in values.index if m not in ("kbet", "batch_score", "total_score", "graph_batch_score",
                                                  "graph_total_score")]
    np.testing.assert_allclose(values.loc[exact, "reordered"], values.loc[exact, "ordered"], rtol=1e-5, atol=1e-6)
    assert values.loc["kbet", "reordered"] == pytest.approx(values.loc["kbet", "ordered"], abs=0.05)
    # Rows moved to the wrong cells: bio conservation collapses (a shuffled-rows control).
    assert values.loc["silhouette_label", "ordered"] > values.loc["silhouette_label", "misaligned"] + 0.2
    assert values.loc["bio_score", "ordered"] > values.loc["bio_score", "misaligned"] + 0.3
    assert list(result.columns) == ["dataset", "method", "seed", "metric", "kind", "value", "n_cells"]
    assert set(result["kind"]) == {"batch", "bio", "aggregate"}
    written = pd.read_csv(root / "metrics.csv")
    assert len(written) == len(result) and not list(root.glob("*.tmp*"))


def test_scoring_refuses_other_cells_duplicates_and_missing_keys(scoring_files, tmp_path):
    from scdiva.bench.tasks.integration.metrics import load_embedding_files

    root, files = scoring_files
    ref = ad.read_h5ad(root / "preprocessed.h5ad")
    emb = ad.read_h5ad(files["ordered"])

    def load(path, preprocessed=root / "preprocessed.h5ad", batch_key="donor", label_key="cell_type"):
        return load_embedding_files([("m", 0, path)], preprocessed, batch_key=batch_key, label_key=label_key)

    fewer = tmp_path / "fewer.h5ad"
    emb[:-1].copy().write_h5ad(fewer)
    with pytest.raises(ValueError, match=f"^{fewer} and {root / 'preprocessed.h5ad'} hold different cells; rerun"):
        load(fewer)
    dup = emb.copy()
    dup.obs_names = [*emb.obs_names[:-7], *emb.obs_names[:6], emb.obs_names[0]]
    dup_path = tmp_path / "dup.h5ad"
    dup.write_h5ad(dup_path)
    names = list(emb.obs_names[:5])
    with pytest.raises(ValueError, match=re.escape(f"{dup_path}: duplicate cell names {names}; rows cannot be matched")):
        load(dup_path)
    no_emb = tmp_path / "no_emb.h5ad"
    ad.AnnData(obs=emb.obs.copy()).write_h5ad(no_emb)
    with pytest.raises(KeyError, match="X_emb"):
        load(no_emb)
    with pytest.raises(KeyError, match="obs has no batch_key column 'batch'"):
        load(files["ordered"], batch_key="batch")
    with pytest.raises(KeyError, match="obs has no label_key column 'type'"):
        load(files["ordered"], label_key="type")
    no_pca = tmp_path / "no_pca.h5ad"
    del ref.obsm["X_pca"]
    ref.write_h5ad(no_pca)
    with pytest.raises(KeyError, match="X_pca"):
        load(files["ordered"], preprocessed=no_pca)


def test_jax_cache_setting(tmp_path, monkeypatch):
    import jax

    from scdiva.bench.tasks.integration.metrics import enable_jax_cache

    monkeypatch.delenv("SCDIVA_JAX_CACHE_DIR", raising=False)
    before = jax.config.jax_compilation_cache_dir
    enable_jax_cache(None)
    assert jax.config.jax_compilation_cache_dir == before
    try:
        enable_jax_cache(tmp_path / "a" / "jax")  # parents made
        enable_jax_cache(tmp_path / "a" / "jax")  # and again: an existing directory is fine
        assert jax.config.jax_compilation_cache_dir == str((tmp_path / "a" / "jax").resolve())
        assert (tmp_path / "a" / "jax").is_dir()
        assert jax.config.jax_persistent_cache_min_compile_time_secs == 0
        assert jax.config.jax_persistent_cache_min_entry_size_bytes == -1
        # $SCDIVA_JAX_CACHE_DIR replaces the given directory (one cache for several working directories)
        monkeypatch.setenv("SCDIVA_JAX_CACHE_DIR", str(tmp_path / "shared"))
        monkeypatch.chdir(tmp_path / "a")
        enable_jax_cache("resources/cache/jax")
        assert jax.config.jax_compilation_cache_dir == str((tmp_path / "shared").resolve())
        assert (tmp_path / "shared").is_dir() and not (tmp_path / "a" / "resources").exists()
    finally:
        jax.config.update("jax_compilation_cache_dir", before)


# --- survivors of the first mutation run (docs/mutation.md) --------------------------------------


def test_annotation_labels_compare_as_text_whatever_their_type():
    # Labels read back from CSV may be numbers while the AnnData's are strings: 1 and "1" are one class.
    scores = annotation_metrics(np.array([1, 2, 2]), ["1", "2", "2"])
    assert scores["accuracy"] == 1.0 and scores["macro_f1"] == 1.0 and set(scores) == {"accuracy", "macro_f1",
                                                                                       "f1:1", "f1:2"}
    table = confusion_table(np.array([1, 2]), ["1", "2"])
    assert table.index.name == "true" and table.columns.name == "predicted"
    assert list(table.index) == ["1", "2"] and np.trace(table.to_numpy()) == 2


def test_read_metric_files_gives_one_row_label_per_row(tmp_path):
    paths = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.csv"
        pd.DataFrame([{"dataset": name, "method": "m", "seed": 0, "metric": "kbet", "kind": "batch",
                       "value": 0.5}]).to_csv(path, index=False)
        paths.append(path)
    frame = read_metric_files(paths)
    assert frame.index.is_unique and len(frame) == 2
    with pytest.raises(ValueError, match="^no metric files given$"):
        read_metric_files([])


def test_seed_summary_keeps_first_seen_order_and_missing_keys():
    frame = pd.DataFrame({"dataset": "d", "method": ["z", "z", "a", "a"], "n_tasks": [5.0, 5.0, np.nan, np.nan],
                          "metric": "f1", "value": [0.2, 0.4, 0.6, 0.8]})
    out = summarise_any(frame, ("dataset", "method", "n_tasks", "metric"))
    assert list(out["method"]) == ["z", "a"]  # as the runs came, not alphabetical
    assert out["value"].tolist() == pytest.approx([0.3, 0.7])  # a group with a missing key is kept
    assert np.isnan(out["n_tasks"].iloc[1])


def test_reference_and_query_batches_must_not_overlap():
    from scdiva.bench.core.validate import DatasetValidationError, check_annotation_batches

    adata = ad.AnnData(obs=pd.DataFrame({"donor": ["p", "q", "r"]}, index=["c1", "c2", "c3"]))
    check_annotation_batches(adata, "donor", ["p"], ["q", "r"], dataset="d")
    with pytest.raises(DatasetValidationError,
                       match=r"dataset 'd': batches \['q'\] are both reference and query in `datasets\.d\.annotation`"):
        check_annotation_batches(adata, "donor", ["p", "q"], ["q"], dataset="d")
    with pytest.raises(DatasetValidationError, match=r"`datasets\.d\.annotation\.reference_batches` names batches \['s'\]"):
        check_annotation_batches(adata, "donor", ["s"], ["q"], dataset="d")
    with pytest.raises(DatasetValidationError, match=r"`datasets\.d\.annotation\.query_batches` names batches \['s'\]"):
        check_annotation_batches(adata, "donor", ["p"], ["s"], dataset="d")


def test_aligned_cells_puts_each_cell_on_its_embedding_row(scoring_files):
    from scdiva.bench.tasks.integration.metrics import aligned_cells, load_embedding_files

    root, files = scoring_files
    runs = [(name, 0, path) for name, path in files.items()]
    ref, embeddings = load_embedding_files(runs, root / "preprocessed.h5ad", batch_key="donor", label_key="cell_type")
    assert aligned_cells(ref, embeddings[("ordered", 0)].obs_names) is ref
    moved = aligned_cells(ref, embeddings[("reordered", 0)].obs_names)
    assert moved.obs_names.equals(embeddings[("reordered", 0)].obs_names)
    # the labels travel with their cells: same (cell -> label) pairs as the reference
    pairs = dict(zip(ref.obs_names, ref.obs["cell_type"], strict=True))
    assert [pairs[c] for c in moved.obs_names] == moved.obs["cell_type"].tolist()
    np.testing.assert_array_equal(np.asarray(moved.obsm["X_pca"]),
                                  np.asarray(ref.obsm["X_pca"])[[ref.obs_names.get_loc(c) for c in moved.obs_names]])
    assert list(embeddings) == [("ordered", 0), ("reordered", 0), ("misaligned", 0)]
