"""How the data path scales with cells: peak RSS and cells/s of each stage at 10K, 100K (and 1M) cells.

Stages, each in its own process (so its peak RSS, ``ru_maxrss`` of that process, is its own):

* ``preprocess`` - read the counts (``scdiva.bench.core.formats.read_counts``) and preprocess them
  (``scdiva.bench.core.preprocess.preprocess``: QC, normalise, log1p, HVGs, PCA), as the workflow's
  preprocess job does; writes ``preprocessed.h5ad``;
* ``embed`` - ScDiVa (tiny, fresh weights: the cost does not depend on their values) latent of
  every cell, streamed from the preprocessed file as the workflow's job does
  (``scdiva.bench.core.formats.open_rows_backed``: obs + var in memory, rows read from disk a batch at a
  time); resident memory is sampled every 2 s (``rss_trace_mb``). ``--embed-prefix N``: only the first N
  cells, from the generated counts file itself (for a 1M-cell file that cannot be embedded whole in the
  time available: the trace shows whether memory stays flat; it is not a 1M-cell measurement);
* ``finetune`` - ScDiVa's integration fine-tune streamed as the workflow's ``scdiva_finetuned`` job runs
  it: ``--finetune-steps`` optimizer steps of 128 cells drawn at random, each batch's rows read from the
  backed preprocessed file (the model's gene statistics come from a one-step fit on the first 2,000 cells
  beforehand, as a checkpoint brings them). Cells/s counts the cells trained on; peak RSS shows that
  training memory does not grow with the file; ``finetune_in_memory`` runs the same steps on the file
  loaded into memory, the reference for the cost of streaming;
* ``metrics`` - the metrics stage (``scdiva.bench.tasks.integration.metrics.compute_integration_metrics``) on the PCA
  embedding, with its defaults (exact neighbours up to 50K cells, approximate above; the silhouette
  metrics on a 50K-cell stratified subsample above 50K). Its time includes JAX/numba compilation
  (~30-100 s, paid once per metrics job).

Data: ``benchmarks/generate_dataset.py`` (cells resampled from the embedded PBMC file, 8 batches),
generated under ``--workdir`` if missing. The scaling exponent of a stage is the slope of log(seconds)
on log(cells) between the smallest and largest size measured (1 = linear, 2 = quadratic).

    nice -n 10 python benchmarks/scale.py --cells 10000 100000 --workdir /tmp/scale
    python benchmarks/scale.py --cells 1000000 --stages preprocess embed --workdir /tmp/scale
    python benchmarks/scale.py --cells 1000000 --stages embed --embed-prefix 60000 --workdir /tmp/scale
    python benchmarks/scale.py --cells 10000 100000 --stages preprocess finetune finetune_in_memory --workdir /tmp/scale

Writes ``results/benchmarks/scale.json`` (``SCDIVA_BENCH_DIR`` moves it) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from _bench import REPO, record

STAGES = ("preprocess", "embed", "finetune", "finetune_in_memory", "metrics")


def run_stage(stage: str, data: Path, workdir: Path, threads: int, prefix: int | None = None,
              steps: int = 200) -> dict:
    """Run ``stage`` in a child process; its own seconds and cells, plus the child's peak RSS (MB)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "NUMBA_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}
    out = workdir / f"{data.stem}.{stage}.json"
    proc = subprocess.Popen([sys.executable, __file__, "--child", stage, "--data", str(data), "--workdir",
                             str(workdir), "--threads", str(threads), "--result", str(out),
                             "--finetune-steps", str(steps), *(["--embed-prefix", str(prefix)] if prefix else [])],
                            env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"stage {stage} on {data} failed (exit {os.waitstatus_to_exitcode(status)})")
    result = json.loads(out.read_text())
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux: kilobytes
    result["cells_per_s"] = result["cells"] / result["seconds"]
    return result


