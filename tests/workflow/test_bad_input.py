"""Bad input: a config that breaks one thing must stop with a message naming the problem, before any
integration method runs, and leave no result file (h5ad / csv) behind.

Cases caught by a job run the whole workflow (default target) through the real Snakemake CLI in a
temporary working directory with an extra ``--configfile``. Cases caught while the workflow is parsed
call the parse-time checks in-process (:func:`parse_time_error`: the schema, then
scdiva.bench.config_checks in the workflow's order), which is what Snakemake runs before any job; a few
of them (a dataset, a method, a checkpoint and a schema error) still go through the CLI, so the wiring
of the checks into the workflow stays tested.
"""

from __future__ import annotations

import copy
import hashlib
import subprocess
import sys
from pathlib import Path

import anndata
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
PBMC = REPO_ROOT / "data" / "pbmc_3chem_symphony.h5ad"


def run_snakemake(workdir: Path, overlay: dict, *extra: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run the repository's workflow in ``workdir`` with ``overlay`` merged onto config/config.yaml."""
    configfile = workdir / "overlay.yaml"
    configfile.write_text(yaml.safe_dump(overlay))
    cmd = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(REPO_ROOT / "Snakefile"),
        "--directory", str(workdir),
        "--cores", "1",
        *extra,
        "--configfile", str(configfile),  # last: it takes several values
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=workdir)


