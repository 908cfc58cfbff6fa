"""scdiva.bench.core.provenance: the run record, its id, the tables' run_id column and the report section."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from scdiva.bench.core import provenance as prov

REPO = Path(__file__).resolve().parents[2]
# tests/conftest.py by path: with several conftest.py files, `import conftest` may find another one
_spec = importlib.util.spec_from_file_location("scdiva_tests_conftest", REPO / "tests" / "conftest.py")
_conftest = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(_conftest)
snakemake_command, workflow_env = _conftest.snakemake_command, _conftest.workflow_env
PBMC = REPO / "data" / "pbmc_3chem_symphony.h5ad"
CONFIG = {"seeds": [0, 1], "datasets": {"pbmc": {"batch_key": "donor", "label_key": "cell_type"}}}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A real git repository with one commit."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.txt").write_text("a\n")
    _git(repo, "add", "a.txt")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    return repo


def test_config_hash_ignores_key_order_and_sees_values() -> None:
    reordered = {"datasets": CONFIG["datasets"], "seeds": [0, 1]}
    assert prov.config_sha256(CONFIG) == prov.config_sha256(reordered)
    assert prov.config_sha256(CONFIG) == hashlib.sha256(json.dumps(CONFIG, sort_keys=True).encode()).hexdigest()
    assert prov.config_sha256(CONFIG) != prov.config_sha256({**CONFIG, "seeds": [0]})


def test_code_version_reads_commit_and_dirty_tree(repo: Path, tmp_path: Path) -> None:
    code = prov.code_version(repo)
    assert code["commit"] == _git(repo, "rev-parse", "HEAD") and code["dirty"] is False
    (repo / "a.txt").write_text("changed\n")
    assert prov.code_version(repo)["dirty"] is True
    outside = prov.code_version(tmp_path / "not_git")
    assert outside["commit"] is None and outside["version"] == prov.package_versions(("scdiva",))["scdiva"]


def test_run_id_is_stable_and_changes_with_config_or_commit(repo: Path) -> None:
    code = prov.code_version(repo)
    rid = prov.run_id(prov.config_sha256(CONFIG), code)
    assert len(rid) == prov.RUN_ID_LENGTH and rid == prov.run_id(prov.config_sha256(dict(CONFIG)), dict(code))
    # dirtiness and time do not enter the id (so reruns of an unchanged workflow keep it)
    assert prov.run_id(prov.config_sha256(CONFIG), {**code, "dirty": True}) == rid
    assert prov.run_id(prov.config_sha256({**CONFIG, "seeds": [0]}), code) != rid
    assert prov.run_id(prov.config_sha256(CONFIG), {**code, "commit": "0" * 40}) != rid
    assert prov.run_id(prov.config_sha256(CONFIG), {"commit": None, "version": "1.0"}) != \
        prov.run_id(prov.config_sha256(CONFIG), {"commit": None, "version": "1.1"})


def test_record_holds_data_code_config_packages_hardware_and_times(repo: Path) -> None:
    record = prov.build_provenance(CONFIG, {"pbmc": PBMC}, repo=repo, started="2026-01-01T00:00:00+00:00")
    assert record["datasets"]["pbmc"]["sha256"] == hashlib.sha256(PBMC.read_bytes()).hexdigest()
    assert record["config_sha256"] == prov.config_sha256(CONFIG)
    assert record["code"]["commit"] == _git(repo, "rev-parse", "HEAD")
    assert record["run_id"] == prov.run_id(record["config_sha256"], record["code"])
    assert record["seeds"] == [0, 1]
    assert set(record["packages"]) == set(prov.PACKAGES) and record["packages"]["scdiva"]
    assert record["hardware"]["cores"] >= 1 and record["hardware"]["ram_gib"] > 0
    assert isinstance(record["hardware"]["gpus"], list)
    from scdiva.train.precision import cpu_has_bf16_matmul

    assert record["hardware"]["cpu_bf16_matmul"] is cpu_has_bf16_matmul()
    assert record["started"] < record["finished"]
    json.dumps(record)  # JSON-serialisable


def test_commit_moving_during_the_run_keeps_the_start_id(repo: Path) -> None:
    start = prov.code_version(repo)
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "second")
    record = prov.build_provenance(CONFIG, {}, repo=repo, start_commit=start["commit"])
    assert record["run_id"] == prov.run_id(prov.config_sha256(CONFIG), start)
    assert record["code"]["commit_at_start"] == start["commit"] != record["code"]["commit"]
    assert f"started at {start['commit']}" in prov.provenance_section(record).markdown


def test_missing_dataset_file_is_named() -> None:
    with pytest.raises(FileNotFoundError, match="'pbmc'.*missing.h5ad"):
        prov.build_provenance(CONFIG, {"pbmc": "missing.h5ad"}, repo=REPO)
    with pytest.raises(FileNotFoundError, match="input 'datasets.pbmc.metadata' file missing.csv does not exist"):
        prov.build_provenance(CONFIG, {}, repo=REPO, inputs={"datasets.pbmc.metadata": "missing.csv"})


def test_record_and_section_hold_every_input_with_its_sha256(repo: Path) -> None:
    claims = REPO / "config" / "paper_claims.yaml"
    inputs = {"datasets.pbmc.source": PBMC, "config/paper_claims.yaml": claims}
    record = prov.build_provenance(CONFIG, {}, repo=repo, inputs=inputs)
    assert record["inputs"] == {name: {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
                                for name, path in inputs.items()}
    markdown = prov.provenance_section(record).markdown
    for name, data in record["inputs"].items():
        assert f"| input `{name}` (`{data['path']}`) sha256 | `{data['sha256']}` |" in markdown


def test_run_id_column_is_last_and_replaces_an_old_one() -> None:
    table = pd.DataFrame({"dataset": ["d"], "method": ["m"], "metric": ["x"], "value": [0.5]})
    out = prov.with_run_id(table, "abc")
    assert list(out.columns) == [*table.columns, "run_id"] and (out["run_id"] == "abc").all()
    again = prov.with_run_id(out, "def")
    assert list(again.columns) == list(out.columns) and (again["run_id"] == "def").all()
    with pytest.raises(ValueError, match="run_id is empty"):
        prov.with_run_id(table, "")


def test_section_shows_id_commit_hashes_and_round_trips(repo: Path, tmp_path: Path) -> None:
    from scdiva.bench.report.document import load_sections

    (repo / "a.txt").write_text("dirty\n")
    record = prov.build_provenance(CONFIG, {"pbmc": PBMC}, repo=repo)
    section = prov.provenance_section(record)
    for text in (record["run_id"], record["code"]["commit"], record["config_sha256"],
                 record["datasets"]["pbmc"]["sha256"], "uncommitted changes"):
        assert text in section.markdown
    section.to_json(tmp_path / "s.json")
    assert load_sections([tmp_path / "s.json"])[0] == section
    prov.write_provenance(record, tmp_path / "provenance.json")
    assert json.loads((tmp_path / "provenance.json").read_text()) == record


# --- the workflow: provenance.json, run_id in every score table, the report section, no reruns -------

def check_workflow_provenance(workdir: Path) -> str:
    """Every check on a finished workflow directory; returns the dry-run log of a rerun."""
    results = workdir / "results"
    record = json.loads((results / "provenance.json").read_text())
    assert record["code"]["commit"] == _git(REPO, "rev-parse", "HEAD") or record["code"].get("commit_at_start")
    assert record["run_id"] == prov.run_id(record["config_sha256"], {
        **record["code"], "commit": record["code"].get("commit_at_start", record["code"]["commit"])})
    for name, data in record["datasets"].items():
        staged = workdir / "resources" / "datasets" / f"{name}.h5ad"
        assert data["sha256"] == hashlib.sha256(staged.read_bytes()).hexdigest()
    assert record["started"] and record["started"] <= record["finished"]
    tables = sorted((results / "tables").glob("*_scores.csv"))
    assert {t.name for t in tables} >= {"integration_scores.csv", "annotation_scores.csv"}
    for table in tables:
        frame = pd.read_csv(table)
        assert frame.columns[-1] == "run_id" and (frame["run_id"] == record["run_id"]).all(), table
    report = (results / "report" / "report.md").read_text()
    assert "## Provenance" in report and record["run_id"] in report and record["config_sha256"] in report
    dry = subprocess.run([*snakemake_command(workdir), "--dry-run"], cwd=REPO, capture_output=True, text=True,
                         env=workflow_env(), timeout=300)
    assert dry.returncode == 0, dry.stderr[-3000:]
    return dry.stdout + dry.stderr


@pytest.mark.slow
def test_workflow_writes_provenance_and_stamps_every_score_table(smoke_run) -> None:
    log = check_workflow_provenance(smoke_run.workdir)
    assert "Nothing to be done" in log, log[-3000:]  # the same config and commit rerun no job


# --- provenance.json against the DAG: every file a job reads that no job writes is recorded ---------

JOB_HEADER = re.compile(r"^(?:local)?(?:rule|checkpoint) (\S+):$")


def dag_jobs(log: str, workdir: Path) -> list[tuple[str, set[str], set[str]]]:
    """(rule, inputs, outputs) of every job a ``--dry-run`` log lists, as absolute paths."""
    jobs: list[tuple[str, set[str], set[str]]] = []
    for line in log.splitlines():
        header = JOB_HEADER.match(line)
        if header:
            jobs.append((header.group(1), set(), set()))
        elif jobs and line.startswith(("    input: ", "    output: ")):
            key, _, files = line.strip().partition(": ")
            paths = {str(p if Path(p).is_absolute() else workdir / p) for p in files.split(", ")}
            jobs[-1][1 if key == "input" else 2].update(paths)
    return jobs


def read_from_outside(jobs: list[tuple[str, set[str], set[str]]]) -> set[str]:
    """Files the jobs other than ``provenance`` read that no job writes (the DAG's source files)."""
    written = set().union(*(outputs for _, _, outputs in jobs))
    return {path for rule, inputs, _ in jobs if rule != "provenance" for path in inputs} - written


def full_dag(workdir: Path, *configfiles: Path) -> list[tuple[str, set[str], set[str]]]:
    dry = subprocess.run([*snakemake_command(workdir, *configfiles), "--dry-run", "--forceall"], cwd=REPO,
                         capture_output=True, text=True, env=workflow_env(), timeout=300)
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    jobs = dag_jobs(dry.stdout, workdir)
    assert {"download", "multimodal_prepare", "cross_species_prepare", "provenance"} <= {r for r, _, _ in jobs}
    return jobs


@pytest.mark.slow
def test_provenance_lists_every_file_the_run_read(smoke_run) -> None:
    """The smoke run's provenance.json names each source the DAG reads - the PBMC source, the
    multimodal and cross-species files, the paper's claims - with its sha256, and nothing else."""
    workdir = smoke_run.workdir
    record = json.loads((workdir / "results" / "provenance.json").read_text())
    read = read_from_outside(full_dag(workdir))
    data = REPO / "data"
    assert {str(data / f) for f in ("pbmc_3chem_symphony.h5ad", "citeseq_eccite_pbmc.h5ad",
                                    "pancreas_baron_human.h5ad", "pancreas_baron_mouse.h5ad")} <= read
    assert {d["path"] for d in record["inputs"].values()} == read
    for name, d in record["inputs"].items():
        assert d["sha256"] == hashlib.sha256(Path(d["path"]).read_bytes()).hexdigest(), name
    assert record["inputs"]["multimodal.datasets.citeseq_pbmc.source"]["path"] == str(data / "citeseq_eccite_pbmc.h5ad")


@pytest.mark.slow  # parses the workflow twice (no job runs)
def test_provenance_job_reads_embeddings_and_published_checkpoints(tmp_path) -> None:
    """With a precomputed embedding and a published checkpoint configured, the provenance job takes
    every file the other jobs read from outside (the DAG), and the checkpoint's files, read through
    the fetch job's params, besides."""
    import anndata as ad
    import yaml

    from scdiva import ScDiVaModel
    from scdiva.bench.checkpoints.files import CHECKPOINT_FILES

    checkpoint = tmp_path / "published"
    source = REPO / "data" / "pbmc_3chem_symphony.h5ad"
    ScDiVaModel.from_config("tiny", genes=ad.read_h5ad(source, backed="r").var_names).save_pretrained(str(checkpoint))
    embeddings = tmp_path / "embeddings"
    embeddings.mkdir()
    (embeddings / "pbmc_3chem.csv").write_text("cell,x\n")
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({
        "checkpoints": {"given": {"published": {"path": str(checkpoint), "sha256": {
            f: hashlib.sha256((checkpoint / f).read_bytes()).hexdigest() for f in CHECKPOINT_FILES}}}},
        "integration": {"methods": ["unintegrated", "scdiva_zeroshot", "precomputed"]},
        "methods": {"scdiva_zeroshot": {"checkpoint": "given"},
                    "precomputed": {"embedding": str(embeddings / "{dataset}.csv")}},
    }))
    jobs = full_dag(tmp_path / "wf", overlay)
    provenance_inputs = next(inputs for rule, inputs, _ in jobs if rule == "provenance")
    read = read_from_outside(jobs)
    assert str(embeddings / "pbmc_3chem.csv") in read
    assert read <= provenance_inputs
    assert {str(checkpoint / f) for f in CHECKPOINT_FILES} <= provenance_inputs