class RssSampler:
    """This process's resident memory every ``interval`` s while a stage runs: a flat trace shows that memory
    does not grow with the cells processed (``ru_maxrss`` alone gives only the peak)."""

    def __init__(self, interval: float = 2.0):
        import threading

        self.samples: list[tuple[float, float]] = []
        self._start, self._interval, self._done = time.perf_counter(), interval, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def rss_mb() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def _run(self) -> None:
        while not self._done.is_set():
            self.samples.append((time.perf_counter() - self._start, self.rss_mb()))
            self._done.wait(self._interval)

    def stop(self) -> dict[str, float]:
        """RSS (MB) at the start, at 25/50/75 % of the run's time, at its end, and its maximum."""
        self._done.set()
        self._thread.join()
        self.samples.append((time.perf_counter() - self._start, self.rss_mb()))
        total = self.samples[-1][0]
        at = {f"{int(q * 100)}%": next(r for t, r in self.samples if t >= q * total) for q in (0.25, 0.5, 0.75)}
        return {"start": self.samples[0][1], **at, "end": self.samples[-1][1],
                "max": max(r for _, r in self.samples), "n_samples": len(self.samples)}


def child(stage: str, data: Path, workdir: Path, threads: int, result_path: Path, prefix: int | None = None,
          steps: int = 200) -> None:
    import anndata as ad
    import numpy as np

    pre = workdir / f"{data.stem}.preprocessed.h5ad"
    start = time.perf_counter()
    if stage == "preprocess":
        from scdiva.bench.core.formats import read_counts
        from scdiva.bench.core.preprocess import PreprocessSettings, preprocess

        adata = read_counts(data, dataset=data.stem)
        out = preprocess(adata, dataset=data.stem, batch_key="batch", label_key="cell_type",
                         settings=PreprocessSettings(n_top_genes=2000))
        cells = out.n_obs
        out.write_h5ad(pre)
        extra = {"genes": int(out.n_vars)}
    elif stage == "embed":
        import torch

        from scdiva import ScDiVaModel
        from scdiva.bench.core.formats import open_rows_backed
        from scdiva.bench.core.io import return_freed_memory
        from scdiva.bench.methods.scdiva import streamed_latent

        torch.set_num_threads(threads)
        # as the workflow (streamed_latent): malloc_trim(0) after every 50 batches of 512 cells.
        # SCDIVA_MALLOC_TRIM_EVERY=N trims after every N batches, =0 fixes glibc's mmap threshold instead;
        # SCDIVA_KEEP_MALLOC=1 measures glibc's default allocator, untrimmed (docs/scale.md)
        keep = os.environ.get("SCDIVA_KEEP_MALLOC") == "1"
        trim_every = 0 if keep else int(os.environ.get("SCDIVA_MALLOC_TRIM_EVERY", "50"))
        if not keep and not trim_every:
            return_freed_memory()
        # as the workflow's scdiva_zeroshot job: obs + var in memory, the counts' rows read from disk
        if prefix:  # the first `prefix` cells of the generated counts file itself (counts in X, not preprocessed)
            whole, layer = open_rows_backed(data), None
            backed = whole[:prefix]  # a prefix: rows 0..prefix-1 of the file, read as for the whole file
        else:
            whole, layer = open_rows_backed(pre), "counts"
            backed = whole
        file_cells = whole.n_obs
        model = ScDiVaModel.from_config("tiny", genes=backed.var_names)
        sampler = RssSampler()
        start = time.perf_counter()  # the model's construction is not the stage
        if trim_every:
            z = streamed_latent(model, whole, chunk_cells=trim_every * 512, layer=layer, n_cells=backed.n_obs,
                                batch_size=512)
        else:
            z = model.get_latent(backed, layer=layer, batch_size=512)
        trace = sampler.stop()
        cells = z.shape[0]
        extra = {"latent_dims": int(z.shape[1]), "finite": bool(np.isfinite(z).all()), "file_cells": file_cells,
                 "source": str(data if prefix else pre), "rss_trace_mb": trace,
                 "allocator": (f"malloc_trim every {trim_every} batches" if trim_every else
                               "glibc default" if keep else
                               "mmap threshold 1 MB")}
    elif stage in ("finetune", "finetune_in_memory"):
        import torch

        from scdiva import ScDiVaModel
        from scdiva.bench.core.formats import open_rows_backed

        torch.set_num_threads(threads)
        backed = open_rows_backed(pre) if stage == "finetune" else ad.read_h5ad(pre)
        model = ScDiVaModel.from_config("tiny", genes=backed.var_names)
        model.fit(backed[:2000], tasks=["integration"], batch_key="batch", layer="counts", max_steps=1,
                  progress_bar=False)  # the gene statistics a checkpoint brings
        sampler = RssSampler()
        start = time.perf_counter()
        history = model.fit(backed, tasks=["integration"], batch_key="batch", layer="counts",
                            max_steps=steps, batch_size=128, progress_bar=False)
        trace = sampler.stop()
        cells = len(history) * 128
        extra = {"steps": len(history), "file_cells": backed.n_obs, "rss_trace_mb": trace}
    else:
        from scdiva.bench.tasks.integration import metrics as M

        adata = ad.read_h5ad(pre)
        emb = np.asarray(adata.obsm["X_pca"], dtype=np.float32)
        values = M.compute_integration_metrics(emb, batches=adata.obs["batch"].to_numpy(),
                                               labels=adata.obs["cell_type"].to_numpy(), pre_embedding=emb,
                                               n_jobs=threads, progress=False)
        cells = emb.shape[0]
        extra = {"total_score": M.aggregate_scores(values)["total_score"],
                 "subsampled_cells": M.cells_scored("silhouette_label", cells),
                 "approximate_neighbours": cells > M.EXACT_KNN_MAX_CELLS}
    seconds = time.perf_counter() - start
    result_path.write_text(json.dumps({"stage": stage, "cells": int(cells), "seconds": seconds, **extra}))


