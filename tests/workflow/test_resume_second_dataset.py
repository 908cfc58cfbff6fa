"""A second dataset added by a config file only, in a run that is interrupted (SIGTERM) and resumed.

Shares the smoke run: its directory is copied (mtimes kept), the extra config adds the real Baron
pancreas data (400 cells, batch `donor`, label `cell_type`). The run is stopped as soon as the first
pancreas embedding is written, then rerun: finished outputs must be kept (same mtime) and the rerun
must schedule only what was missing.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

SECOND = "pancreas_baron"
METHODS = ["unintegrated", "harmony"]  # keeps the test short; the config file chooses them
SCORING_OUTPUTS = {"metrics.csv", "metrics_status.csv"}  # one scoring job per dataset writes both


def _second_dataset_config(path, repo):
    path.write_text(
        f"""datasets:
  {SECOND}:
    source: {repo / "data" / "pancreas_baron_human.h5ad"}
    sha256: 5bacc0619105e8088b50718008a1129321ddad879a88818e2a822568d15eba1a
    batch_key: donor
    label_key: cell_type
    subsample: 400
integration:
  methods: {METHODS}
multitask:
  datasets: [pbmc_3chem]   # the 2,000 pancreas genes lack the S-phase genes its cell-cycle head needs
"""
    )
    return path


def _job_counts(log: str) -> dict[str, int]:
    """Rule -> job count from Snakemake's 'Job stats' table."""
    table = log.split("Job stats:", 1)[1].split("\n\n", 1)[0] if "Job stats:" in log else ""
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, flags=re.M) if m[1] != "total"}


@pytest.fixture(scope="session")
def interrupted_then_resumed(smoke_run, workflow_tools, tmp_path_factory):
    workdir = workflow_tools.copy(smoke_run, tmp_path_factory.mktemp("second") / "work")
    config = _second_dataset_config(workdir / "second_dataset.yaml", workflow_tools.repo)
    first = workdir / f"results/{SECOND}/integration/unintegrated/seed0.h5ad"
    proc = subprocess.Popen([*workflow_tools.command(workdir, config)], cwd=workflow_tools.repo, env=workflow_tools.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert first.exists(), "the first pancreas embedding was never written"
    proc.send_signal(signal.SIGTERM)
    first_log, _ = proc.communicate(timeout=120)
    # Per-job outputs that exist after the interruption. A dataset's scoring job (metrics.csv and its
    # metrics_status.csv) is left out: it scores every method of the dataset, and the extra config
    # changes PBMC's method set, so that job is a new one (checked in test_second_dataset_rows_in_tables),
    # not a finished one.
    before = {p: p.stat().st_mtime_ns for p in (workdir / "results").rglob("*")
              if p.is_file() and "integration" in p.parts and p.name not in SCORING_OUTPUTS}
    rerun = workflow_tools.run(workdir, config, extra=("--rerun-incomplete",))
    return workdir, proc.returncode, first_log, before, rerun


def test_interrupted_run_stopped_before_finishing(interrupted_then_resumed):
    workdir, returncode, first_log, _, _ = interrupted_then_resumed
    assert returncode != 0, first_log[-2000:]
    assert (workdir / f"results/{SECOND}/integration/unintegrated/seed0.h5ad").exists()


def test_rerun_keeps_finished_outputs_and_runs_only_the_rest(interrupted_then_resumed):
    workdir, _, _, before, rerun = interrupted_then_resumed
    unchanged = {p for p, mtime in before.items() if p.exists() and p.stat().st_mtime_ns == mtime}
    assert unchanged == set(before)  # nothing finished was recomputed
    jobs = _job_counts(rerun.log)
    done_embeddings = sum(1 for p in before if p.suffix == ".h5ad" and SECOND in p.parts)
    assert jobs.get("integrate", 0) == len(METHODS) - done_embeddings, jobs
    assert "download" not in jobs and "preprocess" not in jobs, jobs
    for p in before:  # the PBMC outputs of the smoke run were not touched either
        assert not re.search(r"pbmc_3chem\.\w+\.seed0", str(p)) or p in unchanged


def test_second_dataset_rows_in_tables(interrupted_then_resumed):
    workdir, _, _, _, _ = interrupted_then_resumed
    long = pd.read_csv(workdir / "results/tables/integration_scores.csv")
    assert set(long["dataset"]) == {"pbmc_3chem", SECOND}
    assert set(long["method"]) == set(METHODS)  # PBMC's table was redone for the new method set
    second = long[long["dataset"] == SECOND]
    assert set(second["method"]) == set(METHODS)
    assert second["value"].between(0, 1).all()
    wide = pd.read_csv(workdir / f"results/tables/{SECOND}_integration_wide.csv", index_col=0)
    assert wide.loc["harmony", "ilisi"] > wide.loc["unintegrated", "ilisi"]
    assert (workdir / f"results/report/figures/{SECOND}_umap.png").exists()
    assert os.path.getsize(workdir / "results/report/index.html") > 0
