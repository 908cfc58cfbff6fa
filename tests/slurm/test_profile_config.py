"""profiles/slurm without a cluster: its settings, and what the workflow asks SLURM for (dry runs).

These need no SLURM and run everywhere; the real submissions are in the `slurm`-marked tests.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from slurm_harness import REPO, SLURM_PROFILE, job_environment

WORKFLOW_PROFILE = REPO / "profiles" / "default" / "config.yaml"


def test_profile_uses_the_slurm_executor_with_squeue_status_and_retries():
    profile = yaml.safe_load(SLURM_PROFILE.read_text())
    assert profile["executor"] == "slurm"
    assert profile["slurm-status-command"] == "squeue"  # sacct hangs without slurmdbd
    assert profile["retries"] >= 1 and profile["rerun-incomplete"] is True
    assert profile["latency-wait"] >= 30 and profile["jobs"] >= 1
    resources = profile["default-resources"]
    assert {"mem_mb", "runtime", "slurm_account", "slurm_partition"} <= set(resources)
    assert "cpus_per_task" not in resources  # CPUs follow each rule's threads


def test_workflow_profile_does_not_replace_the_cluster_default_resources():
    """Snakemake loads profiles/default after --profile; its default-resources would drop account/partition."""
    assert "default-resources" not in yaml.safe_load(WORKFLOW_PROFILE.read_text())


def _dry_run(workdir: Path, *config: str, env: dict[str, str]) -> dict[str, list[str]]:
    """Resources of each integrate job of a dry run through profiles/slurm, keyed by method."""
    workdir.mkdir(parents=True)
    extra = workdir / "methods.yaml"
    extra.write_text("integration:\n  methods: [harmony, scvi]\n")
    targets = [f"results/pbmc_3chem/integration/{m}/seed0.h5ad" for m in ("harmony", "scvi")]
    command = [
        str(REPO / ".venv/bin/snakemake"), *targets, "--dry-run", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir), "--profile", str(SLURM_PROFILE.parent),
        "--configfile", str(extra), "--config", *config,
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env, cwd=workdir)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    blocks = re.findall(r"wildcards: dataset=\w+, method=(\w+), seed=\d+\n\s+resources: (.*)", out.stdout)
    assert {method for method, _ in blocks} == {"harmony", "scvi"}, out.stdout[-3000:]
    return {method: resources.split(", ") for method, resources in blocks}


@pytest.fixture(scope="module")
def dry_runs(tmp_path_factory) -> dict[str, dict[str, list[str]]]:
    """GPUs on with account/partition in the environment; GPUs off without them."""
    base = tmp_path_factory.mktemp("slurm_dry_run")
    plain = {k: v for k, v in job_environment().items() if not k.startswith("SCDIVA_SLURM_")}
    cluster = plain | {"SCDIVA_SLURM_ACCOUNT": "my_lab", "SCDIVA_SLURM_PARTITION": "gpu_long"}
    return {
        "gpu_on": _dry_run(base / "gpu_on", "gpu=True", env=cluster),
        "gpu_off": _dry_run(base / "gpu_off", "gpu=False", env=plain),
    }


def test_only_gpu_capable_methods_request_a_gpu_and_only_when_enabled(dry_runs):
    assert "gpu=1" in dry_runs["gpu_on"]["scvi"]
    assert "gpu=0" in dry_runs["gpu_on"]["harmony"]
    assert all("gpu=0" in resources for resources in dry_runs["gpu_off"].values()), dry_runs["gpu_off"]


def test_account_and_partition_come_from_the_environment(dry_runs):
    for resources in dry_runs["gpu_on"].values():
        assert "slurm_account=my_lab" in resources and "slurm_partition=gpu_long" in resources
    # unset: empty, and the plugin guesses the account and uses the cluster's default partition
    for resources in dry_runs["gpu_off"].values():
        assert "slurm_account=" in resources and "slurm_partition=" in resources
