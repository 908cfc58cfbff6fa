"""A new user's dataset with only the required keys, added with one --configfile, through the default target.

The dataset (built from the embedded PBMCs) has no coarse labels, no cell-cycle genes (the Tirosh S
and G2M genes are renamed) and no annotation split. Every default rule must accept it: the
multi-task job skips the tasks it has no data for, annotation skips the dataset, and the report
says what was skipped and why.

ScDiVa runs too (zero-shot integration, the trajectory figure, annotation on the PBMCs): the
default checkpoint recipe pretrains on every configured dataset, so its vocabulary covers the new
one. Baselines are cut to two to keep the run short. The run starts from a copy of the suite's smoke
run (mtimes kept), as a user adds a dataset to a finished run: only the jobs the new config changes run.
"""

from __future__ import annotations

import json

import anndata
import pandas as pd
import pytest
import yaml

from scdiva.bench.tasks.multitask.run import tirosh_cell_cycle_genes

pytestmark = pytest.mark.slow

NEW = "pbmc_plain"


def plain_dataset(path, source):
    adata = anndata.read_h5ad(source)
    s_genes, g2m_genes = tirosh_cell_cycle_genes()
    listed = set(s_genes) | set(g2m_genes)
    adata.var_names = [f"{g}-renamed" if g in listed else g for g in adata.var_names]
    adata.obs = adata.obs[["donor", "cell_type"]].rename(columns={"donor": "condition", "cell_type": "celltype"})
    adata.obs_names = [f"plain_{n}" for n in adata.obs_names]
    adata.write_h5ad(path)
    return path


@pytest.fixture(scope="module")
def new_user_run(smoke_run, tmp_path_factory, workflow_tools):
    root = tmp_path_factory.mktemp("new_user")
    source = plain_dataset(root / "plain.h5ad", workflow_tools.repo / "data" / "pbmc_3chem_symphony.h5ad")
    overlay = root / "my_dataset.yaml"
    overlay.write_text(yaml.safe_dump({
        "datasets": {NEW: {"source": str(source), "batch_key": "condition", "label_key": "celltype"}},
        "integration": {"methods": ["unintegrated", "harmony", "scdiva_zeroshot"]},
        "annotation": {"methods": ["logreg", "scdiva"]},
        "multitask": {"max_steps": 10},
    }))
    return workflow_tools.run(workflow_tools.copy(smoke_run, root / "work"), overlay)


def test_default_target_completes(new_user_run):
    results = new_user_run.workdir / "results"
    for path in ("report/index.html", "tables/integration_scores.csv", "tables/multitask_scores.csv",
                 "tables/annotation_scores.csv"):
        assert (results / path).is_file(), path
    scores = pd.read_csv(results / "tables/integration_scores.csv")
    assert set(scores["dataset"]) == {"pbmc_3chem", NEW}
    assert set(scores.loc[scores["dataset"] == NEW, "method"]) == {"unintegrated", "harmony", "scdiva_zeroshot"}
    assert (results / NEW / "trajectory.png").is_file()


def test_multitask_skips_tasks_without_data(new_user_run):
    results = new_user_run.workdir / "results"
    info = json.loads((results / NEW / "multitask" / "seed0.json").read_text())
    assert set(info["skipped_tasks"]) == {"coarse", "cell_cycle"}
    assert info["skipped_tasks"]["cell_cycle"].startswith("0 of 43 S genes and 0 of 54 G2M genes")
    assert set(info["skipped_head_counts"]) == {"5"}
    table = pd.read_csv(results / "tables" / "multitask_scores.csv")
    assert set(table.loc[table["dataset"] == NEW, "method"]) == {"scdiva_tasks1", "scdiva_tasks3"}
    assert set(table.loc[table["dataset"] == "pbmc_3chem", "method"]) == {"scdiva_tasks1", "scdiva_tasks3",
                                                                          "scdiva_tasks5"}


def test_annotation_skips_the_dataset_without_a_split(new_user_run):
    table = pd.read_csv(new_user_run.workdir / "results" / "tables" / "annotation_scores.csv")
    assert set(table["dataset"]) == {"pbmc_3chem"}
    # made for this config, not left over from the smoke run it started from (which also ran knn_pca)
    assert set(table["method"]) == {"logreg", "scdiva"}


def test_report_says_what_was_skipped_and_why(new_user_run):
    html = (new_user_run.workdir / "results" / "report" / "index.html").read_text()
    assert f"<code>{NEW}</code>: no annotation split: add <code>datasets.{NEW}.annotation</code>" in html
    assert "skipped task <code>cell_cycle</code>: 0 of 43 S genes and 0 of 54 G2M genes" in html
    assert "skipped task <code>coarse</code>: the dataset has no coarse labels" in html
    assert "5 heads not trained: tasks coarse, cell_cycle unavailable" in html
