"""Start-up of a scoring process: the first ``compute_integration_metrics`` call with numba's on-disk
cache empty, beside the same call once the cache holds the kernels (scdiva.bench.core.numba_cache).

Each workflow job that scores embeddings is a fresh process, so this start-up is paid once per
metrics job. Three child processes score the same 480-cell embedding: the first warms JAX's compile
cache (kept for the other two, so only numba differs), the second starts with an empty numba cache
(what every process paid before the cache was used), the third with the cache the second filled.
``ratio`` = empty-cache seconds / filled-cache seconds (higher = more saved per process).

    python benchmarks/scoring_startup.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _bench import REPO, record

CHILD = """
import json, sys, time
import numpy as np
start = time.perf_counter()
from scdiva.bench.tasks.integration.metrics import compute_integration_metrics
rng = np.random.default_rng(0)
n = 480
labels = np.repeat(["a", "b", "c", "d"], n // 4)
batches = np.tile(["b1", "b2"], n // 2)
embedding = rng.normal(size=(n, 10)).astype(np.float32) + 4.0 * (labels[:, None] == "a")
values = compute_integration_metrics(embedding, batches=batches, labels=labels,
                                     pre_embedding=rng.normal(size=(n, 20)), progress=False)
print(json.dumps({"seconds": time.perf_counter() - start, "kbet": values["kbet"]}))
"""


def child(numba_dir: Path, jax_dir: Path) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(numba_dir), "JAX_COMPILATION_CACHE_DIR": str(jax_dir),
           "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=REPO, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        child(tmp / "numba_warmup", tmp / "jax")  # JAX's cache filled, so only numba differs below
        cold = child(tmp / "numba", tmp / "jax")
        warm = child(tmp / "numba", tmp / "jax")
    assert cold["kbet"] == warm["kbet"], "the cached kernels must give the same scores"
    ratio = cold["seconds"] / warm["seconds"]
    record("scoring_startup_s", warm["seconds"], "s", cold["seconds"], ratio,
           summary=(f"first scIB scoring call in a fresh process: {cold['seconds']:.1f} s with numba's cache "
                    f"empty, {warm['seconds']:.1f} s with it filled = {ratio:.1f}x (480 cells, one thread)"),
           cold_seconds=cold["seconds"], warm_seconds=warm["seconds"])


if __name__ == "__main__":
    main()
