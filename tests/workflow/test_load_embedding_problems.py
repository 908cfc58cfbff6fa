"""scdiva.bench.tasks.integration.metrics.load_embedding_files with ``problems``: a run that cannot be scored is
recorded with its status and a one-line reason naming the file, and the other runs still load.

Fast (small AnnData files, no metric): the mutation run (docs/mutation.md) uses these.
"""

from __future__ import annotations

import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from scdiva.bench.tasks.integration.metrics import load_embedding_files

CELLS = [f"c{i}" for i in range(6)]


def _write(path, cells=CELLS, *, emb=True, uns=None):
    adata = ad.AnnData(obs=pd.DataFrame(index=cells))
    if emb:
        adata.obsm["X_emb"] = np.arange(len(cells) * 2, dtype=np.float32).reshape(len(cells), 2)
    adata.uns.update(uns or {})
    adata.write_h5ad(path)
    return path


@pytest.fixture
def files(tmp_path):
    pre = ad.AnnData(X=np.ones((6, 2), dtype=np.float32),
                     obs=pd.DataFrame({"b": list("xxyyzz"), "l": list("ababab")}, index=CELLS))
    pre.obsm["X_pca"] = np.ones((6, 2), dtype=np.float32)
    pre.write_h5ad(tmp_path / "pre.h5ad")
    return {
        "pre": tmp_path / "pre.h5ad",
        "good": _write(tmp_path / "good.h5ad", CELLS[::-1]),
        "stub": _write(tmp_path / "stub.h5ad", emb=False, uns={"status": "timeout", "reason": "ran past 60 s"}),
        "no_emb": _write(tmp_path / "no_emb.h5ad", emb=False),
        "dups": _write(tmp_path / "dups.h5ad", ["c0", "c0", "c1", "c2", "c3", "c4"]),
        "other": _write(tmp_path / "other.h5ad", [*CELLS[:5], "stranger"]),
        "broken": tmp_path / "broken.h5ad",
    }


def test_each_problem_is_recorded_and_the_rest_load(files, caplog):
    files["broken"].write_text("not hdf5\nsecond line")
    runs = [("m", i, files[name]) for i, name in enumerate(("stub", "no_emb", "dups", "other", "broken", "good"))]
    problems: dict = {}
    with caplog.at_level(logging.ERROR, logger="scdiva.bench.tasks.integration.metrics"):
        ref, embeddings = load_embedding_files(runs, files["pre"], batch_key="b", label_key="l", problems=problems)
    assert list(embeddings) == [("m", 5)] and list(ref.obs_names) == CELLS
    assert problems[("m", 0)] == ("skipped", "integration run timeout: ran past 60 s")
    assert problems[("m", 1)] == ("failed", f"{files['no_emb']}: no obsm['X_emb']; rerun its integrate job")
    assert problems[("m", 2)] == ("failed", f"{files['dups']}: duplicate cell names ['c0']; rows cannot be "
                                            "matched to cells, rerun integrate")
    assert problems[("m", 3)] == ("failed", f"{files['other']} and {files['pre']} hold different cells; "
                                            "rerun integrate")
    status, reason = problems[("m", 4)]
    assert status == "failed" and reason.startswith(f"{files['broken']}: ") and "\n" not in reason
    assert len(problems) == 5
    failed = [r for r in caplog.records if "cannot be scored" in r.getMessage()]
    assert [r.getMessage().split(":")[0] for r in failed] == [f"m seed {i}" for i in (1, 2, 3, 4)]
    # the log line says which run, which file and why
    assert failed[0].getMessage().startswith(f"m seed 1: {files['no_emb']} cannot be scored: ")
    assert {r.name for r in failed} == {"scdiva.bench.tasks.integration.metrics"}  # the module's logger
    assert failed[1].getMessage() == (f"m seed 2: {files['dups']} cannot be scored: {files['dups']}: duplicate "
                                      "cell names ['c0']; rows cannot be matched to cells, rerun integrate")


def test_a_reason_without_the_file_name_gets_it_and_the_error_type(files):
    """An error whose text does not name the file (h5py's, for instance) is prefixed with the file and
    the error type; a KeyError's text is its message, without the quotes str() adds."""
    files["broken"].write_text("")
    problems: dict = {}
    load_embedding_files([("m", 0, files["broken"])], files["pre"], batch_key="b", label_key="l",
                         problems=problems)
    status, reason = problems[("m", 0)]
    assert status == "failed" and reason.startswith(f"{files['broken']}: ") and reason.count(str(files["broken"])) >= 1
    error_type = reason[len(f"{files['broken']}: "):].split(":")[0]
    assert error_type == "OSError", reason  # h5py's error for a file that is not HDF5
    problems.clear()
    load_embedding_files([("m", 0, files["no_emb"])], files["pre"], batch_key="b", label_key="l", problems=problems)
    assert not problems[("m", 0)][1].startswith("'")


def test_without_problems_the_first_bad_file_raises(files):
    with pytest.raises(KeyError, match="no obsm"):
        load_embedding_files([("m", 0, files["no_emb"])], files["pre"], batch_key="b", label_key="l")
    with pytest.raises(KeyError, match="no obsm"):  # a failure stub is no embedding either
        load_embedding_files([("m", 0, files["stub"])], files["pre"], batch_key="b", label_key="l")
