"""Check a ScDiVa checkpoint directory's files before a job loads them (cheap: headers only).

A damaged `model.safetensors` (an interrupted copy, a disk error, an HTML error page saved under
that name) otherwise fails deep in the safetensors library with a message that names neither the
checkpoint nor the fix. :func:`check_checkpoint_dir` reads the JSON files and the safetensors
header and checks the tensor offsets against the file size, without loading any weights.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable
from pathlib import Path

from scdiva.bench.checkpoints.files import CHECKPOINT_FILES, CheckpointError
from scdiva.files import WEIGHTS_FILE

_MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors format's own limit


def safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a complete safetensors file, or None when its header and size agree.

    Cheap: reads the header only (``ScDiVaModel.from_pretrained`` runs it before loading weights).

    Parameters
    ----------
    path
        The ``.safetensors`` file.
    """
    size = path.stat().st_size
    if size < 8:
        return f"{size} bytes, shorter than the 8-byte header length"
    with open(path, "rb") as handle:
        (header_len,) = struct.unpack("<Q", handle.read(8))
        if header_len > min(_MAX_HEADER_BYTES, size - 8):
            return f"its header claims {header_len} bytes but the file has {size}"
        try:
            header = json.loads(handle.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            return f"its header is not JSON ({err})"
    if not isinstance(header, dict):
        return "its header is not a JSON object"
    ends = [int(t["data_offsets"][1]) for k, t in header.items()
            if k != "__metadata__" and isinstance(t, dict) and "data_offsets" in t]
    if len(ends) != len([k for k in header if k != "__metadata__"]):
        return "its header lists tensors without data_offsets"
    expected = 8 + header_len + max(ends, default=0)
    if expected != size:
        return f"its tensors need {expected} bytes but the file has {size} (truncated or padded)"
    return None


def check_checkpoint_dir(directory: str | os.PathLike[str], name: str | None = None) -> None:
    """Raise :class:`CheckpointError` naming the checkpoint, the file and the fix if a file is damaged."""
    directory = Path(directory)
    name = name or directory.name
    fix = (f"Delete {directory} so the workflow fetches or pretrains it again (config `checkpoints.{name}`), "
           "or replace the file with an intact copy.")
    for filename in CHECKPOINT_FILES:
        path = directory / filename
        if not path.is_file():
            raise CheckpointError(f"checkpoint {name!r}: {path} is missing. {fix}")
        if filename.endswith(".json"):
            try:
                json.loads(path.read_text())
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise CheckpointError(f"checkpoint {name!r}: {path} is not valid JSON ({err}). {fix}") from None
        else:
            problem = safetensors_problem(path)
            if problem:
                raise CheckpointError(f"checkpoint {name!r}: {path} is not a valid safetensors file: {problem}. {fix}")


def check_checkpoint_inputs(paths: Iterable[str | os.PathLike[str]]) -> None:
    """:func:`check_checkpoint_dir` for every checkpoint directory among a job's input files."""
    for directory in sorted({Path(p).parent for p in paths if Path(p).name == WEIGHTS_FILE}):
        check_checkpoint_dir(directory)