def exponent(points: list[tuple[int, float]]) -> float | None:
    """Slope of log(seconds) on log(cells) between the smallest and largest size (None with one size)."""
    points = sorted(points)
    if len(points) < 2 or points[0][0] == points[-1][0]:
        return None
    (n0, t0), (n1, t1) = points[0], points[-1]
    return math.log(t1 / t0) / math.log(n1 / n0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/scdiva-scale"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--embed-prefix", type=int, default=None,
                        help="embed only the first N cells of the generated counts file (not preprocessed): the "
                             "memory of streaming from a file too large to embed whole in the time available")
    parser.add_argument("--finetune-steps", type=int, default=200, help="optimizer steps of the finetune stage")
    parser.add_argument("--child", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.data, args.workdir, args.threads, args.result, args.embed_prefix, args.finetune_steps)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in args.cells:
        data = args.workdir / f"pbmc_{n}.h5ad"
        if not data.exists():
            subprocess.run([sys.executable, str(REPO / "benchmarks" / "generate_dataset.py"), "--cells", str(n),
                            "--batches", "8", "--out", str(data)], check=True)
        for stage in args.stages:
            row = run_stage(stage, data, args.workdir, args.threads, args.embed_prefix if stage == "embed" else None,
                            args.finetune_steps)
            rows.append(row)
            print(f"{stage:>10} {row['cells']:>9} cells  {row['seconds']:8.1f} s  {row['cells_per_s']:9.0f} cells/s  "
                  f"peak RSS {row['peak_rss_mb']:7.0f} MB", flush=True)
    exponents = {s: exponent([(r["cells"], r["seconds"]) for r in rows if r["stage"] == s]) for s in args.stages}
    for stage, k in exponents.items():
        print(f"{stage:>10} scaling exponent: {'n/a' if k is None else f'{k:.2f}'}")
    embed = [r for r in rows if r["stage"] == "embed"]
    largest = max(embed, key=lambda r: r["cells"]) if embed else None
    record("scale", largest["peak_rss_mb"] if largest else float("nan"), "MB peak RSS (embedding, largest size)",
           3000.0, (largest["peak_rss_mb"] / 3000.0) if largest else None,
           summary=" | ".join(f"{r['stage']} {r['cells']}: {r['seconds']:.1f}s {r['peak_rss_mb']:.0f}MB" for r in rows),
           rows=rows, exponents=exponents, threads=args.threads)


if __name__ == "__main__":
    main()
