"""Methods brought by config alone (scdiva.bench.methods.catalog): an entry point defined in this
file, a command-line program and a precomputed embedding, for integration and annotation; and the
errors for a bad entry point, a failing command and an embedding with missing cells, each naming
the method. The last test runs them through a real Snakemake workflow."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from scdiva.bench.api import annotate, integrate
from scdiva.bench.core.sampling import split_reference_query
from scdiva.bench.methods.catalog import get_method
from scdiva.bench.methods.external import record_from_config
from scdiva.bench.methods.record import MethodConfigError, MethodError

HERE = Path(__file__).resolve().parent


# --- a user's own methods, defined in this test file --------------------------------------------


def first_pcs(adata, *, batch_key, label_key, seed, params, threads):
    """A user's integration method: the first `n` principal components."""
    adata.obsm["X_emb"] = np.asarray(adata.obsm["X_pca"][:, : int(params["n"])], dtype=np.float32)


def nearest_centroid(reference, *, label_key, batch_key, seed, params, threads):
    """A user's annotation method: nearest class centroid in PCA space."""
    from scdiva.bench.tasks.annotation.base import FittedAnnotator

    labels = reference.obs[label_key].astype(str)
    centroids = pd.DataFrame(reference.obsm["X_pca"], index=reference.obs_names).groupby(labels.to_numpy()).mean()

    def predict(query):
        dist = ((query.obsm["X_pca"][:, None, :] - centroids.to_numpy()[None]) ** 2).sum(-1)
        return centroids.index.to_numpy()[dist.argmin(1)]

    return FittedAnnotator(predict=predict)


# A command-line integration method: any program that reads {input} and writes obsm["X_emb"] to {output}.
# It writes the cells in reverse order, so the embedding is only right if it is matched by cell name.
INTEGRATION_SCRIPT = textwrap.dedent("""
    import sys, anndata, numpy as np
    src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if n < 0:
        sys.exit("negative dimensions requested")
    a = anndata.read_h5ad(src)[::-1]
    out = anndata.AnnData(obs=a.obs[[]])
    out.obsm["X_emb"] = np.asarray(a.obsm["X_pca"][:, :n])
    out.write_h5ad(dst)
""")
# A command-line annotation method: reads {reference} and {query}, writes a CSV (cell, label).
ANNOTATION_SCRIPT = textwrap.dedent("""
    import sys, anndata, pandas as pd
    from sklearn.neighbors import KNeighborsClassifier
    ref, query, out, label_key = anndata.read_h5ad(sys.argv[1]), anndata.read_h5ad(sys.argv[2]), sys.argv[3], sys.argv[4]
    assert label_key not in query.obs, "the query's labels must be hidden"
    knn = KNeighborsClassifier(5).fit(ref.obsm["X_pca"], ref.obs[label_key].astype(str))
    pd.DataFrame({"label": knn.predict(query.obsm["X_pca"])}, index=query.obs_names).to_csv(out)
""")


@pytest.fixture(scope="module")
def scripts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("user_methods")
    (folder / "embed.py").write_text(INTEGRATION_SCRIPT)
    (folder / "label.py").write_text(ANNOTATION_SCRIPT)
    return folder


def _integrate(adata, record, **files):
    out = adata.copy()
    integrate(out, record, batch_key="donor", label_key="cell_type", seed=0, params={}, threads=1, **files)
    return out.obsm["X_emb"]


def test_entry_point_defined_in_a_test_file(pbmc_small):
    record = record_from_config("first_pcs", {"entry_point": f"{__name__}:first_pcs", "params": {"n": 7}})
    assert record.task == "integration" and record.kind == "entry_point"
    np.testing.assert_allclose(_integrate(pbmc_small, record), pbmc_small.obsm["X_pca"][:, :7])


def test_command_line_method_is_matched_by_cell_name(pbmc_small, scripts):
    record = record_from_config("cli_pcs", {"command": f"{sys.executable} {scripts / 'embed.py'} {{input}} {{output}} 5"})
    np.testing.assert_allclose(_integrate(pbmc_small, record), pbmc_small.obsm["X_pca"][:, :5], rtol=1e-6)


