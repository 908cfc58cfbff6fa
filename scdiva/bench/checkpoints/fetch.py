"""ScDiVa checkpoints as workflow inputs: fetch a published one with a sha256 per file.

A published checkpoint in config `checkpoints.<name>` names exactly one source:

- `path`: a local directory (or `file://` URL) - works offline;
- `url`: a base http(s) URL; each file is `<url>/<file>`;
- `repo` + `revision`: a Hugging Face repo id at a fixed revision (commit), through
  `huggingface_hub`, so its local cache serves offline runs (`HF_HUB_OFFLINE=1`).

`sha256` maps every file (config.json, model.safetensors, vocab.json) to its hex digest; a
mismatch stops the run and the half-fetched directory is removed, so no unverified checkpoint
ever looks complete. With `adapter` ("pkg.module:function", scdiva.bench.checkpoints.adapters), `sha256` names
the release's own files instead; they are fetched, verified and converted into the three.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from scdiva.bench.checkpoints.adapters import run_adapter
from scdiva.bench.checkpoints.files import CHECKPOINT_FILES, CheckpointError
from scdiva.bench.core.io import atomic_dir, sha256_of


def corpus_batches(dataset: str, batches):
    """A dataset's batch labels as a recipe checkpoint's pretraining corpus names them,
    ``<dataset>/<batch>`` (missing stay missing): batches of different datasets never share a decoder
    category, and a fine-tune on the dataset finds the categories its pretraining learned."""
    # deferred: imports pandas (this module is imported at workflow parse time)
    import pandas as pd

    labels = pd.Series(batches, copy=False)
    return (dataset + "/" + labels.astype(str)).where(labels.notna()).to_numpy()


def _source_kind(name: str, spec: Mapping[str, Any]) -> str:
    kinds = [k for k in ("path", "url", "repo") if spec.get(k)]
    if len(kinds) != 1:
        raise CheckpointError(f"config checkpoints.{name}.published needs exactly one of path, url or repo; got {kinds}")
    if kinds[0] == "repo" and not spec.get("revision"):
        raise CheckpointError(f"config checkpoints.{name}.published.repo needs a fixed `revision` (a commit)")
    if spec.get("adapter_options") and not spec.get("adapter"):
        raise CheckpointError(f"config checkpoints.{name}.published.adapter_options is set without `adapter`")
    if spec.get("adapter"):
        if not spec.get("sha256"):
            raise CheckpointError(f"config checkpoints.{name}.published.sha256 must name the release's files "
                                  "(the adapter's input) with their digests")
        return kinds[0]
    missing = [f for f in CHECKPOINT_FILES if f not in (spec.get("sha256") or {})]
    if missing:
        raise CheckpointError(f"config checkpoints.{name}.published.sha256 lacks digests for {missing}")
    return kinds[0]


def source_files(spec: Mapping[str, Any]) -> list[str]:
    """Files a published checkpoint fetches: ScDiVa's three, or with an `adapter` those `sha256` names."""
    return list(spec["sha256"]) if spec.get("adapter") else list(CHECKPOINT_FILES)


def _fetch_file(kind: str, spec: Mapping[str, Any], filename: str, target: Path) -> None:
    if kind == "path":
        source = Path(urlparse(spec["path"]).path if spec["path"].startswith("file://") else spec["path"])
        if not (source / filename).is_file():
            raise CheckpointError(f"checkpoint file {source / filename} not found (config `published.path` "
                                  f"{spec['path']!r}, file named in `published.sha256`); put it there or fix the path")
        shutil.copyfile(source / filename, target)
    elif kind == "url":
        url = f"{spec['url'].rstrip('/')}/{filename}"
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(target, "wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as err:
            raise CheckpointError(f"cannot download {url}: {err}") from err
    else:
        # deferred: imports huggingface_hub's download client (this module is imported at workflow parse time)
        from huggingface_hub import hf_hub_download

        try:
            cached = hf_hub_download(repo_id=spec["repo"], filename=filename, revision=str(spec["revision"]))
        except Exception as err:  # network, auth or missing file: say which
            from huggingface_hub import constants

            offline = constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
            hint = (" HF_HUB_OFFLINE is set and the file is not in the local Hugging Face cache (HF_HOME): fetch it "
                    "once with network access (same HF_HOME), or copy the files to a directory and give "
                    "`published.path` instead of `repo`." if offline else
                    " Check the repo id, the revision and network access (or HF_TOKEN for a gated repo); offline, "
                    "give `published.path` to a local copy.")
            raise CheckpointError(f"cannot fetch {filename} of Hugging Face repo {spec['repo']}@{spec['revision']} "
                                  f"({type(err).__name__}).{hint}") from err
        shutil.copyfile(cached, target)


def fetch_checkpoint(name: str, spec: Mapping[str, Any], out_dir: str | Path) -> Path:
    """Fetch, verify and install a published checkpoint into `out_dir` atomically."""
    kind = _source_kind(name, spec)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as staging:
        # an adapter's input (the release's files) is kept apart: only its output is installed
        fetched = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.src.", dir=out_dir.parent)) if spec.get("adapter") \
            else staging
        try:
            for filename in source_files(spec):
                target = fetched / filename
                _fetch_file(kind, spec, filename, target)
                expected = str(spec["sha256"][filename]).lower()
                actual = sha256_of(target)
                if actual != expected:
                    raise CheckpointError(f"checkpoint {name}: {filename} has sha256 {actual}, config says "
                                          f"{expected}; the source changed or the digest in the config is wrong")
            if spec.get("adapter"):
                run_adapter(name, spec, fetched, staging)
        finally:
            if fetched != staging:
                shutil.rmtree(fetched, ignore_errors=True)
    return out_dir


def check_vocabulary_serves(vocab_path: str | Path, var, *, checkpoint: str, dataset: str,
                            gene_id_column: str | None = None, min_coverage: float = 0.5) -> float:
    """Fraction of ``dataset``'s genes (``var`` of its file) in checkpoint ``checkpoint``'s vocabulary.

    Raises :class:`CheckpointError` naming both and the config change that fixes it when it is
    below ``min_coverage`` (the ScDiVa jobs would fail the same way, after the baselines ran).
    """
    # deferred: imports anndata, torch (this module is imported at workflow parse time)
    import anndata as ad

    from scdiva.data.vocab import GeneMismatchError, GeneVocab

    try:
        alignment = GeneVocab.load(vocab_path).align(ad.AnnData(var=var), gene_column=gene_id_column,
                                                     min_coverage=min_coverage)
    except GeneMismatchError as err:
        raise CheckpointError(
            f"checkpoint {checkpoint!r} cannot serve dataset {dataset!r}: {err} In the config: pretrain a "
            f"checkpoint on it (a `recipe` with `datasets: all`), or leave the scdiva methods out for it."
        ) from None
    return alignment.coverage
