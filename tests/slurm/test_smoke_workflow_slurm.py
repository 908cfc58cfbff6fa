"""The benchmark workflow (smoke config) through profiles/slurm on a real local SLURM.

Every job must run as a SLURM job, and the integration table must equal that of a local run: the
suite's smoke run (`smoke_run`, same cells and settings, run locally), restricted to its harmony rows.
"""

from __future__ import annotations

import os
import re
import time

import numpy as np
import pandas as pd
import pytest
from slurm_harness import (
    REPO,
    Run,
    finish_workflow,
    job_state,
    sbatch_calls,
    start_workflow,
    write_test_profile,
)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

TABLE = "results/tables/integration_scores.csv"
SMOKE_ARGS = [
    TABLE,
    "--configfile",
    str(REPO / "config/smoke.yaml"),
    str(REPO / "tests/slurm/fixtures/smoke_slurm.yaml"),
]
# Most of it is the metrics job (scIB metrics; its JAX kernels come from the suite's shared cache):
# 9 minutes were measured for a SLURM and a local run side by side with a cold cache, on a 2-core
# machine under a load of 10, so the limit is generous.
TIMEOUT_S = float(os.environ.get("SCDIVA_SLURM_SMOKE_TIMEOUT_S", 900))
REMOTE_RULES = {"preprocess", "integrate", "metrics", "integration_tables"}  # download is a localrule


@pytest.fixture(scope="module")
def slurm_and_local_runs(slurm_cluster, smoke_run, tmp_path_factory):
    """The smoke target through SLURM, and the suite's local smoke run (--cores 2) to compare with."""
    base = tmp_path_factory.mktemp("smoke_slurm")
    profile = write_test_profile(base / "profile")
    started = time.monotonic()
    on_slurm = start_workflow(
        base / "slurm", SMOKE_ARGS, profile=profile, snakefile=REPO / "Snakefile", log=base / "slurm.out"
    )
    runs = {
        "slurm": finish_workflow(on_slurm, base / "slurm.out", timeout=TIMEOUT_S, started=started),
        # run_workflow (tests/conftest.py) raised if the local run had failed
        "local": Run(0, smoke_run.log, smoke_run.seconds),
    }
    print(f"smoke workflow on SLURM: {time.monotonic() - started:.1f} s")
    return {"slurm": base / "slurm", "local": smoke_run.workdir}, runs


def test_every_job_ran_as_a_slurm_job(slurm_and_local_runs):
    workdirs, runs = slurm_and_local_runs
    run = runs["slurm"]
    assert run.returncode == 0, run.output[-5000:]
    assert "has been submitted with SLURM jobid" not in runs["local"].output

    remote_job_blocks = run.rules_run_remotely()
    assert set(remote_job_blocks) == REMOTE_RULES, remote_job_blocks
    # one submission per job (nothing failed, so nothing was retried), each with its own SLURM id
    assert sorted(j.rule for j in run.jobs) == sorted(remote_job_blocks), run.jobs
    assert len({j.slurm_jobid for j in run.jobs}) == len(run.jobs)
    for job in run.jobs:
        assert job.log.name == f"{job.slurm_jobid}.log" and job.log.is_relative_to(workdirs["slurm"])
        assert f"(Rule: {job.rule})" in job.log.read_text(), job.log
        assert job_state(job.slurm_jobid) == "COMPLETED", job
    # config gpu: false, so no job asks for a GPU
    calls = sbatch_calls(run.output)
    assert len(calls) == len(run.jobs)
    assert not any(re.search(r"--gpus|--gres", call.split("--wrap=")[0]) for call in calls)


def test_tables_equal_a_local_run(slurm_and_local_runs):
    workdirs, runs = slurm_and_local_runs
    assert runs["local"].returncode == 0, runs["local"].output[-5000:]
    assert runs["slurm"].returncode == 0, runs["slurm"].output[-5000:]
    key = ["dataset", "method", "metric"]
    on_slurm = pd.read_csv(workdirs["slurm"] / TABLE).sort_values(key, ignore_index=True)
    local = pd.read_csv(workdirs["local"] / TABLE)
    local = local[local["method"] == "harmony"].sort_values(key, ignore_index=True)  # the smoke run's others
    assert set(on_slurm["method"]) == {"harmony"}
    assert len(on_slurm) >= 5, on_slurm  # several scIB metrics
    pd.testing.assert_frame_equal(on_slurm[key], local[key])
    np.testing.assert_allclose(on_slurm["value"], local["value"], rtol=0, atol=1e-9, equal_nan=True)
    assert on_slurm["value"].notna().any()
