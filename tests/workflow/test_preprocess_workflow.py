"""download + preprocess through the Snakemake CLI from another working directory, and what reruns them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anndata
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
TARGET = "results/pbmc_3chem/preprocessed.h5ad"

pytestmark = pytest.mark.slow  # real download + preprocess runs through Snakemake


def snakemake(workdir: Path, overlay: dict, *extra: str) -> str:
    configfile = workdir / "overlay.yaml"
    configfile.write_text(yaml.safe_dump(overlay))
    cmd = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO_ROOT / "Snakefile"),
        "--directory", str(workdir), "--cores", "1", *extra, TARGET, "--configfile", str(configfile),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return proc.stdout + proc.stderr


def planned(output: str) -> set[str]:
    return {line.split()[-1].rstrip(":") for line in output.splitlines() if line.startswith(("rule ", "localrule "))}


def test_preprocess_runs_elsewhere_and_reruns_only_for_output_keys(tmp_path):
    base = {"datasets": {"pbmc_3chem": {"subsample": 300}}, "preprocess": {"n_top_genes": 500, "n_pcs": 20}}
    snakemake(tmp_path, base)

    out = anndata.read_h5ad(tmp_path / TARGET)
    assert out.n_obs == 300 and out.var["highly_variable"].sum() == 500
    assert out.obsm["X_pca"].shape == (300, 20) and "counts" in out.layers
    assert (tmp_path / "resources" / "datasets" / "pbmc_3chem.h5ad").is_file()
    assert (tmp_path / "results" / "logs" / "preprocess" / "pbmc_3chem.log").read_text().count("QC removed") == 1

    # Annotation batches are only validated: changing them must not redo preprocessing (and with it
    # every integration); changing the subsample must.
    relabelled = {**base, "datasets": {"pbmc_3chem": {"subsample": 300, "annotation": {
        "reference_batches": ["3pv2"], "query_batches": ["3pv1", "5p"]}}}}
    assert planned(snakemake(tmp_path, relabelled, "--dry-run")) == set()
    resampled = {**base, "datasets": {"pbmc_3chem": {"subsample": 400}}}
    assert planned(snakemake(tmp_path, resampled, "--dry-run")) == {"preprocess"}
