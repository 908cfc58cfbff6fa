"""fp32 vs bf16 on this CPU: matmuls of ScDiVa's shapes, one tiny-model training step, and the tiny
model's inference (``get_latent``) per 1,000 cells.

Backs the CPU defaults of scdiva.train.precision: training in float32; inference in bf16 only where
the CPU multiplies bf16 matrices in hardware (``bf16_matmul`` below).

    python benchmarks/cpu_matmul_precision.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from scdiva.train.precision import cpu_has_bf16_matmul


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def matmul_gflops(m: int, k: int, n: int, dtype: torch.dtype, repeats: int) -> float:
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    return 2 * m * k * n / _time(lambda: a @ b, repeats) / 1e9


def training_step_seconds(precision: str, repeats: int) -> float:
    import numpy as np

    from scdiva.config import ScDiVaConfig
    from scdiva.data.dataset import TokenBatch
    from scdiva.module import ScDiVaModule

    config = ScDiVaConfig.from_size("tiny", n_genes=2000, batch_categories=["a", "b"])
    module = ScDiVaModule(config).train()
    rng = np.random.default_rng(0)
    b, length = 64, config.max_tokens + config.n_zero_tokens + 1
    counts = torch.from_numpy(rng.poisson(0.5, size=(b, config.n_genes)).astype(np.float32))
    batch = TokenBatch(gene_ids=torch.from_numpy(rng.integers(2, config.n_genes + 2, size=(b, length))),
                       values=torch.rand(b, length), padding_mask=torch.zeros(b, length, dtype=torch.bool),
                       counts=counts, observed=torch.ones(b, config.n_genes, dtype=torch.bool),
                       library=counts.sum(1), batch=torch.zeros(b, dtype=torch.int64))
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = sum(module.losses(batch, ["masked_expression", "integration"], 0).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return _time(step, repeats)


def inference_seconds_per_1k_cells(repeats: int) -> dict[str, float]:
    """Median ``get_latent`` seconds per 1,000 cells of the tiny model (random weights, 1,000 synthetic
    cells over 2,000 genes), fp32 against bf16, alternated so both see the same machine load."""
    import anndata as ad
    import numpy as np

    from scdiva import ScDiVaModel

    rng = np.random.default_rng(0)
    genes = [f"GENE{i}" for i in range(2000)]
    cells = ad.AnnData(X=rng.poisson(0.5, size=(1000, len(genes))).astype(np.float32))
    cells.var_names = genes
    model = ScDiVaModel.from_config("tiny", genes=genes, seed=0)
    seconds: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(repeats + 1):  # the first round warms up
        for precision, times in seconds.items():
            model.inference_precision = precision
            start = time.perf_counter()
            model.get_latent(cells)
            times.append(time.perf_counter() - start)
    return {precision: round(float(np.median(times[1:])), 4) for precision, times in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shapes = {"token_ffn (64x73 tokens, 64->128)": (64 * 73, 64, 128),
              "decoder (64 cells, 128->1767 genes)": (64, 128, 1767),
              "square 1024": (1024, 1024, 1024)}
    result = {"threads": args.threads, "torch": torch.__version__, "matmul_gflops": {}}
    for name, (m, k, n) in shapes.items():
        result["matmul_gflops"][name] = {
            "fp32": round(matmul_gflops(m, k, n, torch.float32, args.repeats), 2),
            "bf16": round(matmul_gflops(m, k, n, torch.bfloat16, args.repeats), 2)}
    result["tiny_training_step_seconds"] = {p: round(training_step_seconds(p, args.repeats), 4)
                                            for p in ("fp32", "bf16")}
    inference = inference_seconds_per_1k_cells(max(3, args.repeats // 2))
    result["tiny_inference_seconds_per_1k_cells"] = inference
    result["tiny_inference_fp32_over_bf16"] = round(inference["fp32"] / inference["bf16"], 2)
    result["bf16_matmul"] = cpu_has_bf16_matmul()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
