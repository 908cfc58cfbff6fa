"""Multi-task on a dataset that has only the required keys: tasks without data are skipped, and said so."""

from scdiva.bench.tasks.multitask.run import (
    HEAD_SETS,
    multitask_long_form,
    plan_head_counts,
    run_multitask,
    tirosh_cell_cycle_genes,
    unavailable_tasks,
)


def without_cell_cycle_genes(adata):
    """A copy whose Tirosh S and G2M genes are renamed, so the cell-cycle phase is undefined."""
    s_genes, g2m_genes = tirosh_cell_cycle_genes()
    listed = set(s_genes) | set(g2m_genes)
    out = adata.copy()
    out.var_names = [f"{g}_renamed" if g in listed else g for g in out.var_names]
    return out


def test_unavailable_tasks_name_the_missing_data(pbmc_preprocessed):
    assert unavailable_tasks(pbmc_preprocessed, "cell_type_broad") == {}
    skipped = unavailable_tasks(without_cell_cycle_genes(pbmc_preprocessed), None)
    assert set(skipped) == {"coarse", "cell_cycle"}
    assert "coarse_label_key" in skipped["coarse"]
    assert skipped["cell_cycle"].startswith("0 of 43 S genes and 0 of 54 G2M genes")


def test_plan_trains_each_distinct_task_set_once():
    planned, dropped = plan_head_counts([1, 3, 5], {"coarse": "x", "cell_cycle": "y"})
    assert planned == [(1, HEAD_SETS[1]), (3, HEAD_SETS[3])]
    assert set(dropped) == {5} and "coarse, cell_cycle unavailable" in dropped[5] and "3-head" in dropped[5]
    planned, dropped = plan_head_counts([1, 3, 5], {"cell_cycle": "y"})
    assert planned[-1] == (5, ("annotation", "integration", "masked_expression", "coarse")) and not dropped


def test_run_without_coarse_labels_or_cell_cycle_genes(pbmc_preprocessed):
    adata = without_cell_cycle_genes(pbmc_preprocessed)
    del adata.obs["cell_type_broad"]
    results, info = run_multitask(adata, label_key="cell_type", batch_key="donor", coarse_label_key=None,
                                  head_counts=(1, 3, 5), max_steps=4, batch_size=32)
    assert [r.n_tasks for r in results] == [1, 3]
    assert set(info["skipped_tasks"]) == {"coarse", "cell_cycle"} and set(info["skipped_head_counts"]) == {"5"}
    assert "cell_cycle" not in info
    assert set(multitask_long_form(results, "d", 0)["method"]) == {"scdiva_tasks1", "scdiva_tasks3"}
