"""Every consumer of method outputs downstream of the method jobs survives a failed run: a real Snakemake run.

From a copy of the suite's smoke run, two built-in methods are made to fail inside their own jobs through
config values that pass the parse-time checks:

- ScDiVa zero-shot integration (``methods.scdiva_zeroshot.checkpoint``) loads a published checkpoint whose
  ``config.json`` does not match its weights (``n_latent`` 17 instead of 16): ``from_pretrained`` raises;
- the multi-modal ``totalvi`` on its first (only) seed trains with ``max_epochs: -2``: Lightning raises.

Both runs leave failure stubs. The report must still be written and name both runs, the trajectory figure
and the multi-modal figures must leave them out, and every other method's results must be those of the
smoke run. Only the two runs' outputs are removed before the run (``--rerun-triggers mtime``), so exactly
they and what reads them run again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

ZEROSHOT = "results/pbmc_3chem/integration/scdiva_zeroshot/seed0"
TOTALVI = "results/multimodal/citeseq_pbmc/totalvi/seed0"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_report_is_written_and_names_failed_runs_others_intact(smoke_run, workflow_tools, tmp_path):
    work = workflow_tools.copy(smoke_run, tmp_path / "run")
    results = work / "results"
    before_mm = pd.read_csv(results / "tables/multimodal_scores_by_seed.csv")
    before_int = pd.read_csv(results / "tables/integration_scores.csv")

    # a published checkpoint whose config does not match its weights: passes the parse-time and fetch checks
    damaged = tmp_path / "damaged_checkpoint"
    shutil.copytree(work / "resources/checkpoints/scdiva_tiny", damaged)
    config = json.loads((damaged / "config.json").read_text())
    config["n_latent"] += 1
    (damaged / "config.json").write_text(json.dumps(config))
    extra = {
        "checkpoints": {"damaged": {"published": {
            "path": str(damaged), "sha256": {f: _sha256(damaged / f) for f in
                                             ("config.json", "model.safetensors", "vocab.json")}}}},
        "methods": {"scdiva_zeroshot": {"checkpoint": "damaged"}},
        "multimodal": {"params": {"totalvi": {"max_epochs": -2}}},
    }
    (tmp_path / "failing.yaml").write_text(yaml.safe_dump(extra))
    for stem in (ZEROSHOT, TOTALVI):  # these two runs again; everything else by modification time
        for path in (work / stem).parent.glob(Path(stem).name + ".*"):
            path.unlink()

    started = time.time()
    cmd = [*workflow_tools.command(work, tmp_path / "failing.yaml"), "--rerun-triggers", "mtime"]
    proc = subprocess.run(cmd, cwd=workflow_tools.repo, capture_output=True, text=True, env=workflow_tools.env())
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0, "a run with failed methods exits non-zero (check_runs)"
    report_html = results / "report/index.html"
    assert report_html.is_file() and report_html.stat().st_mtime > started, log[-6000:]  # written again

    # the record: exactly the two runs failed, each with its own one-line reason
    runs = pd.read_csv(results / "tables/runs.csv", keep_default_na=False)
    bad = runs[runs["status"] != "ok"]
    assert sorted(zip(bad["task"], bad["method"], bad["status"], strict=True)) == [
        ("integration", "scdiva_zeroshot", "failed"), ("multimodal", "totalvi", "failed")], bad.to_string()
    reasons = dict(zip(bad["method"], bad["reason"], strict=True))
    assert "does not match" in reasons["scdiva_zeroshot"] and "size mismatch" in reasons["scdiva_zeroshot"]
    assert "max_epochs" in reasons["totalvi"]

    sections = results / "report/sections"
    # trajectory: PCA and the fine-tuned ScDiVa only; the section names the zero-shot run and why
    medians = pd.read_csv(results / "pbmc_3chem/trajectory_median_pseudotime.csv", index_col=0)
    assert list(medians.columns) == ["PCA", "scdiva_finetuned"]
    trajectory = json.loads((sections / "paper_trajectory.json").read_text())["markdown"]
    assert "`scdiva_zeroshot` on `pbmc_3chem` (seed 0): **failed**" in trajectory
    assert "size mismatch" in trajectory

    # multi-modal: totalvi in no table row and no figure, named with its reason; the others unchanged
    mm = json.loads((sections / "multimodal.json").read_text())
    assert "**Runs left out**" in mm["markdown"] and "`totalvi`" in mm["markdown"] and "max_epochs" in mm["markdown"]
    assert not any("totalvi" in Path(f).name for f in mm["figures"]), mm["figures"]
    assert any(Path(f).name == "multimodal_citeseq_pbmc_protein_prediction.png" for f in mm["figures"])
    after_mm = pd.read_csv(results / "tables/multimodal_scores_by_seed.csv")
    assert "totalvi" not in set(after_mm["method"])
    keep = before_mm[before_mm["method"] != "totalvi"].reset_index(drop=True)
    pd.testing.assert_frame_equal(after_mm.reset_index(drop=True), keep)
    summary = pd.read_csv(results / "tables/multimodal_scores.csv")
    assert set(summary["method"]) == {"scdiva", "mean_protein"}

    # integration: the zero-shot run is in no table; every other method keeps its smoke-run embedding and
    # scores (its dataset's metrics job scores them again: kBET's neighbourhood sampling moves it by ~0.003)
    for method in ("unintegrated", "harmony", "scanorama", "scvi", "scanvi", "scdiva_finetuned"):
        emb = f"pbmc_3chem/integration/{method}/seed0.h5ad"
        assert (results / emb).read_bytes() == (smoke_run.workdir / "results" / emb).read_bytes(), method
    after_int = pd.read_csv(results / "tables/integration_scores.csv")
    assert "scdiva_zeroshot" not in set(after_int["method"])
    key = ["dataset", "method", "metric"]
    merged = before_int[before_int["method"] != "scdiva_zeroshot"].merge(after_int, on=key, suffixes=("", "_after"))
    assert len(merged) == (before_int["method"] != "scdiva_zeroshot").sum()
    assert merged["value_after"].notna().sum() == merged["value"].notna().sum()
    assert (merged["value"] - merged["value_after"]).abs().max() < 0.01

    # the claims table's model rows are the fine-tuned ScDiVa's (the zero-shot one has no completed run)
    claims = json.loads((sections / "paper_claims.json").read_text())["markdown"]
    assert "scdiva_finetuned" in claims

    report = (results / "report/report.md").read_text()
    for name in ("scdiva_zeroshot", "totalvi"):
        assert name in report
    assert "Runs left out" in report
