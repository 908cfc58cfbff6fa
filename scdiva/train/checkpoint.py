"""Pickle-free training checkpoints: model + optimizer tensors in safetensors, the rest in JSON.

A checkpoint is written to a temporary directory and renamed into place, so an interrupted
write never leaves a directory that looks complete.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from scdiva.bench.core.io import default_file_mode

LAST = "last"
TRAINER_STATE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.safetensors"


def save_safetensors(tensors: dict[str, torch.Tensor], path: str | Path,
                     metadata: dict[str, str] | None = None) -> None:
    """``safetensors.torch.save_file`` with the mode any new file gets under the umask.

    safetensors writes through a private temporary file (mode 0600) that it renames into place, so
    the weights would be unreadable to a group sharing the checkpoint while its JSON files are not.

    Parameters
    ----------
    tensors
        Name -> contiguous CPU tensor.
    path
        The file to write.
    metadata
        safetensors' string metadata (header ``__metadata__``).
    """
    save_file(tensors, str(path), metadata=metadata)
    os.chmod(path, default_file_mode())


def optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors (for safetensors) and JSON-able metadata."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_from_flat(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                        meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    for index, values in meta["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_training_checkpoint(checkpoint_dir: str | Path, save_model: Callable[[Path], None],
                             optimizer: torch.optim.Optimizer, trainer_state: dict[str, Any]) -> Path:
    """Write ``checkpoint_dir/last`` atomically; ``save_model(dir)`` writes the model files."""
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    tmp = checkpoint_dir / f".{LAST}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_model(tmp)
    tensors, meta = optimizer_to_flat(optimizer)
    save_safetensors(tensors, tmp / OPTIMIZER_FILE)
    (tmp / TRAINER_STATE).write_text(json.dumps({**trainer_state, "optimizer": meta}) + "\n")
    final, old = checkpoint_dir / LAST, checkpoint_dir / f".{LAST}.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def find_checkpoint(checkpoint_dir: str | Path) -> Path | None:
    path = Path(checkpoint_dir) / LAST
    return path if (path / TRAINER_STATE).is_file() else None


def load_trainer_state(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(trainer state JSON, optimizer tensors) of a checkpoint written by this module."""
    state = json.loads((path / TRAINER_STATE).read_text())
    return state, load_file(str(path / OPTIMIZER_FILE))
