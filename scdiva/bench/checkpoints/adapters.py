"""Checkpoint adapters: external weight layouts -> a ScDiVa checkpoint the workflow can run.

Why: models are often released as a plain PyTorch state dict under their training code's key names,
beside a gene list and a hyperparameter file (scGPT: ``best_model.pt`` + ``vocab.json`` + ``args.json``;
Lightning: a ``.ckpt`` whose ``state_dict`` keys carry a ``model.`` prefix). The workflow's methods load
only ScDiVa checkpoints (config.json + model.safetensors + vocab.json), so config names an adapter::

    checkpoints:
      my_release:
        published:
          path: /data/my_release            # or url, or repo + revision
          sha256: {model.pt: ..., genes.txt: ..., hparams.json: ...}   # the release's own files
          adapter: scdiva.bench.checkpoints.adapters:torch_state_dict               # or "pkg.module:function"
          adapter_options: {weights: model.pt, genes: genes.txt, ...}

The ``fetch_checkpoint`` job downloads and sha256-checks the release's files, runs the adapter on them,
loads the result with ``ScDiVaModel.from_pretrained`` and only then installs it, so every method sees a
verified ScDiVa checkpoint (docs/checkpoints.md has a worked example).

Adapter contract: ``adapter(source: Path, target: Path, **adapter_options) -> None``; ``source`` holds
exactly the files named in ``published.sha256`` (each verified), ``target`` is an empty directory to
fill with config.json, model.safetensors and vocab.json. Errors: :class:`CheckpointError` naming the
file or key and the fix.

Only weights map across: an adapter renames and reshapes parameters of ScDiVa's architecture. A model of
another architecture (scGPT's, Geneformer's) has no ScDiVa equivalent; wrap it as an embedding method
(config ``methods.<name>.entry_point``) instead.
"""

from __future__ import annotations

import difflib
import inspect
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from scdiva.bench.checkpoints.files import CHECKPOINT_FILES
from scdiva.bench.methods.record import MethodConfigError, load_entry_point
from scdiva.config import ScDiVaConfig
from scdiva.errors import CheckpointError

#: provenance written next to an adapted checkpoint: source files with their sha256, adapter, options
ADAPTED_FROM = "adapted_from.json"


def check_adapter(name: str, spec: Mapping[str, Any]) -> Callable[..., None]:
    """Checkpoint ``name``'s adapter function, importable and accepting its ``adapter_options`` (the
    workflow calls this at parse time, so a typo fails before any job runs)."""
    where = f"config `checkpoints.{name}.published.adapter`"
    try:
        function = load_entry_point(spec["adapter"], method=f"checkpoint {name} adapter", where=where)
    except MethodConfigError as err:
        raise CheckpointError(str(err)) from None
    options = dict(spec.get("adapter_options") or {})
    try:
        inspect.signature(function).bind(Path("source"), Path("target"), **options)
    except TypeError as err:
        raise CheckpointError(f"checkpoint {name!r}: adapter {spec['adapter']} does not take config "
                              f"`checkpoints.{name}.published.adapter_options` {sorted(options)} ({err}); its "
                              f"signature is {inspect.signature(function)}") from None
    return function


def run_adapter(name: str, spec: Mapping[str, Any], source: Path, target: Path) -> None:
    """Run checkpoint ``name``'s configured adapter on verified ``source`` files into ``target``, then
    load the result as a ScDiVa model (a checkpoint that does not load is never installed)."""
    options = dict(spec.get("adapter_options") or {})
    check_adapter(name, spec)(source, target, **options)
    missing = [f for f in CHECKPOINT_FILES if not (target / f).is_file()]
    if missing:
        raise CheckpointError(f"checkpoint {name!r}: adapter {spec['adapter']} did not write {missing}; an adapter "
                              f"must write {', '.join(CHECKPOINT_FILES)} (e.g. ScDiVaModel.save_pretrained)")
    # deferred: imports torch (this module is imported at workflow parse time)
    from scdiva.model import ScDiVaModel

    try:
        ScDiVaModel.from_pretrained(target, device="cpu")
    except (ValueError, OSError) as err:
        raise CheckpointError(f"checkpoint {name!r}: the output of adapter {spec['adapter']} does not load as a "
                              f"ScDiVa model: {err}") from None
    (target / ADAPTED_FROM).write_text(json.dumps(
        {"adapter": spec["adapter"], "adapter_options": options, "sha256": dict(spec["sha256"])}, indent=1))


