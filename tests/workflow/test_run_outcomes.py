"""Run outcomes (scdiva.bench.core.outcomes): one method's failure, hang or bad embedding never costs another
method's scores, and every run's outcome is on record in results/tables/runs.csv.

The workflow test reads the suite's run with failing methods (``failing_methods_run``,
tests/workflow/conftest.py): on 300 PBMCs over two seeds, config-defined integration methods that raise,
work, or hang past their 1-minute runtime.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# --- the supervisor on its own -------------------------------------------------------------------------


def _supervise(work, **kw):
    from scdiva.bench.core.outcomes import supervise

    return supervise(work, dataset="d", task="integration", method=work.__name__, seed=0, **kw)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie waiting to be reaped has stopped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def test_supervise_classifies_each_way_a_method_can_end(monkeypatch, tmp_path):
    import scdiva.bench.core.outcomes as outcomes

    def ok(report):
        report(n_cells=1000, method_s=2.0)

    def broken(report):
        raise ValueError("bad input\nmore")

    def memory(report):
        raise MemoryError()

    def killed(report):
        os.kill(os.getpid(), signal.SIGKILL)  # what the kernel's or the scheduler's memory limit does

    def not_mine(report):
        raise outcomes.NotApplicable("method not_mine needs protein counts; this dataset has none")

    result = _supervise(ok, runtime_min=5)
    assert (result.status, result.reason, result.n_cells, result.cells_per_s) == ("ok", "", 1000, 500.0)
    assert result.wall_s > 0 and result.peak_rss_mb > 0
    assert (_supervise(broken, runtime_min=5).status, _supervise(broken, runtime_min=5).reason) == (
        "failed", "ValueError: bad input")
    assert _supervise(memory, runtime_min=5).status == "out_of_memory"
    result = _supervise(killed, runtime_min=5)
    assert (result.status, result.reason) == (
        "out_of_memory", "killed by signal 9, most likely the memory limit: raise resources.killed.mem_mb")
    assert _supervise(not_mine, runtime_min=5).status == "not_applicable"

    pid_file = tmp_path / "sleep.pid"

    def hangs(report):
        command = subprocess.Popen(["sleep", "120"])  # a command's process: stopped with the method
        pid_file.write_text(str(command.pid))
        command.wait()

    monkeypatch.setattr(outcomes, "timeout_seconds", lambda runtime_min: 1.0)
    start = time.perf_counter()
    result = _supervise(hangs, runtime_min=3, grace_s=2)
    assert time.perf_counter() - start < 10
    assert (result.status, result.reason) == (
        "timeout", "exceeded its runtime of 3 min (resources.hangs.runtime); raise it to let hangs finish")
    sleep_pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5  # SIGKILL is delivered at once; reaping the orphan may take a moment
    while _alive(sleep_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(sleep_pid), f"the method's subprocess {sleep_pid} outlived its timeout"


def test_timeout_leaves_a_margin_below_the_runtime():
    from scdiva.bench.core.outcomes import timeout_seconds

    assert timeout_seconds(1) == 54.0 and timeout_seconds(60) == 3480.0 and timeout_seconds(None) is None


# --- scoring: one broken embedding leaves the others scored -------------------------------------------------


@pytest.mark.jax
def test_one_broken_embedding_leaves_the_others_scored(pbmc_small, tmp_path):
    import anndata as ad

    from scdiva.bench.core.outcomes import RunOutcome, write_stub_h5ad
    from scdiva.bench.tasks.integration.metrics import score_embedding_files

    pre = tmp_path / "preprocessed.h5ad"
    pbmc_small.write_h5ad(pre)
    good = tmp_path / "good.h5ad"
    emb = ad.AnnData(obs=pd.DataFrame(index=pbmc_small.obs_names))
    emb.obsm["X_emb"] = np.asarray(pbmc_small.obsm["X_pca"][:, :10], dtype=np.float32)
    emb.write_h5ad(good)
    truncated = tmp_path / "truncated.h5ad"
    truncated.write_bytes(good.read_bytes()[:2000])
    stub = tmp_path / "stub.h5ad"
    write_stub_h5ad(stub, RunOutcome("d", "integration", "crashed", 0, "failed", "ValueError: boom"))
    runs = [("truncated", 0, truncated), ("good", 0, good), ("crashed", 0, stub)]
    status_path = tmp_path / "metrics_status.csv"
    result = score_embedding_files(runs, pre, tmp_path / "metrics.csv", dataset="d", batch_key="donor",
                                   label_key="cell_type", status_path=status_path)
    assert set(result["method"]) == {"good"} and result["value"].notna().all()
    assert len(pd.read_csv(tmp_path / "metrics.csv")) == len(result)
    status = pd.read_csv(status_path).set_index("method")
    assert status.loc["good", "status"] == "ok"
    assert status.loc["truncated", "status"] == "failed" and str(truncated) in status.loc["truncated", "reason"]
    assert "\n" not in status.loc["truncated", "reason"]
    assert (status.loc["crashed", "status"], status.loc["crashed", "reason"]) == (
        "skipped", "integration run failed: ValueError: boom")

# --- the workflow: failing, working and hanging methods in one run --------------------------------------------


@pytest.mark.slow
def test_failed_and_hung_methods_are_recorded_and_the_rest_is_scored(failing_methods_run, workflow_tools):
    workdir, log = failing_methods_run.workdir, failing_methods_run.log
    assert failing_methods_run.returncode != 0, "a run with failed methods must exit non-zero"
    runs = pd.read_csv(workdir / "results/tables/runs.csv", keep_default_na=False)
    print(runs.to_csv(index=False))
    assert list(runs.columns) == ["dataset", "task", "method", "seed", "status", "reason", "wall_s",
                                  "peak_rss_mb", "n_cells", "cells_per_s"]
    first = runs[(runs["task"] == "integration") & (runs["seed"] == 0)].set_index("method")
    assert first.loc["first_pcs", "status"] == "ok" and first.loc["first_pcs", "n_cells"] == 300
    assert float(first.loc["first_pcs", "cells_per_s"]) > 0 and float(first.loc["first_pcs", "peak_rss_mb"]) > 0
    assert (first.loc["broken", "status"], first.loc["broken", "reason"]) == (
        "failed", "ValueError: singular matrix in my_solver (2 of 300 cells have no counts)")
    assert (first.loc["hangs", "status"], first.loc["hangs", "reason"]) == (
        "timeout", "exceeded its runtime of 1 min (resources.hangs.runtime); raise it to let hangs finish")
    assert 50 < float(first.loc["hangs", "wall_s"]) < 120
    # the traceback stays in the method's log; the command's process did not outlive its timeout
    broken_log = (workdir / "results/logs/integrate/pbmc_3chem.broken.seed0.log").read_text()
    assert "Traceback" in broken_log and "second line of detail" in broken_log
    assert not subprocess.run(["pgrep", "-x", "-f", "sleep 600"], capture_output=True, text=True).stdout
    # the working methods are scored; nothing was filled in for the others
    scores = pd.read_csv(workdir / "results/pbmc_3chem/integration/metrics.csv")
    assert set(scores["method"]) == {"unintegrated", "first_pcs", "flaky"} and scores["value"].notna().all()
    assert set(scores.loc[scores["method"] == "flaky", "seed"]) == {0}
    # the run says which runs failed (integration: broken x2, hangs x2, flaky x1; annotation: no_labels x2),
    # with their logs, and removed their outputs (not the working ones')
    assert "7 of 14 runs did not complete" in log and "results/logs/integrate/pbmc_3chem.hangs.seed0.log" in log
    integration = workdir / "results/pbmc_3chem/integration"
    assert not (integration / "broken/seed0.h5ad").exists() and not (integration / "hangs/seed0.run.json").exists()
    assert (integration / "first_pcs/seed0.h5ad").exists()
    # the next `snakemake` retries exactly the failed runs (and what depends on them); mtime only, so that
    # an edit of the workflow's code during the test does not count
    planned = failing_methods_run.snakemake(workflow_tools, "-n", "--rerun-triggers", "mtime").stdout
    retried = {m for m in ("unintegrated", "broken", "first_pcs", "hangs", "flaky")
               if f"output: results/pbmc_3chem/integration/{m}/seed0.h5ad" in planned}  # its seed-0 integrate job
    assert retried == {"broken", "hangs"} and "rule preprocess:" not in planned, planned[-3000:]
