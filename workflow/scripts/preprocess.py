"""Snakemake adapter: validate and preprocess one staged dataset (see scdiva.bench.preprocess)."""

from scdiva.bench.io import configure_logging, fail, write_h5ad_atomic
from scdiva.bench.preprocess import PreprocessSettings, preprocess
from scdiva.bench.validate import DatasetValidationError, read_dataset

configure_logging(snakemake.log[0])
entry = dict(snakemake.params.entry)
# Validated only (not rerun triggers): see the comment in workflow/rules/preprocess.smk.
checked_only = snakemake.config["datasets"][snakemake.wildcards.dataset]
try:
    adata = preprocess(
        read_dataset(snakemake.input[0], dataset=snakemake.wildcards.dataset),
        dataset=snakemake.wildcards.dataset,
        batch_key=entry["batch_key"],
        label_key=entry["label_key"],
        coarse_label_key=checked_only.get("coarse_label_key"),
        counts_layer=entry.get("counts_layer"),
        gene_id_column=entry.get("gene_id_column"),
        subsample=entry.get("subsample"),
        annotation=checked_only.get("annotation"),
        settings=PreprocessSettings.from_config(snakemake.params.settings),
        seed=snakemake.params.seed,
    )
except DatasetValidationError as err:
    fail(str(err))
write_h5ad_atomic(adata, snakemake.output[0])
