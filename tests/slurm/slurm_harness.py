"""Run Snakemake against the local SLURM cluster from tests: derived profiles, bounded runs, log parsing.

Everything here has a timeout: a hung scheduler fails the test instead of hanging CI.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPT = REPO / "tests" / "slurm" / "local_cluster.sh"
SLURM_PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
FIXTURE_SNAKEFILE = REPO / "tests" / "slurm" / "fixtures" / "Snakefile"
VENV_BIN = REPO / ".venv" / "bin"
# The suite's shared JAX compile cache (tests/conftest.py): the SLURM and local smoke runs reuse the
# scib-metrics kernels the other runs compiled.
JAX_CACHE = REPO / ".cache" / "jax"
# CI sets this: a missing cluster is then a failure, never a skip.
REQUIRE_SLURM = os.environ.get("SCDIVA_REQUIRE_SLURM") == "1"

# What the plugin logs for every submission, e.g.
# "Job 3 has been submitted with SLURM jobid 42 (log: /w/results/logs/slurm/rule_x/a/42.log)."
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.")

# Settings that make the tests fast and their evidence inspectable, on top of profiles/slurm.
TEST_PROFILE_OVERRIDES = {
    "jobs": 4,
    "latency-wait": 5,
    "retries": 1,
    "slurm-init-seconds-before-status-checks": 1,  # squeue is cheap locally; MinJobAge=600 >> 3 x 1 s
    "slurm-keep-successful-logs": True,  # the tests read every job's SLURM log
    "verbose": True,  # the plugin logs each sbatch call at debug level
}


def slurm_ready() -> bool:
    """True when the local cluster's node accepts jobs."""
    if shutil.which("sinfo") is None:
        return False
    try:
        out = subprocess.run(
            ["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True, timeout=15
        ).stdout
    except subprocess.TimeoutExpired:
        return False
    return any(state.startswith(("idle", "mixed", "allocated")) for state in out.split())


def node_gpus() -> int:
    """GPUs (GRES gpu:N) the cluster's nodes advertise."""
    out = subprocess.run(
        ["sinfo", "--noheader", "--format=%G"], capture_output=True, text=True, timeout=15
    ).stdout
    return sum(int(n) for n in re.findall(r"gpu(?::[\w.]+)?:(\d+)", out))


def write_test_profile(directory: Path, **overrides) -> Path:
    """profiles/slurm with TEST_PROFILE_OVERRIDES and ``overrides`` applied, written to ``directory``."""
    settings = yaml.safe_load(SLURM_PROFILE.read_text())
    settings.update(TEST_PROFILE_OVERRIDES)
    settings.update(overrides)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    return directory


def job_environment() -> dict[str, str]:
    """The submitting shell's environment with the venv activated; sbatch exports it to jobs."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(VENV_BIN.parent)
    env.setdefault("SCDIVA_JAX_CACHE_DIR", str(JAX_CACHE))
    for inherited in ("SLURM_JOB_ID", "SLURM_STEP_GPUS", "CUDA_VISIBLE_DEVICES"):
        env.pop(inherited, None)  # the tests read these inside jobs; only SLURM may set them
    return env


@dataclass
class SlurmJob:
    snakemake_jobid: int
    slurm_jobid: str
    log: Path

    @property
    def rule(self) -> str:
        # the plugin's log layout: <logdir>/rule_<rule>/<wildcards>/<slurm jobid>.log
        return next(p.name.removeprefix("rule_") for p in self.log.parents if p.name.startswith("rule_"))


@dataclass
class Run:
    returncode: int
    output: str
    seconds: float
    jobs: list[SlurmJob] = field(default_factory=list)

    def rules_run_remotely(self) -> list[str]:
        """Rule names of the job blocks Snakemake printed as remote jobs ("rule x:", not "localrule x:")."""
        return re.findall(r"^rule (\w+):$", self.output, flags=re.MULTILINE)


def parse_submissions(output: str) -> list[SlurmJob]:
    return [SlurmJob(int(j), s, Path(log)) for j, s, log in SUBMITTED.findall(output)]


def start_workflow(
    workdir: Path,
    args: list[str],
    *,
    profile: Path | None,
    log: Path,
    snakefile: Path = FIXTURE_SNAKEFILE,
) -> subprocess.Popen:
    """Start Snakemake in the background (its own process group), output to ``log``."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = [str(VENV_BIN / "snakemake"), "--snakefile", str(snakefile), "--directory", str(workdir)]
    if profile is not None:
        command += ["--profile", str(profile)]
    command += args
    with open(log, "w") as handle:
        return subprocess.Popen(
            command,
            cwd=workdir,
            env=job_environment(),
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def finish_workflow(process: subprocess.Popen, log: Path, *, timeout: float, started: float) -> Run:
    """Wait for a started run; on timeout kill it and its SLURM jobs and fail loudly."""
    try:
        process.wait(timeout=max(1.0, timeout - (time.monotonic() - started)))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        output = log.read_text()
        cancel_jobs(parse_submissions(output))
        raise AssertionError(
            f"snakemake did not finish within {timeout:.0f} s; last output:\n{output[-4000:]}"
        ) from None
    output = log.read_text()
    return Run(process.returncode, output, time.monotonic() - started, parse_submissions(output))


def run_workflow(
    workdir: Path,
    args: list[str],
    *,
    profile: Path | None,
    snakefile: Path = FIXTURE_SNAKEFILE,
    timeout: float = 180,
) -> Run:
    log = workdir.parent / f"{workdir.name}.snakemake.out"
    started = time.monotonic()
    process = start_workflow(workdir, args, profile=profile, snakefile=snakefile, log=log)
    return finish_workflow(process, log, timeout=timeout, started=started)


def cancel_jobs(jobs: list[SlurmJob]) -> None:
    if jobs:
        subprocess.run(["scancel", *(j.slurm_jobid for j in jobs)], capture_output=True, timeout=30)


def job_state(slurm_jobid: str) -> str:
    """The job's state as squeue reports it (RUNNING, COMPLETED, ...; '' when unknown)."""
    out = subprocess.run(
        ["squeue", "--noheader", "--states=all", "--format=%T", f"--jobs={slurm_jobid}"],
        capture_output=True,
        text=True,
        timeout=15,
    ).stdout
    return out.strip()


def sbatch_calls(output: str) -> list[str]:
    """The sbatch command lines the plugin logged (needs --verbose)."""
    return re.findall(r"^sbatch call: (.*)$", output, flags=re.MULTILINE)
