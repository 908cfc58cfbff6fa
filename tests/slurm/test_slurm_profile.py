"""profiles/slurm on a real (local, single-node) SLURM: GPU requests, retry after scancel, memory kills.

These use the tiny workflow in tests/slurm/fixtures/, which can misbehave on purpose; the benchmark
workflow itself goes through SLURM in test_smoke_workflow_slurm.py. The three runs start together
(each in its own directory) because most of their time is the plugin's status-check interval.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from slurm_harness import (
    REQUIRE_SLURM,
    Run,
    SlurmJob,
    cancel_jobs,
    finish_workflow,
    job_state,
    node_gpus,
    parse_submissions,
    sbatch_calls,
    start_workflow,
    write_test_profile,
)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


@dataclass
class FixtureRuns:
    workdirs: dict[str, Path]
    runs: dict[str, Run]
    cancelled: SlurmJob


def _wait_until_running(log: Path, timeout: float) -> SlurmJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = parse_submissions(log.read_text())
        if jobs and job_state(jobs[0].slurm_jobid) == "RUNNING":
            return jobs[0]
        time.sleep(0.5)
    raise AssertionError(f"no job reached RUNNING within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def fixture_runs(slurm_cluster, tmp_path_factory) -> FixtureRuns:
    if node_gpus() == 0:
        message = "the cluster has no GPU; start it with SCDIVA_SLURM_PLACEHOLDER_GPU=1"
        pytest.fail(message) if REQUIRE_SLURM else pytest.skip(message)
    base = tmp_path_factory.mktemp("slurm_fixture")
    profile = write_test_profile(base / "profile", retries=1)
    no_retries = write_test_profile(base / "profile_no_retries", retries=0)
    arguments = {
        # a CPU rule feeding a GPU-capable rule, with GPUs enabled (Snakemake parses only True/False as bools)
        "gpu": (["results/a/embedding.csv", "--config", "gpu=True", "samples=[a]"], profile),
        # one job asking for 200 MB that allocates ~600 MB
        "memory": (["results/too_big.txt"], no_retries),
        # one 10 s job, cancelled while it runs, then retried
        "cancel": (["results/b/values.csv", "--config", "samples=[b]", "sleep_s=10"], profile),
    }
    workdirs = {name: base / name for name in arguments}
    logs = {name: base / f"{name}.snakemake.out" for name in arguments}
    started = time.monotonic()
    processes = {
        name: start_workflow(workdirs[name], args, profile=prof, log=logs[name])
        for name, (args, prof) in arguments.items()
    }
    try:
        cancelled = _wait_until_running(logs["cancel"], timeout=120)
        cancel_jobs([cancelled])
        runs = {
            name: finish_workflow(process, logs[name], timeout=300, started=started)
            for name, process in processes.items()
        }
    finally:
        for name, process in processes.items():
            if process.poll() is None:
                process.kill()
                cancel_jobs(parse_submissions(logs[name].read_text()))
    print(f"fixture workflows on SLURM: {time.monotonic() - started:.1f} s")
    return FixtureRuns(workdirs, runs, cancelled)


def _calls_by_rule(run: Run) -> dict[str, list[str]]:
    """sbatch calls keyed by rule; the plugin sets each job's comment to `rule_<rule>[_wildcards_...]`."""
    calls: dict[str, list[str]] = {}
    for call in sbatch_calls(run.output):
        rule = re.search(r"--comment '?rule_([A-Za-z]+(?:_[a-z]+)*?)(?:_wildcards_\S*)?'? ", call).group(1)
        calls.setdefault(rule, []).append(call.split("--wrap=")[0])
    return calls


def test_gpu_is_requested_only_by_the_gpu_capable_rule(fixture_runs):
    run = fixture_runs.runs["gpu"]
    assert run.returncode == 0, run.output[-4000:]
    calls = _calls_by_rule(run)
    assert set(calls) == {"simulate", "embed"}, calls
    assert all("--gpus=1" in call for call in calls["embed"]), calls["embed"]
    assert not any("--gpus" in call or "--gres" in call for call in calls["simulate"]), calls["simulate"]
    # ...and SLURM really gave the job step a GPU (a placeholder device on a GPU-less machine)
    allocation = (fixture_runs.workdirs["gpu"] / "results/a/embed_allocation.txt").read_text().split()
    [embed_job] = [j for j in run.jobs if j.rule == "embed"]
    assert allocation == [f"job={embed_job.slurm_jobid}", "gpus=0"], allocation


def test_cancelled_job_is_resubmitted_and_the_workflow_finishes(fixture_runs):
    """scancel a RUNNING job: the plugin reports it failed, Snakemake retries (retries: 1), outputs appear."""
    run, victim = fixture_runs.runs["cancel"], fixture_runs.cancelled
    assert run.returncode == 0, run.output[-4000:]
    assert victim.rule == "simulate"
    assert f"SLURM-job '{victim.slurm_jobid}' failed, SLURM status is: 'CANCELLED'" in run.output
    assert [j.rule for j in run.jobs] == ["simulate", "simulate"], run.jobs
    retried = run.jobs[1]
    assert retried.slurm_jobid != victim.slurm_jobid
    assert job_state(retried.slurm_jobid) == "COMPLETED"
    values = (fixture_runs.workdirs["cancel"] / "results/b/values.csv").read_text()
    assert values == "0,0\n1,1\n2,2\n3,3\n4,4\n"


def test_job_exceeding_its_memory_request_is_killed_and_reported(fixture_runs):
    run = fixture_runs.runs["memory"]
    assert run.returncode != 0
    assert not (fixture_runs.workdirs["memory"] / "results/too_big.txt").exists()
    [job] = run.jobs
    assert job_state(job.slurm_jobid) in {"FAILED", "OUT_OF_MEMORY"}
    # SLURM's own words, in the job's log and (show-failed-logs) in Snakemake's error report
    assert "exceeded memory limit" in job.log.read_text()
    failure = run.output.split(f"SLURM-job '{job.slurm_jobid}' failed")
    assert len(failure) == 2, run.output[-4000:]
    assert "exceeded memory limit" in failure[1]
