"""Report tables show plain values (never a Python tuple per row) and say what a run skipped."""

import pandas as pd
import pytest

from scdiva.bench.report import paper


def integration_table() -> pd.DataFrame:
    rows = [(d, m, metric, v) for d in ("pbmc_3chem", "pancreas") for m in ("harmony", "scvi")
            for metric, v in (("silhouette_batch", 0.8), ("kbet", 0.5), ("graph_connectivity", 0.9))]
    return pd.DataFrame(rows, columns=["dataset", "method", "metric", "value"]).assign(std=0.0, n_seeds=1)


def test_integration_section_rows_are_dataset_and_method_columns(tmp_path):
    section = paper.integration_claims_section(integration_table(), str(tmp_path / "bars.png"))
    lines = section.markdown.splitlines()
    assert lines[0].startswith("| dataset ") and "| method " in lines[0] and "batch ASW" in lines[0]
    assert lines[2].startswith("| pbmc_3chem ") and "| harmony " in lines[2]
    assert "('" not in section.markdown


def test_multitask_section_lists_skipped_tasks(tmp_path):
    table = pd.DataFrame({"dataset": "plain", "method": ["scdiva_tasks1", "scdiva_tasks3"], "n_tasks": [1, 3],
                          "metric": "annotation_accuracy", "value": [0.8, 0.7], "std": 0.0})
    info = {"n_train": 80, "n_held_out": 20, "size": "tiny", "max_steps": 5,
            "skipped_tasks": {"cell_cycle": "0 of 43 S genes and 0 of 54 G2M genes"},
            "skipped_head_counts": {"5": "tasks coarse, cell_cycle unavailable"}}
    section = paper.multitask_section(table, {"plain/multitask/seed0.json": info}, str(tmp_path / "mt.png"))
    assert "skipped task `cell_cycle`: 0 of 43 S genes" in section.markdown
    assert "5 heads not trained: tasks coarse, cell_cycle unavailable" in section.markdown
    assert "Cell-cycle phase from" not in section.markdown  # no gene counts for a skipped task
    assert "| plain " in section.markdown and "('" not in section.markdown


def test_skipped_datasets_are_listed():
    assert paper.skipped_lines({}) == ""
    text = paper.skipped_lines({"plain": "no annotation split"})
    assert "**Skipped datasets:**" in text and "- `plain`: no annotation split" in text


def test_tables_folded_in_details_are_rendered_as_tables():
    from scdiva.bench.report import Section, render_html

    html = render_html([Section("s", "intro\n\n<details><summary>All metrics</summary>\n\n| a | b |\n|---|---|\n"
                                     "| 1 | 2 |\n\n</details>")], "t")
    assert "<details>" in html and "<summary>All metrics</summary>" in html
    folded = html[html.index("<details>"):html.index("</details>")]
    assert "<table>" in folded and "<td>1</td>" in folded and "|---|" not in folded


def test_a_mean_over_fewer_seeds_says_so_and_one_seed_draws_no_error_bar(tmp_path, monkeypatch):
    """Tables hold completed runs only: a method whose runs did not all complete shows its n; a single
    seed (no std) gets no error bar rather than a bar of 0."""
    import matplotlib.figure
    import numpy as np

    table = pd.DataFrame({"dataset": "pbmc", "method": ["logreg", "knn_pca"], "metric": "accuracy",
                          "value": [0.9, 0.8], "std": [0.01, np.nan], "n_seeds": [3, 1]})
    wide = paper._wide(table, {"accuracy": "accuracy"})
    assert wide.loc[("pbmc", "logreg"), "accuracy"] == "0.9 ± 0.01"
    assert wide.loc[("pbmc", "knn_pca"), "accuracy"] == "0.8 (n=1)"
    figures = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, *a, **k: figures.append(fig))
    paper.plot_grouped_bars(table, {"accuracy": "accuracy"}, tmp_path / "bars.png", title="t")
    from matplotlib.container import ErrorbarContainer

    errors = next(c for c in figures[0].axes[0].containers if isinstance(c, ErrorbarContainer))
    segments = errors.lines[2][0].get_segments()
    assert np.ptp(segments[0][:, 1]) == pytest.approx(0.02)  # logreg: ± 0.01
    assert np.isnan(segments[1]).all()  # knn_pca: one seed, no bar (was a bar of length 0)
