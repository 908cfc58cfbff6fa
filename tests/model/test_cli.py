"""The ``scdiva`` command line on a small real file."""

import json

import anndata as ad
import pytest

from scdiva.cli import main


@pytest.fixture()
def small_h5ad(small_pbmc, tmp_path):
    path = tmp_path / "small.h5ad"
    small_pbmc.write_h5ad(path)
    return path


def test_train_embed_annotate_info(small_h5ad, small_pbmc, tmp_path, capsys):
    checkpoint = tmp_path / "ckpt"
    assert main(["train", "--data", str(small_h5ad), "--output", str(checkpoint), "--tasks", "integration",
                 "annotation", "--batch-key", "donor", "--label-key", "cell_type", "--max-steps", "3",
                 "--kl-weight", "2.5", "--history", str(tmp_path / "history.json")]) == 0
    assert len(json.loads((tmp_path / "history.json").read_text())) == 3
    assert json.loads((checkpoint / "config.json").read_text())["kl_weight"] == 2.5
    assert main(["embed", "--model", str(checkpoint), "--input", str(small_h5ad),
                 "--output", str(tmp_path / "embedded.h5ad")]) == 0
    assert ad.read_h5ad(tmp_path / "embedded.h5ad").obsm["X_scdiva"].shape == (120, 16)
    assert main(["annotate", "--model", str(checkpoint), "--input", str(small_h5ad),
                 "--output", str(tmp_path / "annotated.h5ad")]) == 0
    assert "scdiva_prediction" in ad.read_h5ad(tmp_path / "annotated.h5ad").obs
    assert main(["info", "--model", str(checkpoint)]) == 0
    n_types = small_pbmc.obs["cell_type"].nunique()
    assert f"task 'annotation': classifier on obs['cell_type'], {n_types} classes" in capsys.readouterr().out


def test_clear_errors_and_help(small_h5ad, tmp_path, capsys):
    assert main(["train", "--data", str(small_h5ad), "--output", str(tmp_path / "x"), "--tasks", "annotation",
                 "--max-steps", "1"]) == 2
    assert "needs label_key" in capsys.readouterr().err
    assert main(["embed", "--model", str(tmp_path / "missing"), "--input", str(small_h5ad),
                 "--output", str(tmp_path / "out.h5ad")]) == 2
    assert "neither an existing checkpoint directory" in capsys.readouterr().err
    assert not (tmp_path / "out.h5ad").exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["integrate", "--help"])
    assert exit_info.value.code == 0 and "--batch-key" in capsys.readouterr().out
