"""Realistic mistakes and environments, each a clear early error or a documented behaviour.

Tiny batches, damaged checkpoint files, uncaught script errors, file modes on a shared install,
the scANVI annotation accelerator, and relative checkpoint paths. Workflow-level cases of bad
datasets are in test_bad_input.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import anndata
import numpy as np
import pytest
import yaml

from scdiva.bench.checkpoints.files import CHECKPOINT_FILES, CheckpointError
from scdiva.bench.checkpoints.inputs import check_checkpoint_dir, check_checkpoint_inputs
from scdiva.bench.core.io import atomic_path
from scdiva.bench.core.preprocess import PreprocessSettings, preprocess
from scdiva.bench.core.validate import DatasetValidationError

REPO = Path(__file__).resolve().parents[2]
PBMC = REPO / "data" / "pbmc_3chem_symphony.h5ad"


def pbmc_with_batch(n_cells: int, name: str = "tiny") -> anndata.AnnData:
    """The embedded PBMCs with ``n_cells`` cells of chemistry 5p moved into a batch of their own."""
    adata = anndata.read_h5ad(PBMC)
    donor = adata.obs["donor"].astype(str).to_numpy().copy()
    donor[np.flatnonzero(donor == "5p")[:n_cells]] = name
    adata.obs["donor"] = donor
    return adata


# --- batches of one cell (seurat_v3 crashed with a segmentation fault) ---------------------------


def test_one_cell_batch_is_dropped_with_a_warning(caplog):
    settings = PreprocessSettings(n_top_genes=500, n_pcs=20)
    with caplog.at_level(logging.WARNING, logger="scdiva.bench.core.preprocess"):
        out = preprocess(pbmc_with_batch(1), dataset="pbmc", batch_key="donor", label_key="cell_type",
                         settings=settings)
    assert "tiny" not in set(out.obs["donor"]) and set(out.obs["donor"].cat.categories) == {"3pv1", "3pv2", "5p"}
    assert out.uns["preprocess"]["dropped_batches"] == {"tiny": 1}
    assert "dropping 1 batches of obs['donor'] with fewer than 10 cells" in caplog.text
    assert "preprocess.min_cells_per_batch" in caplog.text


def test_one_cell_batch_in_a_separate_process_does_not_crash():
    """The crash was a segmentation fault (no Python error): run the real preprocessing in a child."""
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_input_safety import pbmc_with_batch
        from scdiva.bench.core.preprocess import PreprocessSettings, preprocess
        out = preprocess(pbmc_with_batch(1), dataset="pbmc", batch_key="donor", label_key="cell_type",
                         settings=PreprocessSettings(n_top_genes=500, n_pcs=20, min_cells_per_batch=2))
        print("batches", sorted(set(out.obs["donor"])))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "batches ['3pv1', '3pv2', '5p']" in proc.stdout


def test_dropping_an_annotation_batch_is_an_error():
    with pytest.raises(DatasetValidationError, match=r"batches \['tiny'\] of `datasets.pbmc.annotation` have fewer "
                       r"than 10 cells .*lower `preprocess.min_cells_per_batch`"):
        preprocess(pbmc_with_batch(3), dataset="pbmc", batch_key="donor", label_key="cell_type",
                   annotation={"reference_batches": ["3pv2"], "query_batches": ["tiny"]})


# --- damaged checkpoint files -------------------------------------------------------------------


@pytest.fixture
def checkpoint_dir(tmp_path) -> Path:
    """A checkpoint directory with real files: JSON config and vocabulary, a safetensors weight file."""
    import torch
    from safetensors.torch import save_file

    directory = tmp_path / "scdiva_tiny"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({"size": "tiny"}))
    (directory / "vocab.json").write_text(json.dumps(["CD3E", "MS4A1"]))
    save_file({"w": torch.randn(64, 32), "b": torch.zeros(32)}, str(directory / "model.safetensors"))
    return directory


def test_intact_checkpoint_passes(checkpoint_dir):
    check_checkpoint_dir(checkpoint_dir)
    check_checkpoint_inputs([checkpoint_dir / f for f in CHECKPOINT_FILES])


@pytest.mark.parametrize(("damage", "message"), [
    (lambda p: p.write_bytes(p.read_bytes()[:-100]), "its tensors need .* bytes but the file has .* \\(truncated"),
    (lambda p: p.write_bytes(b"<html>Bad Gateway</html>"), "its header claims .* bytes but the file has 24"),
    (lambda p: p.write_bytes(b"\x00" * 3), "3 bytes, shorter than the 8-byte header length"),
], ids=["truncated", "html-page", "empty"])
def test_damaged_safetensors_is_a_checkpoint_error(checkpoint_dir, damage, message):
    damage(checkpoint_dir / "model.safetensors")
    with pytest.raises(CheckpointError, match=f"checkpoint 'scdiva_tiny': .*model.safetensors is not a valid "
                                              f"safetensors file: {message}.*Delete .*scdiva_tiny"):
        check_checkpoint_inputs([checkpoint_dir / f for f in CHECKPOINT_FILES])


def test_damaged_json_is_a_checkpoint_error(checkpoint_dir):
    (checkpoint_dir / "vocab.json").write_text('["CD3E", ')
    with pytest.raises(CheckpointError, match="checkpoint 'scdiva_tiny': .*vocab.json is not valid JSON"):
        check_checkpoint_dir(checkpoint_dir)


# --- uncaught errors of workflow scripts land in the rule's log ---------------------------------


def test_uncaught_exception_is_written_to_the_log(tmp_path):
    log = tmp_path / "logs" / "job.log"
    code = ("from scdiva.bench.core.io import configure_logging\n"
            f"configure_logging({str(log)!r})\n"
            "raise RuntimeError('no such layer: counts')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    text = log.read_text()
    assert "uncaught RuntimeError: no such layer: counts" in text and "Traceback (most recent call last)" in text
    assert proc.stderr.count("Traceback") == 1  # once on stderr too, not twice


def test_log_lines_and_redirected_prints_both_survive(tmp_path):
    """The workflow scripts log through logging and redirect prints into the same file (append)."""
    log = tmp_path / "job.log"
    log.write_text("a previous run's log\n")
    code = ("import contextlib, logging\n"
            "from scdiva.bench.core.io import configure_logging\n"
            f"configure_logging({str(log)!r})\n"
            "logging.getLogger('job').info('first logged line')\n"
            f"with open({str(log)!r}, 'a') as f, contextlib.redirect_stdout(f):\n"
            "    print('printed progress line', flush=True)\n"
            "    logging.getLogger('job').info('second logged line')\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=60)
    text = log.read_text()
    assert "previous run" not in text
    assert all(line in text for line in ("first logged line", "printed progress line", "second logged line")), text


# --- file modes on a shared install -------------------------------------------------------------


def test_atomic_outputs_get_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "table.csv") as tmp:
            tmp.write_text("a,b\n")
        with atomic_path(tmp_path / "data.h5ad") as tmp:
            anndata.AnnData(np.ones((2, 2), dtype=np.float32)).write_h5ad(tmp)
        os.umask(0o002)
        with atomic_path(tmp_path / "group.json") as tmp:
            tmp.write_text("{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "table.csv").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "data.h5ad").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "group.json").stat().st_mode) == 0o664


def test_default_directory_mode_follows_the_umask():
    from scdiva.bench.core.io import default_dir_mode

    old = os.umask(0o022)
    try:
        assert default_dir_mode() == 0o755
        os.umask(0o002)
        assert default_dir_mode() == 0o775
    finally:
        os.umask(old)


def test_download_lock_file_gets_the_umask_mode(tmp_path):
    from scdiva.bench.core.download import record_digest

    old = os.umask(0o022)
    try:
        record_digest(tmp_path / "sha256.lock.json", "https://example.org/a.h5ad", "a" * 64)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "sha256.lock.json").stat().st_mode) == 0o644


# --- the annotation scANVI job uses the accelerator it is given ---------------------------------


def test_scanvi_annotation_trains_on_the_given_accelerator(pbmc_small):
    """'gpu' reaches Lightning: it trains on the GPU where there is one, and fails naming it where not."""
    import torch

    from scdiva.bench.tasks.annotation.baselines import fit_scanvi

    reference = pbmc_small[pbmc_small.obs["donor"] != "3pv1"].copy()
    params = {"accelerator": "gpu", "scvi_max_epochs": 1, "scanvi_max_epochs": 1}
    if torch.cuda.is_available():
        fitted = fit_scanvi(reference, label_key="cell_type", batch_key="donor", seed=0, params=params, threads=1)
        fitted.map_query(pbmc_small[pbmc_small.obs["donor"] == "3pv1"].copy())
        assert fitted.predict(pbmc_small[pbmc_small.obs["donor"] == "3pv1"].copy()).shape[0] > 0
    else:
        with pytest.raises(Exception, match="(?i)gpu|cuda"):
            fit_scanvi(reference, label_key="cell_type", batch_key="donor", seed=0, params=params, threads=1)


@pytest.mark.slow  # a real Snakemake run
def test_annotation_job_with_gpu_true_trains_scanvi_on_the_gpu(tmp_path):
    """The real annotate job with `gpu: true`: scANVI asks Lightning for the GPU (on a machine without
    one, Lightning's error in the rule's log and the run's record show it did; with one, the run is ok)."""
    import torch

    overlay = tmp_path / "gpu.yaml"
    overlay.write_text(yaml.safe_dump({"gpu": True, "datasets": {"pbmc_3chem": {"subsample": 300}},
                                       "annotation": {"methods": ["scanvi"], "timing_repeats": 1,
                                                      "params": {"scanvi": {"scvi_max_epochs": 1,
                                                                            "scanvi_max_epochs": 1,
                                                                            "query_max_epochs": 1}}}}))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--cores", "1", "results/pbmc_3chem/annotation/scanvi/seed0.csv",
           "--configfile", str(overlay)]  # last: it takes several values
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    log = (tmp_path / "results" / "logs" / "annotate" / "pbmc_3chem.scanvi.seed0.log").read_text()
    # the job completes either way (a method's failure is its run's outcome, not the job's)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((tmp_path / "results" / "pbmc_3chem" / "annotation" / "scanvi" / "seed0.run.json").read_text())
    if torch.cuda.is_available():
        assert record["status"] == "ok", log[-3000:]
    else:
        assert record["status"] == "failed", record
        assert "No supported gpu backend found" in log and "No supported gpu backend found" in record["reason"], (
            log[-3000:], record)


