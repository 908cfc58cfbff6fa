"""Shared fixtures: a small preprocessed PBMC AnnData, and ONE smoke run of the workflow for everyone.

The smoke run (config/smoke.yaml, in a temporary directory via `snakemake --directory`) is session
scoped: tests that need workflow outputs reuse it; tests that change a workflow directory copy it
first (mtimes preserved) so they never disturb each other.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PBMC = REPO / "data" / "pbmc_3chem_symphony.h5ad"
PANCREAS = REPO / "data" / "pancreas_baron_human.h5ad"
# One compile cache for the whole suite (gitignored): every workflow run of a session (and of later
# sessions) reuses the scib-metrics kernels JAX and numba compiled once, instead of ~100 s per run.
CACHE = REPO / ".cache"
JAX_CACHE = CACHE / "jax"
# numba and JAX of this process read these at import; subprocesses inherit them.
os.environ.setdefault("NUMBA_CACHE_DIR", str(CACHE / "numba"))
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(JAX_CACHE))


def snakemake_command(workdir: Path, *configfiles: str | Path, cores: int = 2) -> list[str]:
    """`snakemake` of this checkout's Python, run on the repository's Snakefile in ``workdir``."""
    configs = [str(c) for c in ("config/smoke.yaml", *configfiles)]
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", str(cores),
            "--directory", str(workdir), "--configfile", *configs, "--printshellcmds"]


def workflow_env() -> dict[str, str]:
    """Environment for Snakemake subprocesses: PATH *without* this Python's bin directory, as when a
    scheduler or job script starts `snakemake` by its full path; shell rules must not need it. Their
    metrics jobs share the suite's JAX cache (``$SCDIVA_JAX_CACHE_DIR``) instead of one per directory."""
    bin_dir = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != bin_dir)
    return {"SCDIVA_JAX_CACHE_DIR": str(JAX_CACHE), **os.environ, "PATH": path, "PYTHONHASHSEED": "0"}


@dataclass
class WorkflowRun:
    workdir: Path
    seconds: float
    log: str


def run_workflow(workdir: Path, *configfiles: str | Path, extra: tuple[str, ...] = ()) -> WorkflowRun:
    start = time.perf_counter()
    proc = subprocess.run([*snakemake_command(workdir, *configfiles), *extra], cwd=REPO, capture_output=True,
                          text=True, env=workflow_env())
    seconds = time.perf_counter() - start
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise AssertionError(f"snakemake failed (rc {proc.returncode}) in {workdir}:\n{log[-6000:]}")
    return WorkflowRun(workdir, seconds, log)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> WorkflowRun:
    """The smoke workflow, run once per test session (timed)."""
    return run_workflow(tmp_path_factory.mktemp("smoke"))


def copy_workdir(run: WorkflowRun, dest: Path) -> Path:
    """Copy a finished workflow directory, keeping mtimes so Snakemake sees it as up to date."""
    shutil.copytree(run.workdir, dest, symlinks=True, copy_function=shutil.copy2, dirs_exist_ok=False)
    return dest


@pytest.fixture(scope="session")
def pbmc_small():
    """480 real PBMCs (stratified by donor x cell type), preprocessed by the workflow's own function."""
    import anndata

    from scdiva.bench.core.preprocess import PreprocessSettings, preprocess

    return preprocess(
        anndata.read_h5ad(PBMC), dataset="pbmc", batch_key="donor", label_key="cell_type",
        subsample=480, settings=PreprocessSettings(n_top_genes=800, n_pcs=30), seed=0,
    )


@pytest.fixture(scope="session")
def workflow_tools():
    """Helpers for tests that run Snakemake themselves: command builder, runner, directory copier."""
    from types import SimpleNamespace

    return SimpleNamespace(command=snakemake_command, run=run_workflow, copy=copy_workdir, repo=REPO, env=workflow_env)