def torch_state_dict(source: Path, target: Path, *, weights: str, genes: str, size: str = "tiny",
                     hyperparameters: str | None = None, config_fields: Mapping[str, str] | None = None,
                     state_dict_key: str | None = None,
                     key_map: Sequence[Sequence[str | None]] = ()) -> None:
    """A ScDiVa checkpoint from a PyTorch state dict whose keys follow another naming.

    ``weights``: the ``torch.save`` file, read with ``weights_only=True`` (tensors only, no code runs);
    ``state_dict_key``: the entry holding the state dict when the file nests it (Lightning: ``state_dict``).
    ``genes``: one gene id per line, in the order of the weights' gene-indexed rows (after ScDiVa's
    ``<pad>``, ``<cls>`` rows of the gene embedding). ``size`` gives every config field not read from
    ``hyperparameters`` (a JSON file) through ``config_fields`` (``{scdiva_field: key_in_that_file}``).
    ``key_map``: ``[pattern, replacement]`` regex rules, the first whose pattern matches a key's start renames
    it (``re.sub``, once); a ``null`` replacement drops the key (optimizer state, unused heads).
    Every ScDiVa parameter must receive exactly one tensor of its shape; errors name the key and the fix.
    """
    # deferred: imports torch (this module is imported at workflow parse time)
    import torch

    from scdiva.data.vocab import GeneVocab
    from scdiva.model import ScDiVaModel

    gene_ids = _read_genes(source, genes)
    overrides: dict[str, Any] = {}
    if config_fields:
        if hyperparameters is None:
            raise CheckpointError("adapter_options.config_fields needs adapter_options.hyperparameters (the JSON "
                                  "file the fields are read from)")
        values = json.loads(_source_file(source, hyperparameters, "hyperparameters").read_text())
        for field, key in config_fields.items():
            if key not in values:
                raise CheckpointError(f"{hyperparameters} has no key {key!r} (adapter_options.config_fields."
                                      f"{field}); its keys: {sorted(values)}")
            overrides[field] = values[key]
    try:
        config = ScDiVaConfig.from_size(size, **{**overrides, "n_genes": len(gene_ids)})
    except ValueError as err:
        raise CheckpointError(f"adapter_options (size {size!r}, config_fields): {err}") from None
    model = ScDiVaModel(config, GeneVocab(gene_ids), device="cpu")
    expected = model.module.state_dict()

    path = _source_file(source, weights, "weights")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle of objects other than tensors / containers, or not a torch file
        raise CheckpointError(f"cannot read {weights} as plain tensors (torch.load weights_only=True): {err}. "
                              "Re-save only the state dict (torch.save(model.state_dict(), ...)); "
                              "ScDiVa runs no code from checkpoint files.") from None
    if state_dict_key is not None:
        if not isinstance(loaded, Mapping) or state_dict_key not in loaded:
            top = sorted(loaded) if isinstance(loaded, Mapping) else type(loaded).__name__
            raise CheckpointError(f"{weights} has no entry {state_dict_key!r} (adapter_options.state_dict_key); "
                                  f"its top level: {top}")
        loaded = loaded[state_dict_key]
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise CheckpointError(f"{weights} is not a mapping of names to tensors; if the state dict is nested, "
                              "name its entry in adapter_options.state_dict_key")

    state = _rename(loaded, key_map, expected, weights)
    model.module.load_state_dict(state, strict=True)
    model.save_pretrained(target)


def _source_file(source: Path, filename: str, option: str) -> Path:
    path = source / filename
    if not path.is_file():
        raise CheckpointError(f"adapter_options.{option} names {filename!r}, which is not among the checkpoint's "
                              f"verified files {sorted(p.name for p in source.iterdir())}; add it with its "
                              "digest to `published.sha256`")
    return path


def _read_genes(source: Path, filename: str) -> list[str]:
    genes = [line.strip() for line in _source_file(source, filename, "genes").read_text().splitlines()]
    genes = [g for g in genes if g]
    duplicated = sorted({g for g in genes if genes.count(g) > 1}) if len(set(genes)) != len(genes) else []
    if not genes or duplicated:
        raise CheckpointError(f"{filename}: {'no genes' if not genes else f'duplicated genes {duplicated[:5]}'}; "
                              "it must list one unique gene id per line, in the order of the weights' rows")
    return genes


def _rename(loaded: Mapping[str, Any], key_map: Sequence[Sequence[str | None]], expected: Mapping[str, Any],
            weights: str) -> dict[str, Any]:
    rules = []
    for i, rule in enumerate(key_map):
        if len(rule) != 2:
            raise CheckpointError(f"adapter_options.key_map[{i}] is {rule!r}; each rule is [pattern, replacement]")
        try:
            rules.append((re.compile(str(rule[0])), rule[1]))
        except re.error as err:
            raise CheckpointError(f"adapter_options.key_map[{i}]: bad pattern {rule[0]!r}: {err}") from None
    state: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, tensor in loaded.items():
        rule = next(((p, r) for p, r in rules if p.match(key)), None)
        if rule is None:
            new = key  # keys already named as ScDiVa's pass through unchanged
        elif rule[1] is None:
            continue
        else:
            new = rule[0].sub(str(rule[1]), key, count=1)
        if new not in expected:
            close = difflib.get_close_matches(new, list(expected), n=3)
            raise CheckpointError(f"{weights} key {key!r} maps to {new!r}, which is no ScDiVa parameter (closest: "
                                  f"{close}); add or fix an adapter_options.key_map rule [pattern, replacement] for it, "
                                  "or [pattern, null] to drop it")
        if new in sources:
            raise CheckpointError(f"{weights} keys {sources[new]!r} and {key!r} both map to {new!r}; make the "
                                  "adapter_options.key_map patterns tell them apart")
        if tuple(tensor.shape) != tuple(expected[new].shape):
            raise CheckpointError(f"{weights} key {key!r} (mapped to {new!r}) has shape {tuple(tensor.shape)}, the "
                                  f"configured ScDiVa model expects {tuple(expected[new].shape)}; check "
                                  "adapter_options size / config_fields and the gene list's length")
        sources[new] = key
        state[new] = tensor.to(expected[new].dtype)
    missing = [k for k in expected if k not in state]
    if missing:
        raise CheckpointError(f"ScDiVa parameters {missing[:5]}{' ...' if len(missing) > 5 else ''} "
                              f"({len(missing)} in all) receive no tensor from {weights}: the file lacks them, or a "
                              "key_map rule with a null replacement drops them; map the file's key onto each")
    return state
