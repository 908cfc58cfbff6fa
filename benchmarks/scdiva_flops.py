"""ScDiVa model FLOP utilisation: training step and embedding, against this machine's matmul rate.

For each size (default ``tiny`` and ``small``) on the embedded PBMC cells, through the public API
only (``ScDiVaModel.from_config``, ``.fit``, ``.get_latent``):

* FLOPs of a training step and of embedding all cells: ``torch.utils.flop_counter.FlopCounterMode``
  around ``fit`` / ``get_latent`` (a step = the difference between ``max_steps=1`` and ``3``, halved,
  so tokenisation and set-up cancel out);
* their seconds, timed without the counter (a step = ``max_steps=1 + --steps`` minus ``1``, divided by
  ``--steps``; best of ``--repeats``);
* the reference: the fp32 FLOP/s of exactly the matrix multiplications the model ran (shapes recorded
  during the counted call), replayed alone with ``torch.mm``/``torch.bmm`` in this process.

``ratio`` = model FLOP utilisation = achieved FLOP/s / reference FLOP/s (1.0 = every FLOP at the
machine's matmul speed for these shapes; higher is better). On a CUDA GPU the same is measured for
``base`` in bf16 against the GPU's bf16 rate for its shapes.

    python benchmarks/scdiva_flops.py --threads 1
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
from _bench import REPO, best_time, record
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

TASKS = ["masked_expression", "integration"]


class MatmulShapes(TorchDispatchMode):
    """Records the (batch, m, k, n) of every matrix multiplication that runs under it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[tuple[int, int, int, int]] = Counter()
        self.flops_by_op: Counter[str] = Counter()
        self._op = ""

    def _add(self, b: int, m: int, k: int, n: int, times: int = 1) -> None:
        self.calls[(int(b), int(m), int(k), int(n))] += times
        self.flops_by_op[self._op] += 2 * int(b) * int(m) * int(k) * int(n) * times

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = self._op = func.overloadpacket.__name__
        # Ops arrive decomposed (mm, addmm, ...) or not (linear, matmul), depending on the dispatch path.
        if name == "linear":
            x, w = args[0], args[1]
            self._add(1, x.shape[:-1].numel(), x.shape[-1], w.shape[0])
        elif name == "matmul" and args[0].dim() >= 2 and args[1].dim() >= 2:
            a, b = args[0], args[1]
            if b.dim() == 2:
                self._add(1, a.shape[:-1].numel(), a.shape[-1], b.shape[-1])
            else:
                self._add(torch.broadcast_shapes(a.shape[:-2], b.shape[:-2]).numel(), a.shape[-2], a.shape[-1],
                          b.shape[-1])
        elif name in ("mm", "addmm", "bmm", "baddbmm"):
            a, b = (args[1], args[2]) if name in ("addmm", "baddbmm") else (args[0], args[1])
            if a.dim() == 2:
                self._add(1, a.shape[0], a.shape[1], b.shape[1])
            else:
                self._add(a.shape[0], a.shape[1], a.shape[2], b.shape[2])
        elif name.startswith("_scaled_dot_product") or name == "scaled_dot_product_attention":
            q, k = args[0], args[1]
            bh, length, dim, keys = q.shape[:-2].numel(), q.shape[-2], q.shape[-1], k.shape[-2]
            times = 2 if name.endswith("backward") else 1  # backward: about twice the forward matmuls
            self._add(bh, length, dim, keys, times)
            self._add(bh, length, keys, dim, times)
        return func(*args, **(kwargs or {}))

    def flops(self) -> int:
        return sum(2 * b * m * k * n * c for (b, m, k, n), c in self.calls.items())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_rate(calls: Counter, dtype: torch.dtype, device: torch.device, min_seconds: float = 0.02) -> float:
    """FLOP/s of replaying ``calls`` (shape -> count) with random ``dtype`` tensors on ``device``
    (each shape timed best of 3, over at least ``min_seconds``)."""
    total_flops, total_seconds = 0.0, 0.0
    for (b, m, k, n), count in calls.items():
        x = torch.randn(b, m, k, dtype=dtype, device=device) if b > 1 else torch.randn(m, k, dtype=dtype, device=device)
        y = torch.randn(b, k, n, dtype=dtype, device=device) if b > 1 else torch.randn(k, n, dtype=dtype, device=device)
        op = torch.bmm if b > 1 else torch.mm
        op(x, y)
        _sync(device)
        reps = 1
        while True:  # grow the repeat count until one timing lasts min_seconds
            start = time.perf_counter()
            for _ in range(reps):
                op(x, y)
            _sync(device)
            if time.perf_counter() - start >= min_seconds:
                break
            reps *= 4
        seconds = float("inf")
        for _ in range(3):  # best of 3: the rate the machine reaches, not a moment of contention
            start = time.perf_counter()
            for _ in range(reps):
                op(x, y)
            _sync(device)
            seconds = min(seconds, (time.perf_counter() - start) / reps)
        flops = 2.0 * b * m * k * n
        total_flops += flops * count
        total_seconds += seconds * count
    return total_flops / total_seconds


