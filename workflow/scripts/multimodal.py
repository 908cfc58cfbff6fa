"""Snakemake adapter: one multimodal method on one dataset and seed (scdiva.bench.tasks.multimodal.run_multimodal).

The method runs in a supervised child process (scdiva.bench.core.outcomes): its failure, timeout or memory
kill is recorded in ``seed{seed}.run.json`` and its outputs replaced by stubs, so the rest of the run goes on.
"""

from scdiva.bench.core.io import configure_logging
from scdiva.bench.core.outcomes import supervise, write_stub_csv, write_stub_h5ad

configure_logging(snakemake.log[0])
settings, wc = snakemake.params.settings, snakemake.wildcards
seed = int(wc.seed)


def run_method(report) -> None:
    """In the child: load the prepared cells, run and score the method, write its outputs."""
    import anndata as ad
    import numpy as np
    import pandas as pd

    from scdiva.bench.core.io import atomic_path, write_h5ad_atomic
    from scdiva.bench.tasks.integration.metrics import enable_jax_cache
    from scdiva.bench.tasks.multimodal import PROTEIN_KEY, held_out_mask, run_multimodal

    enable_jax_cache("resources/cache/jax")  # the metrics jobs' JAX compilation cache
    adata = ad.read_h5ad(snakemake.input[0])
    report(n_cells=int(adata.n_obs))
    scores, per_protein, output = run_multimodal(adata, wc.mm_method, seed=seed,
                                                 held_out_fraction=settings["held_out_fraction"],
                                                 params=settings["params"].get(wc.mm_method),
                                                 threads=snakemake.threads)
    report(method_s=float(output.runtime_s))
    scores.insert(0, "dataset", wc.mm_dataset)
    per_protein.insert(0, "dataset", wc.mm_dataset)
    with atomic_path(snakemake.output.scores) as tmp:
        scores.to_csv(tmp, index=False)
    with atomic_path(snakemake.output.proteins) as tmp:
        per_protein.to_csv(tmp, index=False)
    test = held_out_mask(adata, settings["held_out_fraction"], seed)
    with atomic_path(snakemake.output.predicted) as tmp:
        pd.DataFrame(output.predicted, index=adata.obs_names[test],
                     columns=adata.obsm[PROTEIN_KEY].columns).to_csv(tmp, index_label="cell")
    embedding = ad.AnnData(obs=pd.DataFrame({"held_out": test}, index=adata.obs_names))
    if output.embedding is not None:
        embedding.obsm["X_emb"] = np.asarray(output.embedding, dtype=np.float32)
    embedding.uns["runtime_s"] = output.runtime_s
    write_h5ad_atomic(embedding, snakemake.output.embedding)


outcome = supervise(run_method, dataset=wc.mm_dataset, task="multimodal", method=wc.mm_method, seed=seed,
                    runtime_min=snakemake.resources.get("runtime"), log_path=snakemake.log[0],
                    outputs=list(snakemake.output))
if not outcome.ok:
    write_stub_csv(snakemake.output.scores, ["dataset", "method", "seed", "metric", "value"])
    write_stub_csv(snakemake.output.proteins, ["dataset", "method", "protein", "pearson", "spearman", "mse"])
    write_stub_csv(snakemake.output.predicted, ["cell"])
    write_stub_h5ad(snakemake.output.embedding, outcome)
outcome.write(snakemake.output.run)