def test_precomputed_embedding_matched_by_cell_name(pbmc_small, tmp_path):
    table = pd.DataFrame(pbmc_small.obsm["X_pca"][:, :4], index=pbmc_small.obs_names)
    extra = pd.DataFrame(np.zeros((3, 4)), index=["dropped_by_qc_1", "dropped_by_qc_2", "dropped_by_qc_3"])
    pd.concat([extra, table.iloc[::-1]]).to_csv(tmp_path / "emb.csv")  # other order, extra cells
    record = record_from_config("precomputed", {"embedding": "emb.csv"}, base_dir=tmp_path)
    np.testing.assert_allclose(_integrate(pbmc_small, record), pbmc_small.obsm["X_pca"][:, :4], rtol=1e-6)


def test_embedding_with_missing_cells_names_the_method(pbmc_small, tmp_path):
    table = pd.DataFrame(pbmc_small.obsm["X_pca"][:, :4], index=pbmc_small.obs_names).iloc[10:]
    table.to_csv(tmp_path / "emb.csv")
    record = record_from_config("partial_emb", {"embedding": str(tmp_path / "emb.csv")})
    with pytest.raises(MethodError, match=r"method 'partial_emb'.* lacks 10 of the 480 cells"):
        _integrate(pbmc_small, record)


@pytest.mark.parametrize(("entry_point", "message"), [
    ("no_such_package.mod:fn", r"method 'bad'.*cannot import module 'no_such_package.mod'"),
    (f"{__name__}:no_such_function", r"method 'bad'.*has no callable 'no_such_function'"),
    ("not an entry point", r"method 'bad'.*not of the form 'package.module:function'"),
])
def test_bad_entry_point_names_the_method(entry_point, message):
    with pytest.raises(MethodConfigError, match=message):
        record_from_config("bad", {"entry_point": entry_point})


def test_failing_command_names_the_method_and_shows_its_error(pbmc_small, scripts):
    record = record_from_config("cli_bad", {"command": f"{sys.executable} {scripts / 'embed.py'} {{input}} {{output}} -1"})
    with pytest.raises(MethodError, match=r"(?s)integration method 'cli_bad': command failed with exit status 1.*"
                                          "negative dimensions requested"):
        _integrate(pbmc_small, record)


def test_malformed_definitions_are_refused_before_any_work():
    with pytest.raises(MethodConfigError, match=r"methods.x.*exactly one of"):
        record_from_config("x", {"command": "a {input} {output}", "embedding": "e.csv"})
    with pytest.raises(MethodConfigError, match=r"unknown placeholder 'inptu'"):
        record_from_config("x", {"command": "prog {inptu} {output}"})
    with pytest.raises(MethodConfigError, match=r"unknown keys \['max_epochs'\].*under `params`"):
        record_from_config("x", {"entry_point": f"{__name__}:first_pcs", "max_epochs": 3})
    with pytest.raises(MethodConfigError, match="built-in integration method"):
        get_method("integration", "scvi", {"entry_point": f"{__name__}:first_pcs"})


@pytest.fixture(scope="module")
def split(pbmc_small):
    return split_reference_query(pbmc_small, batch_key="donor", label_key="cell_type",
                                 reference_batches=["3pv2", "5p"], query_batches=["3pv1"])


@pytest.mark.parametrize("kind", ["entry_point", "command"])
def test_annotation_methods_from_config(split, scripts, kind):
    reference, query = split
    entry = ({"entry_point": f"{__name__}:nearest_centroid"} if kind == "entry_point" else
             {"command": f"{sys.executable} {scripts / 'label.py'} {{reference}} {{query}} {{output}} {{label_key}}"})
    record = record_from_config("mine", {"task": "annotation", **entry})
    result = annotate(record, reference, query, label_key="cell_type", batch_key="donor", timing_repeats=1)
    assert result.predictions.index.equals(query.obs_names)
    assert result.scores["accuracy"] > 0.7, result.scores  # PBMC types separate well in PCA space


# --- through the workflow ------------------------------------------------------------------------