def parse_time_error(workdir: Path, overlay: dict) -> str:
    """The message the workflow stops on while it is parsed, for config/config.yaml with ``overlay`` merged
    on top (as `--configfile` does), checked in-process: the schema (config/schema.yaml, filling in its
    defaults, as common.smk does), then every check of scdiva.bench.config_checks in the workflow's order."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import update_config, validate

    from scdiva.bench.config_checks import ConfigError, check_config, schema_error_message

    config = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())
    update_config(config, copy.deepcopy(overlay))  # the checks fill in defaults and absolute paths
    try:
        validate(config, str(REPO_ROOT / "config" / "schema.yaml"))
        check_config(config, REPO_ROOT, workdir)
    except WorkflowError as err:
        return schema_error_message(err.__cause__ or err.__context__)
    except ConfigError as err:
        return str(err)
    raise AssertionError(f"the config passes every parse-time check: {overlay}")


def assert_rejected_at_parse(workdir: Path, overlay: dict, *fragments: str) -> None:
    """The parse-time checks (in-process, :func:`parse_time_error`) reject ``overlay`` with every fragment in
    their message, and nothing was written to ``workdir``."""
    message = parse_time_error(workdir, overlay)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in the parse-time error:\n{message}"
    assert result_files(workdir) == [] and not (workdir / "resources").exists()


def result_files(workdir: Path) -> list[Path]:
    results = workdir / "results"
    return sorted(p for p in results.rglob("*") if p.suffix in (".h5ad", ".csv")) if results.exists() else []


def started_jobs(output: str) -> set[str]:
    """Rules of the jobs Snakemake started (its "rule x:" / "localrule x:" job headers)."""
    return {
        line.split()[-1].rstrip(":")
        for line in output.splitlines()
        if line.startswith(("rule ", "localrule ")) and line.rstrip().endswith(":")
    }


def assert_fails_cleanly(
    proc: subprocess.CompletedProcess, workdir: Path, *fragments: str, started: set[str]
) -> None:
    """Non-zero exit, every fragment in the output, only the ``started`` rules ran, no result files."""
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    for fragment in fragments:
        assert fragment in output, f"{fragment!r} not in Snakemake's output:\n{output[-3000:]}"
    # The default target needs every method, metric and report job; none of them may start.
    assert started_jobs(output) == started, output[-3000:]
    assert result_files(workdir) == []


PARSE_TIME = set()  # rejected while the workflow is parsed: no job at all
DATA_CHECK = {"download", "preprocess"}  # rejected by the validation in the preprocess job


def write_variant(path: Path, change) -> tuple[str, str]:
    """Write a changed copy of the embedded data; returns (path, sha256) for the overlay."""
    adata = anndata.read_h5ad(PBMC)
    adata = change(adata)
    adata.write_h5ad(path)
    return str(path), hashlib.sha256(path.read_bytes()).hexdigest()


def dataset_overlay(**entry) -> dict:
    return {"datasets": {"pbmc_3chem": entry}}


def test_missing_source_file(tmp_path):
    """Through the CLI (the dataset error kept end to end)."""
    proc = run_snakemake(tmp_path, dataset_overlay(source="data/no_such_file.h5ad"))
    assert_fails_cleanly(
        proc, tmp_path, "source file", "no_such_file.h5ad does not exist", "datasets.pbmc_3chem.source",
        started=PARSE_TIME,
    )
    assert not (tmp_path / "resources").exists()  # rejected while parsing: no job ran at all


def test_sha256_mismatch(tmp_path):
    wrong = "0" * 64
    proc = run_snakemake(tmp_path, dataset_overlay(sha256=wrong))
    assert_fails_cleanly(
        proc, tmp_path, "sha256 mismatch", wrong, "ac9987e219aa5eafa969e92739ba2c6f37d081d889aa3cbb15228de38758c0eb",
        "datasets.pbmc_3chem.sha256", started={"download"},
    )
    assert not list((tmp_path / "resources" / "datasets").glob("pbmc_3chem.h5ad*"))


def test_unknown_obs_key(tmp_path):
    assert_rejected_at_parse(
        tmp_path, dataset_overlay(batch_key="chemistry"), "obs column 'chemistry'", "datasets.pbmc_3chem.batch_key",
        "'donor'",
    )


def test_typo_in_a_second_dataset_fails_before_any_job(tmp_path):
    """obs of every configured dataset is read when the workflow is parsed: no job of any dataset starts."""
    second = {"source": str(PBMC), "batch_key": "donor", "label_key": "celltype"}
    proc = run_snakemake(tmp_path, {"datasets": {"pbmc_copy": second}})
    assert_fails_cleanly(proc, tmp_path, "dataset 'pbmc_copy': obs column 'celltype'",
                         "datasets.pbmc_copy.label_key", "'cell_type'", started=PARSE_TIME)
    assert not (tmp_path / "resources").exists()


def test_duplicated_cell_names(tmp_path):
    def duplicate(adata):
        adata.obs_names = [name if i % 2 else "cell_0" for i, name in enumerate(adata.obs_names)]
        return adata

    source, digest = write_variant(tmp_path / "duplicates.h5ad", duplicate)
    assert_rejected_at_parse(tmp_path, dataset_overlay(source=source, sha256=digest),
                             "dataset 'pbmc_3chem': 599 duplicated cell names", "'cell_0'", "obs_names_make_unique()")


def _text(path):
    path.write_text("cell,CD3E,MS4A1\nc1,1,0\n")


def _truncated(path):
    path.write_bytes(PBMC.read_bytes()[:200_000])


def _other_hdf5(path):
    import h5py
    import numpy as np

    with h5py.File(path, "w") as handle:  # the layout of a 10x Genomics .h5, not AnnData
        group = handle.create_group("matrix")
        group.create_dataset("data", data=np.arange(3))
        group.create_dataset("barcodes", data=np.array([b"c1", b"c2"]))


@pytest.mark.parametrize(("write", "reason"), [
    (_text, "not an HDF5 file or damaged"),
    (_truncated, "not an HDF5 file or damaged (Unable to synchronously open file (truncated file"),
    (_other_hdf5, "an HDF5 file without AnnData's ['X', 'obs', 'var'] (top-level entries: 'matrix')"),
], ids=["text", "truncated", "other-hdf5-layout"])
def test_unreadable_source(tmp_path, write, reason):
    path = tmp_path / "broken.h5ad"
    write(path)
    overlay = dataset_overlay(source=str(path), sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    assert_rejected_at_parse(tmp_path, overlay, f"dataset 'pbmc_3chem': source file {path} (config "
                             "`datasets.pbmc_3chem.source`) is not a readable AnnData .h5ad file", reason)


def test_unreadable_remote_source_is_named_in_the_download_log(tmp_path):
    """A URL source is first readable in its download job: the rule's log names the dataset and the key."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_download import FileServer

    page = b"<html>404 Not Found</html>\n"
    with FileServer(page) as server:
        proc = run_snakemake(tmp_path, dataset_overlay(source=server.url, sha256=hashlib.sha256(page).hexdigest()))
    assert_fails_cleanly(proc, tmp_path, "is not a readable AnnData .h5ad file", started={"download"})
    log = (tmp_path / "results" / "logs" / "download" / "pbmc_3chem.log").read_text()
    assert f"dataset 'pbmc_3chem': source file {server.url} (config `datasets.pbmc_3chem.source`)" in log
    assert "Traceback" not in log


def test_batch_column_nearly_unique_per_cell(tmp_path):
    """Batches below `preprocess.min_cells_per_batch` are dropped; if fewer than 2 would be left, it is an error."""

    def per_cell_batches(adata):
        adata.obs["well"] = [f"w{i // 3}" for i in range(adata.n_obs)]
        return adata

    source, digest = write_variant(tmp_path / "wells.h5ad", per_cell_batches)
    assert_rejected_at_parse(tmp_path, dataset_overlay(source=source, sha256=digest, batch_key="well"),
                             "obs column 'well' (`datasets.pbmc_3chem.batch_key`) has 400 batches but 0 of at least 10 "
                             "cells", "preprocess.min_cells_per_batch")


