"""Shared helpers of the ``make bench`` scripts: one JSON file and one printed line per benchmark.

Every benchmark has a reference measured in the same run (absolute times on a shared machine are
noise), so the number to compare across runs and machines is ``ratio``:

    results/benchmarks/<name>.json = {"name", "value", "unit", "reference", "ratio", ...details}
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = Path(os.environ.get("SCDIVA_BENCH_DIR", REPO / "results" / "benchmarks"))


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def record(name: str, value: float, unit: str, reference: float | None, ratio: float | None, *,
           summary: str, **details: Any) -> dict[str, Any]:
    """Write ``OUT_DIR/<name>.json`` and print one line: ``name: summary``."""
    def clean(x):
        return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x

    result = {"name": name, "value": clean(value), "unit": unit, "reference": clean(reference),
              "ratio": clean(ratio), "summary": summary, **details,
              "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": commit(),
              "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}}
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / f"{name}.json").write_text(json.dumps(result, indent=2, default=float))
    print(f"{name}: {summary}", flush=True)
    return result


def best_time(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """Fastest of ``repeats`` timed calls after ``warmup`` untimed ones (seconds)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


# --- the workflow's files a benchmark reads (after `make run` or a run of config/ablation.yaml) ---

DEFAULT_DATA = Path("results/pbmc_3chem/preprocessed.h5ad")
DEFAULT_CHECKPOINT = Path("resources/checkpoints/scdiva_tiny")


def workflow_data(path: Path) -> Path:
    """``path`` if it is a file, else an error naming it and the workflow command that writes it."""
    if not path.is_file():
        raise SystemExit(f"--data {path}: no such file. The workflow's preprocess rule writes it: `make run` "
                         f"makes {DEFAULT_DATA}; another dataset's, `snakemake --cores 2 --configfile "
                         "config/ablation.yaml results/<dataset>/preprocessed.h5ad`")
    return path


def workflow_checkpoint(path: Path) -> Path:
    """``path`` if it is a checkpoint directory, else an error naming it and the workflow command that makes it."""
    if not (path / "model.safetensors").is_file():
        raise SystemExit(f"--checkpoint {path}: no ScDiVa checkpoint there (no model.safetensors). The workflow's "
                         f"checkpoint rules make it: `make run` makes {DEFAULT_CHECKPOINT}; a run of "
                         "config/ablation.yaml one per dataset and seed, e.g. `snakemake --cores 2 --configfile "
                         f"config/ablation.yaml {DEFAULT_CHECKPOINT}/pbmc_3chem/seed0/model.safetensors`")
    return path


def obs_keys(adata, path: Path) -> tuple[str, str]:
    """The batch and label columns the workflow preprocessed ``adata`` with (``uns["preprocess"]``)."""
    settings = adata.uns.get("preprocess", {})
    if "batch_key" not in settings or "label_key" not in settings:
        raise SystemExit(f"--data {path}: uns['preprocess'] names no batch_key / label_key; pass a file the "
                         "workflow's preprocess rule wrote (results/<dataset>/preprocessed.h5ad)")
    return str(settings["batch_key"]), str(settings["label_key"])