@pytest.mark.slow
def test_config_defined_methods_run_in_the_workflow(workflow_tools, scripts, tmp_path):
    """A real Snakemake run: the three kinds of integration method and a command annotation method,
    defined in a --configfile only; then a failing command stops its job with the method named."""
    workdir = tmp_path / "run"
    embed = f"{sys.executable} {scripts / 'embed.py'} {{input}} {{output}} 6"
    emb_dir = tmp_path / "embeddings"
    emb_dir.mkdir()
    config = {
        "datasets": {"pbmc_3chem": {"subsample": 300}},
        "integration": {"methods": ["unintegrated", "first_pcs", "cli_pcs", "precomputed"]},
        "methods": {
            "first_pcs": {"entry_point": "test_config_methods:first_pcs", "params": {"n": 3}},
            "cli_pcs": {"command": embed},
            "precomputed": {"embedding": str(emb_dir / "{dataset}.csv")},
            "cli_labels": {"task": "annotation", "command": f"{sys.executable} {scripts / 'label.py'} {{reference}} "
                                                            "{query} {output} {label_key}"},
        },
        "annotation": {"methods": ["cli_labels"]},
    }
    (tmp_path / "methods.yaml").write_text(yaml.safe_dump(config))
    env = {**workflow_tools.env(), "PYTHONPATH": str(HERE)}  # the entry point's module: this file
    cmd = [*workflow_tools.command(workdir, tmp_path / "methods.yaml"), "--cores", "1"]
    # 1) parse time: the missing embedding file is named before any job runs
    proc = subprocess.run([*cmd, "-n"], cwd=workflow_tools.repo, capture_output=True, text=True, env=env)
    assert proc.returncode != 0 and "method 'precomputed': precomputed embedding" in proc.stderr + proc.stdout
    # 2) the run: preprocess, then the precomputed file is made from the preprocessed cells
    targets = ["results/pbmc_3chem/preprocessed.h5ad"]
    config["integration"]["methods"].remove("precomputed")
    (tmp_path / "methods.yaml").write_text(yaml.safe_dump(config))
    subprocess.run([*cmd, *targets], cwd=workflow_tools.repo, check=True, capture_output=True, env=env)
    import anndata

    pre = anndata.read_h5ad(workdir / targets[0])
    pd.DataFrame(pre.obsm["X_pca"][:, :2], index=pre.obs_names).iloc[::-1].to_csv(emb_dir / "pbmc_3chem.csv")
    config["integration"]["methods"].append("precomputed")
    (tmp_path / "methods.yaml").write_text(yaml.safe_dump(config))
    targets = [f"results/pbmc_3chem/integration/{m}/seed0.h5ad" for m in config["integration"]["methods"]]
    targets.append("results/pbmc_3chem/annotation/cli_labels/seed0.scores.csv")
    proc = subprocess.run([*cmd, *targets], cwd=workflow_tools.repo, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for method, dims in {"first_pcs": 3, "cli_pcs": 6, "precomputed": 2}.items():
        emb = anndata.read_h5ad(workdir / f"results/pbmc_3chem/integration/{method}/seed0.h5ad")
        assert emb.obs_names.equals(pre.obs_names)
        np.testing.assert_allclose(emb.obsm["X_emb"], pre.obsm["X_pca"][:, :dims], rtol=1e-5)
    scores = pd.read_csv(workdir / targets[-1]).set_index("metric")["value"]
    assert scores["accuracy"] > 0.7
    # 3) a failing command: the job records the run as failed (it completes, so other runs go on) and leaves a
    # stub with no embedding; the log names the method
    config["methods"]["cli_broken"] = {"command": embed.replace("{output} 6", "{output} -1")}
    config["integration"]["methods"].append("cli_broken")
    (tmp_path / "methods.yaml").write_text(yaml.safe_dump(config))
    target = "results/pbmc_3chem/integration/cli_broken/seed0.h5ad"
    proc = subprocess.run([*cmd, target], cwd=workflow_tools.repo, capture_output=True, text=True, env=env)
    log = (workdir / "results/logs/integrate/pbmc_3chem.cli_broken.seed0.log").read_text()
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((workdir / target.replace(".h5ad", ".run.json")).read_text())
    assert record["status"] == "failed", record
    assert record["reason"].startswith("integration method 'cli_broken': command failed with exit status 1"), record
    assert "X_emb" not in anndata.read_h5ad(workdir / target).obsm
    assert "integration method 'cli_broken': command failed with exit status 1" in log
    assert "negative dimensions requested" in log


def test_roles_come_from_the_records():
    """The report's "model under test" and "best baseline" read the records, not method names."""
    from scdiva.bench.methods.catalog import method_role, model_methods

    assert model_methods("integration") == ["scdiva_finetuned", "scdiva_zeroshot"]
    assert model_methods("annotation") == ["scdiva"]
    assert method_role("unintegrated") == "control" and method_role("harmony") == "baseline"
    assert method_role("my_own_method") == "baseline"  # config-defined methods compete as baselines