# --- relative checkpoint paths resolve against the repository root -------------------------------


@pytest.mark.slow  # a real Snakemake run
def test_relative_published_checkpoint_is_fetched_from_the_repository(tmp_path, checkpoint_dir):
    relative = os.path.relpath(checkpoint_dir, REPO)  # relative to the repository, not the working directory
    digests = {f: hashlib.sha256((checkpoint_dir / f).read_bytes()).hexdigest() for f in CHECKPOINT_FILES}
    overlay = tmp_path / "ckpt.yaml"
    overlay.write_text(yaml.safe_dump({"checkpoints": {"published_tiny": {"published": {
        "path": relative, "sha256": digests}}}}))
    workdir = tmp_path / "work"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--cores", "1", "resources/checkpoints/published_tiny/model.safetensors", "--configfile", str(overlay)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    fetched = workdir / "resources" / "checkpoints" / "published_tiny"
    assert (fetched / "model.safetensors").read_bytes() == (checkpoint_dir / "model.safetensors").read_bytes()


# --- a remote file that fails the dataset check is neither staged nor trusted --------------------


def test_failed_check_of_a_download_stages_nothing_and_records_no_digest(tmp_path):
    from scdiva.bench.core.download import stage_dataset
    from scdiva.bench.core.validate import check_source

    sys.path.insert(0, str(Path(__file__).parent))
    from test_download import FileServer

    entry = {"batch_key": "donor", "label_key": "cell_type"}
    lock = tmp_path / "sha256.lock.json"
    destination = tmp_path / "web.h5ad"
    with FileServer(b"cell,CD3E\nc1,3\n") as server, pytest.raises(DatasetValidationError,
                                                                      match=f"source file {server.url} "):
        stage_dataset(server.url, destination, lock_file=lock, dataset="web",
                      check=lambda path: check_source(path, entry, dataset="web", shown=server.url))
    assert not destination.exists() and not lock.exists() and list(tmp_path.glob("*.part")) == []