def counted(fn: Callable[[], Any]) -> tuple[int, MatmulShapes]:
    """FLOPs of ``fn()`` by FlopCounterMode, and the matmul shapes it ran.

    FlopCounterMode (torch 2.13) has no formula for the CPU attention kernel
    (``_scaled_dot_product_flash_attention_for_cpu`` and its backward); the FLOPs of attention ops it
    did not count are added from the recorded shapes (QK^T and PV; backward twice the forward).
    """
    shapes = MatmulShapes()
    with FlopCounterMode(display=False) as counter, shapes:
        fn()
    seen = {str(op).removeprefix("aten.") for op in counter.get_flop_counts().get("Global", {})}
    missed = sum(f for op, f in shapes.flops_by_op.items() if "scaled_dot_product" in op and op not in seen)
    return counter.get_total_flops() + missed, shapes


def measure_size(adata, size: str, *, device: str, dtype: torch.dtype, steps: int, repeats: int,
                 batch_size: int) -> None:
    from scdiva import ScDiVaModel

    model = ScDiVaModel.from_config(size, genes=adata.var_names, device=device, seed=0)
    dev = next(model.module.parameters()).device
    n_params = sum(p.numel() for p in model.module.parameters())

    def fit(n: int) -> None:
        model.fit(adata, tasks=TASKS, batch_key="donor", max_steps=n, batch_size=batch_size, seed=0,
                  progress_bar=False)
        _sync(dev)

    # Every step of a batch size runs the same shapes: count over 2 steps, time over ``steps``.
    flops_1, _ = counted(lambda: fit(1))
    flops_k, shapes_k = counted(lambda: fit(3))
    step_flops = (flops_k - flops_1) / 2
    step_shapes = shapes_k.calls
    seconds_1 = best_time(lambda: fit(1), repeats, warmup=0)  # the counted calls warmed up
    seconds_k = best_time(lambda: fit(1 + steps), repeats, warmup=0)
    step_seconds = (seconds_k - seconds_1) / steps
    rate = matmul_rate(step_shapes, dtype, dev)
    achieved = step_flops / step_seconds
    name_dtype = "fp32" if dtype == torch.float32 else "bf16"
    record(f"scdiva_{size}_train_step_mfu", achieved, "FLOP/s", rate, achieved / rate,
           summary=(f"{achieved / 1e9:.2f} GFLOP/s vs {rate / 1e9:.2f} GFLOP/s {name_dtype} matmul rate of its "
                    f"shapes = {100 * achieved / rate:.1f}% MFU ({step_seconds * 1e3:.1f} ms/step, "
                    f"{step_flops / 1e9:.3f} GFLOP/step, batch {batch_size}, {n_params:,} parameters)"),
           size=size, device=str(dev), dtype=name_dtype, step_seconds=step_seconds, step_flops=step_flops,
           batch_size=batch_size, parameters=n_params, threads=torch.get_num_threads(),
           square_1024_matmul_flops=matmul_rate(Counter({(1, 1024, 1024, 1024): 1}), dtype, dev))

    # the embedding runs in the dtype its reference rate is measured in: where the CPU multiplies bf16
    # matrices in hardware, inference would otherwise default to bf16 against an fp32 reference
    model.inference_precision = name_dtype
    latent_flops, latent_shapes = counted(lambda: model.get_latent(adata))
    latent_seconds = best_time(lambda: (model.get_latent(adata), _sync(dev)), repeats)
    rate = matmul_rate(latent_shapes.calls, dtype, dev)
    achieved = latent_flops / latent_seconds
    record(f"scdiva_{size}_embedding_mfu", achieved, "FLOP/s", rate, achieved / rate,
           summary=(f"{achieved / 1e9:.2f} GFLOP/s vs {rate / 1e9:.2f} GFLOP/s {name_dtype} matmul rate of its "
                    f"shapes = {100 * achieved / rate:.1f}% MFU ({adata.n_obs / latent_seconds:,.0f} cells/s, "
                    f"{latent_flops / adata.n_obs / 1e6:.2f} MFLOP/cell)"),
           size=size, device=str(dev), dtype=name_dtype, seconds=latent_seconds, flops=latent_flops,
           cells=adata.n_obs, parameters=n_params, threads=torch.get_num_threads())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=8, help="training steps timed per measurement")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    import anndata as ad

    torch.set_num_threads(args.threads)
    adata = ad.read_h5ad(REPO / "data" / "pbmc_3chem_symphony.h5ad")
    for size in args.sizes:
        measure_size(adata, size, device="cpu", dtype=torch.float32, steps=args.steps, repeats=args.repeats,
                     batch_size=args.batch_size)
    if torch.cuda.is_available():
        measure_size(adata, "base", device="cuda", dtype=torch.bfloat16, steps=args.steps, repeats=args.repeats,
                     batch_size=args.batch_size)
    else:
        print("scdiva_base_*_mfu: skipped (no CUDA GPU; measured in bf16 when one is present)")


if __name__ == "__main__":
    main()
