"""Snakemake adapter: validate and preprocess one staged dataset (see scdiva.bench.core.preprocess)."""

from scdiva.bench.core.formats import read_counts
from scdiva.bench.core.io import configure_logging, fail, write_h5ad_atomic
from scdiva.bench.core.preprocess import PreprocessSettings, preprocess
from scdiva.bench.core.validate import DatasetValidationError

configure_logging(snakemake.log[0])
entry = dict(snakemake.params.entry)
# Validated only (not rerun triggers): see the comment in workflow/rules/preprocess.smk.
checked_only = snakemake.config["datasets"][snakemake.wildcards.dataset]
try:
    # Only the cells `subsample` keeps are read from the file, and only its counts (X, a layer or raw.X).
    adata = read_counts(snakemake.input[0], dataset=snakemake.wildcards.dataset,
                        counts_layer=entry.get("counts_layer"), subsample=entry.get("subsample"),
                        strata=[entry["batch_key"], entry["label_key"]], seed=snakemake.params.seed,
                        round_counts=bool(entry.get("round_counts", False)))
    adata = preprocess(
        adata,
        dataset=snakemake.wildcards.dataset,
        batch_key=entry["batch_key"],
        label_key=entry["label_key"],
        coarse_label_key=checked_only.get("coarse_label_key"),
        counts_layer=None,  # read_counts put the counts in X
        gene_id_column=entry.get("gene_id_column"),
        subsample=entry.get("subsample"),
        annotation=checked_only.get("annotation"),
        settings=PreprocessSettings.from_config(snakemake.params.settings),
        seed=snakemake.params.seed,
    )
    layer = entry.get("counts_layer")
    adata.uns["preprocess"]["counts_source"] = f"layers[{layer}]" if layer and layer != "raw.X" else layer or "X"
except DatasetValidationError as err:
    fail(str(err))
write_h5ad_atomic(adata, snakemake.output[0])
