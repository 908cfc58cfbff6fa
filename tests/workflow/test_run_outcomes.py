"""Run outcomes (scdiva.bench.outcomes): one method's failure, hang or bad embedding never costs another
method's scores, and every run's outcome is on record in results/tables/runs.csv.

The workflow test is a real Snakemake run on 300 PBMCs with three config-defined integration methods: one
that raises, one that works and a command that hangs past its 1-minute runtime. The entry points live in
this module (on the jobs' PYTHONPATH).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

HERE = Path(__file__).resolve().parent
SHARED_JAX_CACHE = Path(os.environ.get("JAX_COMPILATION_CACHE_DIR", HERE.parents[1] / ".cache" / "jax"))


# --- entry points of the config-defined methods (imported by the integrate jobs) -------------------------


def first_pcs(adata, *, batch_key, label_key, seed, params, threads, **_):
    """A working method: the first principal components."""
    adata.obsm["X_emb"] = np.asarray(adata.obsm["X_pca"][:, :8], dtype=np.float32)


def raises(adata, *, batch_key, label_key, seed, params, threads, **_):
    """A broken method: it raises deep inside its own code."""
    raise ValueError("singular matrix in my_solver (2 of 300 cells have no counts)\nsecond line of detail")


# --- the supervisor on its own -------------------------------------------------------------------------


def _supervise(work, **kw):
    from scdiva.bench.outcomes import supervise

    return supervise(work, dataset="d", task="integration", method=work.__name__, seed=0, **kw)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie waiting to be reaped has stopped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def test_supervise_classifies_each_way_a_method_can_end(monkeypatch, tmp_path):
    import scdiva.bench.outcomes as outcomes

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
    from scdiva.bench.outcomes import timeout_seconds

    assert timeout_seconds(1) == 54.0 and timeout_seconds(60) == 3480.0 and timeout_seconds(None) is None


# --- scoring: one broken embedding leaves the others scored -------------------------------------------------


@pytest.mark.jax
def test_one_broken_embedding_leaves_the_others_scored(pbmc_small, tmp_path):
    import anndata as ad

    from scdiva.bench.metrics import score_embedding_files
    from scdiva.bench.outcomes import RunOutcome, write_stub_h5ad

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


# --- the workflow: a failing, a working and a hanging method in one run --------------------------------------


def _config(tmp_path: Path) -> Path:
    repo = HERE.parents[1]
    config = {
        "seeds": [0],
        "gpu": False,
        "datasets": {"pbmc_3chem": {"source": str(repo / "data" / "pbmc_3chem_symphony.h5ad"),
                                    "batch_key": "donor", "label_key": "cell_type", "subsample": 300}},
        "preprocess": {"n_top_genes": 500, "n_pcs": 20},
        "integration": {"methods": ["broken", "first_pcs", "hangs"]},
        "methods": {
            "broken": {"entry_point": "test_run_outcomes:raises"},
            "first_pcs": {"entry_point": "test_run_outcomes:first_pcs"},
            # a command that never ends: its runtime (1 min) stops it
            "hangs": {"command": "sh -c 'sleep 600' {input} {output}"},
        },
        "resources": {"hangs": {"runtime": 1}, "metrics": {"threads": 1}},
        "annotation": {"methods": []},
        "multitask": {"datasets": ["no_such_dataset"]},  # no multi-task benchmark (absent: the schema fills none)
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _snakemake(workflow_tools, workdir: Path, config: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(workflow_tools.repo / "Snakefile"), "--cores", "1",
           "--directory", str(workdir), "--configfile", str(config), "--replace-workflow-config", *extra]
    env = {**workflow_tools.env(), "PYTHONPATH": str(HERE)}  # the entry points: this module
    return subprocess.run(cmd, cwd=workflow_tools.repo, capture_output=True, text=True, env=env)


@pytest.mark.slow
def test_failed_and_hung_methods_are_recorded_and_the_rest_is_scored(workflow_tools, tmp_path):
    workdir = tmp_path / "run"
    config = _config(tmp_path)
    if SHARED_JAX_CACHE.is_dir():  # the metrics job's JAX compilations, shared with the other tests
        (workdir / "resources" / "cache").mkdir(parents=True)
        (workdir / "resources" / "cache" / "jax").symlink_to(SHARED_JAX_CACHE)
    proc = _snakemake(workflow_tools, workdir, config)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0, "a run with failed methods must exit non-zero"
    runs = pd.read_csv(workdir / "results/tables/runs.csv", keep_default_na=False).set_index("method")
    print(runs.to_csv())
    assert list(runs.reset_index().columns) == ["method", "dataset", "task", "seed", "status", "reason", "wall_s",
                                                "peak_rss_mb", "n_cells", "cells_per_s"]
    assert runs.loc["first_pcs", "status"] == "ok" and runs.loc["first_pcs", "n_cells"] == 300
    assert float(runs.loc["first_pcs", "cells_per_s"]) > 0 and float(runs.loc["first_pcs", "peak_rss_mb"]) > 0
    assert (runs.loc["broken", "status"], runs.loc["broken", "reason"]) == (
        "failed", "ValueError: singular matrix in my_solver (2 of 300 cells have no counts)")
    assert (runs.loc["hangs", "status"], runs.loc["hangs", "reason"]) == (
        "timeout", "exceeded its runtime of 1 min (resources.hangs.runtime); raise it to let hangs finish")
    assert 50 < float(runs.loc["hangs", "wall_s"]) < 120
    # the traceback stays in the method's log; the command's process did not outlive its timeout
    broken_log = (workdir / "results/logs/integrate/pbmc_3chem.broken.seed0.log").read_text()
    assert "Traceback" in broken_log and "second line of detail" in broken_log
    assert not subprocess.run(["pgrep", "-x", "-f", "sleep 600"], capture_output=True, text=True).stdout
    # the working method is scored; nothing was filled in for the others
    scores = pd.read_csv(workdir / "results/pbmc_3chem/integration/metrics.csv")
    assert set(scores["method"]) == {"first_pcs"} and scores["value"].notna().all()
    # the run says which runs failed, with their logs, and removed their outputs (not the working one's)
    assert "2 of 3 runs did not complete" in log and "results/logs/integrate/pbmc_3chem.hangs.seed0.log" in log
    integration = workdir / "results/pbmc_3chem/integration"
    assert not (integration / "broken/seed0.h5ad").exists() and not (integration / "hangs/seed0.run.json").exists()
    assert (integration / "first_pcs/seed0.h5ad").exists()
    # the next `snakemake` retries exactly the failed runs (and what depends on them); mtime only, so that
    # an edit of the workflow's code during the test does not count
    planned = _snakemake(workflow_tools, workdir, config, "-n", "--rerun-triggers", "mtime").stdout
    retried = {m for m in ("broken", "first_pcs", "hangs")
               if f"output: results/pbmc_3chem/integration/{m}/seed0.h5ad" in planned}  # its integrate job
    assert retried == {"broken", "hangs"} and "rule preprocess:" not in planned, planned[-3000:]
