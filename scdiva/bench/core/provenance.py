"""Provenance of a workflow run: what data, code, settings and machine made the result tables.

``results/provenance.json`` (written by the ``provenance`` rule) records the sha256 of every staged
dataset and of every file the run read that no rule wrote (``inputs``: sources, metadata, multimodal
and cross-species files, precomputed embeddings, checkpoint files, the paper's claims), the git
commit (or the package version outside a git checkout) and whether the tree was dirty, a sha256 of
the effective config, package versions, hardware, seeds, and start / end times. Its ``run_id`` is
:func:`run_id` of the config hash and the code version only - never of a time - so rerunning an
unchanged workflow gives the same id and re-triggers no table job. Every row of
``results/tables/*_scores.csv`` carries that ``run_id`` (:func:`with_run_id`).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from collections.abc import Mapping
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from scdiva.bench.core.download import sha256_of
from scdiva.bench.core.io import atomic_path
from scdiva.bench.report.document import Section

PACKAGES = ("scdiva", "torch", "scvi-tools", "scib-metrics", "scanpy", "anndata", "snakemake")
RUN_ID_LENGTH = 12


def config_sha256(config: Mapping[str, Any]) -> str:
    """sha256 of ``json.dumps(config, sort_keys=True)``: equal for equal configs, whatever the key order."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def code_version(repo: str | os.PathLike[str]) -> dict[str, Any]:
    """``{"commit", "dirty"}`` of the git checkout at ``repo``; outside git, the installed package version
    (``{"commit": None, "dirty": None, "version": ...}``)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                              timeout=30).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None, "version": _version("scdiva")}
    return {"commit": commit, "dirty": dirty, "version": _version("scdiva")}


def run_id(config_hash: str, code: Mapping[str, Any]) -> str:
    """Short id (12 hex digits) of a config hash and a code version (commit, else package version).

    Depends on nothing else (no time), so an unchanged config on an unchanged commit keeps its id.
    """
    version = code.get("commit") or f"version:{code.get('version')}"
    return hashlib.sha256(f"{config_hash}\n{version}".encode()).hexdigest()[:RUN_ID_LENGTH]


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each package (``None`` when not installed)."""
    return {name: _version(name) for name in packages}


def hardware() -> dict[str, Any]:
    """CPU model, logical cores, RAM (GiB), the GPUs torch sees (an empty list without one) and whether
    the CPU multiplies bf16 matrices in hardware (then ScDiVa's CPU inference runs in bf16: scdiva.train.precision)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        ram_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        ram_gib = None
    gpus: list[str] = []
    bf16_matmul = None
    try:
        # deferred: imports torch (this module is imported at workflow parse time)
        import torch

        from scdiva.train.precision import cpu_has_bf16_matmul

        if torch.cuda.is_available():
            gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        bf16_matmul = cpu_has_bf16_matmul()
    except ImportError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": ram_gib, "gpus": gpus,
            "cpu_bf16_matmul": bf16_matmul,
            "platform": platform.platform(), "python": platform.python_version()}


def build_provenance(config: Mapping[str, Any], datasets: Mapping[str, str | os.PathLike[str]], *,
                     repo: str | os.PathLike[str], started: str | None = None,
                     start_commit: str | None = None,
                     inputs: Mapping[str, str | os.PathLike[str]] | None = None) -> dict[str, Any]:
    """The provenance record of a run.

    Parameters
    ----------
    config
        The effective config (hashed, and its ``seeds`` recorded).
    datasets
        Dataset name -> its staged file.
    repo
        The checkout whose commit and dirtiness are recorded.
    started
        ISO time the workflow started (``None`` if unknown); ``finished`` is now.
    start_commit
        The commit when the workflow started (the one its tables' ``run_id`` names); if the checkout
        moved on during the run, the id stays that of ``start_commit`` and ``code.commit_at_start``
        records it beside the commit at the end.
    inputs
        Every file the run read that no rule wrote, by the config key that names it (the workflow's
        ``provenance_inputs``: sources, metadata, embeddings, checkpoint files); each is recorded
        with its sha256 under ``inputs``.
    """
    inputs = dict(inputs or {})
    for kind, files in (("dataset", datasets), ("input", inputs)):
        for name, path in files.items():
            if not Path(path).is_file():
                raise FileNotFoundError(f"provenance: {kind} {name!r} file {path} does not exist; stage it first")
    config_hash = config_sha256(config)
    code = code_version(repo)
    id_code = code
    if start_commit is not None and start_commit != code["commit"]:
        code["commit_at_start"] = start_commit
        id_code = {**code, "commit": start_commit}
    return {
        "run_id": run_id(config_hash, id_code),
        "config_sha256": config_hash,
        "code": code,
        "datasets": {name: {"path": str(path), "sha256": sha256_of(path)} for name, path in datasets.items()},
        "inputs": {name: {"path": str(path), "sha256": sha256_of(path)} for name, path in inputs.items()},
        "seeds": list(config.get("seeds", [])),
        "packages": package_versions(),
        "hardware": hardware(),
        "started": started,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def with_run_id(frame: pd.DataFrame, run: str) -> pd.DataFrame:
    """``frame`` with a last column ``run_id`` (every row ``run``), pointing to ``results/provenance.json``."""
    if not run:
        raise ValueError("run_id is empty; the workflow passes provenance.run_id(config hash, code version)")
    return frame.drop(columns="run_id", errors="ignore").assign(run_id=run)


def provenance_section(record: Mapping[str, Any], *, order: int = 90) -> Section:
    """Report section showing a provenance record (run id, code, config hash, data, packages, machine)."""
    code = record["code"]
    version = code["commit"] or f"scdiva {code.get('version')} (not a git checkout)"
    if code.get("dirty"):
        version += " **with uncommitted changes**"
    if code.get("commit_at_start"):
        version += f" (at the end; the run, and its id, started at {code['commit_at_start']})"
    hw = record["hardware"]
    lines = [
        f"Run id `{record['run_id']}` (the `run_id` column of every `results/tables/*_scores.csv` row); "
        "the full record is `results/provenance.json`.",
        "",
        "| item | value |",
        "|---|---|",
        f"| code | {version} |",
        f"| config sha256 | `{record['config_sha256']}` |",
        f"| seeds | {', '.join(map(str, record['seeds']))} |",
        f"| started / finished (UTC) | {record.get('started') or 'unknown'} / {record['finished']} |",
        f"| hardware | {hw['cpu']}, {hw['cores']} cores, {hw['ram_gib']} GiB RAM, "
        f"GPU: {', '.join(hw['gpus']) or 'none'} |",
        *(f"| dataset `{name}` sha256 | `{d['sha256']}` |" for name, d in record["datasets"].items()),
        *(f"| input `{name}` (`{d['path']}`) sha256 | `{d['sha256']}` |"
          for name, d in record.get("inputs", {}).items()),
        *(f"| {pkg} | {ver or 'not installed'} |" for pkg, ver in record["packages"].items()),
    ]
    return Section(title="Provenance", markdown="\n".join(lines), order=order)


def write_provenance(record: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``record`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=2) + "\n")
