"""Where checkpoints live: local directories or Hugging Face repos; pickle files are refused."""

from __future__ import annotations

import os
from pathlib import Path

from scdiva.errors import CheckpointError
from scdiva.files import CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE

#: files that would be unpickled by torch.load / pickle: never loaded, even if present
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def damaged_file_error(path: Path, reason: str) -> CheckpointError:
    """The error for a checkpoint file that is there but cannot be read: names the file and the fix."""
    return CheckpointError(
        f"checkpoint file {path} is damaged: {reason}. Replace the checkpoint with an intact copy (copy it "
        "again, or write it again with save_pretrained); for a Hugging Face repo, remove it from the local "
        "cache (`huggingface-cli delete-cache`) so that it is downloaded again.")


def refuse_pickles(directory: Path) -> None:
    """Raise if ``directory`` holds a pickle-based weights file (those can run arbitrary code)."""
    found = sorted(p.name for p in directory.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if found:
        raise CheckpointError(
            f"{directory} contains pickle-based file(s) {found}; ScDiVa loads only safetensors "
            f"({WEIGHTS_FILE}) because unpickling can execute arbitrary code. Remove them or convert the "
            "weights to safetensors.")


def resolve_checkpoint(name_or_path: str | os.PathLike) -> Path:
    """Local directory for ``name_or_path``: a directory as is, else a Hugging Face repo id.

    Repo ids go through ``huggingface_hub.snapshot_download`` (which honours ``HF_HUB_OFFLINE``
    and the local cache, ``HF_HOME``) and only the files ScDiVa reads are fetched.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        directory = path
    elif path.exists():
        raise CheckpointError(f"{path} is a file; from_pretrained expects a checkpoint directory holding "
                              f"{CONFIG_FILE}, {WEIGHTS_FILE} and {VOCAB_FILE}")
    else:
        name = str(name_or_path)
        if name.count("/") != 1 or name.startswith((".", "/", "~")):
            raise CheckpointError(f"{name!r} is neither an existing checkpoint directory nor a Hugging Face "
                                  "repo id of the form 'org/name'")
        directory = _download(name)
    refuse_pickles(directory)
    missing = [f for f in (CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE) if not (directory / f).is_file()]
    if missing:
        raise CheckpointError(f"checkpoint {directory} is missing {missing}; a ScDiVa checkpoint holds "
                              f"{CONFIG_FILE}, {WEIGHTS_FILE} and {VOCAB_FILE} (written by save_pretrained)")
    return directory


def _download(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, allow_patterns=[CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE]))
    except Exception as err:  # network, auth, missing repo or offline-cache miss all end here
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
        raise CheckpointError(
            f"could not get ScDiVa checkpoint {repo_id!r} from the Hugging Face Hub"
            f"{' (HF_HUB_OFFLINE is set and it is not in the local cache)' if offline else ''}: "
            f"{type(err).__name__}: {err}. Without network access, train a checkpoint locally "
            "(`scdiva train ...` or ScDiVaModel.fit + save_pretrained) and pass its directory instead.") from err
