"""Snakemake adapter: one cross-species annotation or integration job (scdiva.bench.tasks.cross_species).

The method runs in a supervised child process (scdiva.bench.core.outcomes): its failure, timeout or memory
kill is recorded in the job's ``.run.json`` and its outputs replaced by stubs, so the rest of the run goes on.
"""

from scdiva.bench.core.io import configure_logging
from scdiva.bench.core.outcomes import supervise, write_stub_csv, write_stub_h5ad

configure_logging(snakemake.log[0])
settings, wc = snakemake.params.settings, snakemake.wildcards
seed, method, task = int(wc.seed), wc.xs_method, snakemake.params.task
pair_reference, pair_query = wc.xs_pair.split("__")
# runs.csv key: the pair, and for annotation the reference species' dataset (both directions may run)
run_dataset = f"{wc.xs_pair}.ref-{wc.xs_ref}" if task == "annotation" else wc.xs_pair


def run_method(report) -> None:
    """In the child: load the combined cells, run and score the method, write its outputs."""
    import anndata as ad
    import pandas as pd

    from scdiva.bench.core.io import atomic_path, write_h5ad_atomic
    from scdiva.bench.tasks.cross_species import run_cross_species_annotation, run_cross_species_integration
    from scdiva.bench.tasks.integration.metrics import enable_jax_cache

    enable_jax_cache("resources/cache/jax")  # the metrics jobs' JAX compilation cache
    combined = ad.read_h5ad(snakemake.input[0])
    report(n_cells=int(combined.n_obs))
    params = settings["params"].get(method)
    if task == "annotation":
        scores, predictions = run_cross_species_annotation(combined, method, reference=wc.xs_ref, seed=seed,
                                                           params=params, threads=snakemake.threads)
        query = pair_query if wc.xs_ref == pair_reference else pair_reference
        scores.insert(0, "task", "annotation")
        scores.insert(1, "reference", wc.xs_ref)
        scores.insert(2, "query", query)
        with atomic_path(snakemake.output.predictions) as tmp:
            predictions.to_csv(tmp, index=False)
    else:
        scores, embedding = run_cross_species_integration(combined, method, seed=seed, params=params,
                                                          threads=snakemake.threads)
        scores.insert(0, "task", "integration")
        scores.insert(1, "reference", pair_reference)
        scores.insert(2, "query", pair_query)
        out = ad.AnnData(obs=combined.obs[["species", "cell_type", "dataset"]].copy())
        out.obsm["X_emb"] = embedding
        write_h5ad_atomic(out, snakemake.output.embedding)
    with atomic_path(snakemake.output.scores) as tmp:
        pd.DataFrame(scores).to_csv(tmp, index=False)


outcome = supervise(run_method, dataset=run_dataset, task="cross_species", method=method, seed=seed,
                    runtime_min=snakemake.resources.get("runtime"), log_path=snakemake.log[0],
                    outputs=list(snakemake.output))
if not outcome.ok:
    write_stub_csv(snakemake.output.scores, ["task", "reference", "query", "method", "seed", "metric", "value"])
    if task == "annotation":
        write_stub_csv(snakemake.output.predictions, ["cell", "true", "predicted"])
    else:
        write_stub_h5ad(snakemake.output.embedding, outcome)
outcome.write(snakemake.output.run)