def test_relative_checkpoint_path_resolves_against_the_repository(tmp_path):
    """Through the CLI (the checkpoint error kept end to end): resolved against the repository, not `--directory`."""
    overlay = {"checkpoints": {"published_tiny": {"published": {
        "path": "resources/no_such_checkpoint", "sha256": {f: "0" * 64 for f in
                                                          ("config.json", "model.safetensors", "vocab.json")}}}}}
    proc = run_snakemake(tmp_path, overlay)
    assert_fails_cleanly(proc, tmp_path, "checkpoint 'published_tiny': directory "
                         f"{REPO_ROOT / 'resources' / 'no_such_checkpoint'}", "checkpoints.published_tiny.published.path",
                         "resolve against the repository root", started=PARSE_TIME)


def test_checkpoint_recipe_naming_an_unconfigured_dataset(tmp_path):
    overlay = {"checkpoints": {"scdiva_tiny": {"recipe": {"size": "tiny", "datasets": ["pbmc"]}}}}
    assert_rejected_at_parse(tmp_path, overlay, "checkpoint 'scdiva_tiny': config `checkpoints.scdiva_tiny.recipe."
                             "datasets` names datasets ['pbmc'] that are not configured", "pbmc_3chem")


def test_dataset_outside_the_checkpoint_corpus_fails_before_any_job(tmp_path):
    overlay = {"datasets": {"pancreas": {"source": str(REPO_ROOT / "data" / "pancreas_baron_human.h5ad"),
                                         "batch_key": "library", "label_key": "cell_type"}},
               "checkpoints": {"scdiva_tiny": {"recipe": {"size": "tiny", "datasets": ["pbmc_3chem"]}}}}
    assert_rejected_at_parse(tmp_path, overlay, "dataset 'pancreas': integration method scdiva_zeroshot needs "
                             "checkpoint 'scdiva_tiny', whose pretraining corpus",
                             "checkpoints.scdiva_tiny.recipe.datasets", "set `datasets: all`")


def test_published_checkpoint_that_does_not_know_the_genes_fails_before_any_job(tmp_path):
    from scdiva import ScDiVaModel

    model = ScDiVaModel.from_config("tiny", genes=[f"NOT_A_GENE{i}" for i in range(50)])
    directory = model.save_pretrained(tmp_path / "foreign_checkpoint")
    sha = {f: "0" * 64 for f in ("config.json", "model.safetensors", "vocab.json")}
    overlay = {"checkpoints": {"foreign": {"published": {"path": str(directory), "sha256": sha}}},
               "methods": {"scdiva_zeroshot": {"checkpoint": "foreign"}}}
    assert_rejected_at_parse(tmp_path, overlay, "checkpoint 'foreign' cannot serve dataset 'pbmc_3chem'",
                             "of the data's 1,767 genes are in the model's vocabulary", "`datasets: all`")


def test_non_integer_x(tmp_path):
    def log_normalise(adata):
        adata.X = adata.X.log1p()
        return adata

    source, digest = write_variant(tmp_path / "lognorm.h5ad", log_normalise)
    proc = run_snakemake(tmp_path, dataset_overlay(source=source, sha256=digest))
    assert_fails_cleanly(
        proc, tmp_path, "X has non-integer values", "datasets.pbmc_3chem.counts_layer", started=DATA_CHECK
    )


def test_single_batch(tmp_path):
    def one_chemistry(adata):
        return adata[adata.obs["donor"] == "5p"].copy()

    source, digest = write_variant(tmp_path / "one_batch.h5ad", one_chemistry)
    assert_rejected_at_parse(tmp_path, dataset_overlay(source=source, sha256=digest),
                             "has 1 batches ('5p') in the source file", "at least 2 are needed")


def test_unknown_method(tmp_path):
    """Through the CLI (the method error kept end to end)."""
    proc = run_snakemake(tmp_path, {"integration": {"methods": ["harmony", "scgen"]}})
    assert_fails_cleanly(proc, tmp_path, "unknown integration method 'scgen'", "built-in:", "harmony",
                         "entry_point", started=PARSE_TIME)
    assert not (tmp_path / "resources").exists()


def test_unknown_method_parameter(tmp_path):
    assert_rejected_at_parse(tmp_path, {"methods": {"scvi": {"epochs": 3}}},
                             "config methods.scvi has unknown parameter(s) ['epochs']", "max_epochs")


@pytest.mark.parametrize(
    ("overlay", "message", "cli"),
    [  # cli: through Snakemake (the schema error kept end to end), else the parse-time checks in-process
        ({"preprocess": {"n_hvg": 500}}, "invalid config at `preprocess`: Additional properties are not allowed ('n_hvg'",
         True),
        ({"preprocess": {"n_top_genes": "many"}}, "invalid config at `preprocess.n_top_genes`: 'many' is not of type",
         False),
    ],
    ids=["unknown-key", "wrong-type"],  # every level and type: test_config.py, without the CLI
)
def test_schema_violation(tmp_path, overlay, message, cli):
    if cli:
        proc = run_snakemake(tmp_path, overlay)
        assert_fails_cleanly(proc, tmp_path, message, started=PARSE_TIME)
    else:
        assert_rejected_at_parse(tmp_path, overlay, message)
    assert not (tmp_path / "resources").exists()

