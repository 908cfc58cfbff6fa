"""Damaged checkpoints fail with the package's CheckpointError (naming the file and the fix), the CLI
prints that as one line, and every file a checkpoint holds gets the umask's mode.

Real files throughout: a saved model whose files are then cut, overwritten or swapped on disk.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scdiva import ScDiVaModel
from scdiva.errors import CheckpointError
from scdiva.train.checkpoint import OPTIMIZER_FILE, TRAINER_STATE, save_training_checkpoint

REPO = Path(__file__).resolve().parents[2]
GENES = [f"GENE{i}" for i in range(30)]
SMALL = {"n_layers": 1, "d_model": 32, "n_heads": 2}


def _model(**overrides) -> ScDiVaModel:
    return ScDiVaModel.from_config("tiny", genes=GENES, device="cpu", **{**SMALL, **overrides})


@pytest.fixture()
def saved(tmp_path) -> Path:
    return _model().save_pretrained(tmp_path / "ckpt")


def _damage(saved: Path, how: str) -> Path:
    weights = saved / "model.safetensors"
    data = weights.read_bytes()
    if how == "truncated":
        weights.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        weights.write_bytes(os.urandom(len(data)))
    elif how == "empty":
        weights.write_bytes(b"")
    elif how == "html":  # a proxy's error page saved under the file's name
        weights.write_text("<!DOCTYPE html><html><body>502 Bad Gateway</body></html>\n")
    elif how == "padded":
        weights.write_bytes(data + b"\0" * 64)
    return weights


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty", "html", "padded"])
def test_damaged_weights_raise_checkpoint_error_naming_file_and_fix(saved, how):
    weights = _damage(saved, how)
    with pytest.raises(CheckpointError) as info:
        ScDiVaModel.from_pretrained(saved, device="cpu")
    message = str(info.value)
    assert f"checkpoint file {weights} is damaged" in message
    assert "Replace the checkpoint with an intact copy" in message and "huggingface-cli delete-cache" in message
    assert isinstance(info.value, ValueError) and isinstance(info.value, RuntimeError)  # one class for both


def test_weights_of_another_shape_raise_checkpoint_error(saved, tmp_path):
    """Intact safetensors whose tensors do not fit config.json (torch raises a RuntimeError today)."""
    other = _model(d_model=64, n_heads=2).save_pretrained(tmp_path / "other")
    shutil.copyfile(other / "model.safetensors", saved / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"model\.safetensors does not match .*config\.json: size mismatch "
                                              r"for .*Use the config\.json saved with these weights"):
        ScDiVaModel.from_pretrained(saved, device="cpu")


def test_damaged_vocabulary_names_the_file(saved):
    (saved / "vocab.json").write_text('{"genes": ["GENE0", ')
    with pytest.raises(CheckpointError, match=rf"checkpoint file {saved / 'vocab.json'} is damaged: not a ScDiVa "
                                              "vocabulary \\(JSONDecodeError"):
        ScDiVaModel.from_pretrained(saved, device="cpu")


def test_intact_checkpoint_still_loads(saved):
    model = ScDiVaModel.from_pretrained(saved, device="cpu")
    assert list(model.vocab.genes[:2]) == GENES[:2]


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_every_checkpoint_file_gets_the_umask_mode(tmp_path, umask):
    """safetensors writes through a 0600 temporary file it renames; the weights were 0600 while the
    JSON files were 0644. Training checkpoints (optimizer.safetensors) too."""
    old = os.umask(umask)
    try:
        model = _model()
        directory = model.save_pretrained(tmp_path / "ckpt")
        optimizer = torch.optim.Adam(model.module.parameters())
        for p in model.module.parameters():
            p.grad = torch.zeros_like(p)
        optimizer.step()  # optimizer state with tensors
        last = save_training_checkpoint(tmp_path / "train", model._write_files, optimizer, {"step": 1})
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    files = [*sorted(directory.iterdir()), *sorted(last.iterdir())]
    assert {f.name for f in files} >= {"model.safetensors", "config.json", "vocab.json", OPTIMIZER_FILE,
                                       TRAINER_STATE}
    modes = {f"{f.parent.name}/{f.name}": oct(f.stat().st_mode & 0o777) for f in files}
    assert set(modes.values()) == {oct(expected)}, modes


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "scdiva.cli", *args], capture_output=True, text=True,
                          timeout=300, env=env, cwd=REPO)


def _one_line_error(proc: subprocess.CompletedProcess, command: str, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"scdiva {command}: error: "), proc.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_cli_prints_one_line_for_a_damaged_checkpoint_and_a_foreign_input(saved, small_pbmc, tmp_path):
    data = tmp_path / "cells.h5ad"
    small_pbmc.write_h5ad(data)
    weights = _damage(saved, "truncated")
    _one_line_error(_cli("info", "--model", str(saved)), "info", f"checkpoint file {weights} is damaged")
    out = tmp_path / "out.h5ad"
    _one_line_error(_cli("embed", "--model", str(saved), "--input", str(data), "--output", str(out)), "embed",
                    f"checkpoint file {weights} is damaged", "Replace the checkpoint")
    assert not out.exists()
    text = tmp_path / "cells.csv.h5ad"
    text.write_text("cell,GENE0\nc1,3\n")
    _one_line_error(_cli("embed", "--model", str(saved), "--input", str(text), "--output", str(out)), "embed",
                    f"input file {text} is not a readable AnnData .h5ad file")
