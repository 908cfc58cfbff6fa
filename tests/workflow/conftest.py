"""A real workflow run in which methods fail in every way a run records, shared by the tests that read it.

300 PBMCs, two seeds. Integration: ``unintegrated`` and ``first_pcs`` work; ``broken`` raises on every
seed; ``flaky`` raises on seed 1 only; ``hangs`` is a command that sleeps past its 1-minute runtime.
Annotation: ``logreg`` works; ``no_labels`` is a command that exits 1. The entry points live in
tests/workflow/failing_methods.py. Also: the small files a report-section test reads (``report_files``).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
INTEGRATION_METHODS = ["unintegrated", "first_pcs", "broken", "flaky", "hangs"]
ANNOTATION_METHODS = ["logreg", "no_labels"]
SEEDS = [0, 1]


@dataclass
class FailingRun:
    workdir: Path
    config: Path
    returncode: int
    log: str

    def snakemake(self, workflow_tools, *extra: str) -> subprocess.CompletedProcess:
        """Snakemake again on this run's directory and config (e.g. a dry run)."""
        return subprocess.run(_command(workflow_tools, self.workdir, self.config, *extra), cwd=workflow_tools.repo,
                              capture_output=True, text=True, env=_env(workflow_tools))


def _command(workflow_tools, workdir: Path, config: Path, *extra: str) -> list[str]:
    """The default config with the overlay (not the smoke config: the run chooses its own methods)."""
    return [sys.executable, "-m", "snakemake", "--snakefile", str(workflow_tools.repo / "Snakefile"),
            "--cores", "2", "--directory", str(workdir), *extra,
            "--configfile", str(workflow_tools.repo / "config" / "config.yaml"), str(config)]


def _env(workflow_tools) -> dict[str, str]:
    return {**workflow_tools.env(), "PYTHONPATH": str(HERE)}  # the entry points: failing_methods.py


@pytest.fixture(scope="session")
def failing_methods_run(workflow_tools, tmp_path_factory) -> FailingRun:
    root = tmp_path_factory.mktemp("failing_methods")
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({
        "seeds": SEEDS,
        "gpu": False,
        "datasets": {"pbmc_3chem": {"subsample": 300}},
        "preprocess": {"n_top_genes": 500, "n_pcs": 20},
        "integration": {"methods": INTEGRATION_METHODS},
        "annotation": {"methods": ANNOTATION_METHODS, "timing_repeats": 1},
        "methods": {
            "first_pcs": {"entry_point": "failing_methods:first_pcs"},
            "broken": {"entry_point": "failing_methods:raises"},
            "flaky": {"entry_point": "failing_methods:flaky"},
            # a command that never ends: its runtime (1 min) stops it
            "hangs": {"command": "sh -c 'sleep 600' {input} {output}"},
            "no_labels": {"task": "annotation", "command": "false {reference} {query} {output}"},
        },
        "resources": {"hangs": {"runtime": 1}, "metrics": {"threads": 1}},
        "multitask": {"datasets": ["no_such_dataset"]},  # no multi-task benchmark
    }))
    workdir = root / "run"
    proc = subprocess.run(_command(workflow_tools, workdir, config), cwd=workflow_tools.repo, capture_output=True,
                          text=True, env=_env(workflow_tools))
    return FailingRun(workdir, config, proc.returncode, proc.stdout + proc.stderr)


@pytest.fixture
def report_files(tmp_path, monkeypatch):
    """For report-section tests: a 20-cell preprocessed file (obs ``batch``, ``label``) and a function
    ``write(methods) -> (preprocessed path, {method: embedding path})`` writing one random 2-D embedding
    per method. The UMAP grid (tested elsewhere) is replaced by a message figure."""
    import anndata as ad
    import numpy as np
    import pandas as pd

    from scdiva.bench.report import integration

    monkeypatch.setattr(integration, "umap_grid", lambda obs, embeddings, **kw: integration.message_figure(
        "umaps", kw["paths"]))
    obs = pd.DataFrame({"batch": ["a", "b"] * 10, "label": ["t"] * 10 + ["b"] * 10}, index=[f"c{i}" for i in range(20)])
    preprocessed = tmp_path / "pre.h5ad"
    ad.AnnData(obs=obs).write_h5ad(preprocessed)

    def write(methods):
        paths = {}
        for method in methods:
            emb = ad.AnnData(obs=obs[[]])
            emb.obsm["X_emb"] = np.random.default_rng(0).normal(size=(len(obs), 2)).astype(np.float32)
            paths[method] = str(tmp_path / f"{method}.h5ad")
            emb.write_h5ad(paths[method])
        return str(preprocessed), paths

    return write
