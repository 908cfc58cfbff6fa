"""Snakemake adapter: pretrain a ScDiVa checkpoint from a config recipe, saved atomically."""

import shutil
import tempfile
from pathlib import Path

import anndata as ad
import torch

from scdiva import ScDiVaModel
from scdiva.bench.io import configure_logging

configure_logging(snakemake.log[0])
recipe = snakemake.params.recipe
torch.set_num_threads(snakemake.threads)
corpus = ad.read_h5ad(snakemake.input[0])
model = ScDiVaModel.from_config(recipe["size"], genes=corpus.var_names)
model.fit(corpus, tasks=list(recipe["tasks"]), batch_key=snakemake.params.batch_key, label_key=None,
          max_steps=int(recipe["max_steps"]), batch_size=int(recipe["batch_size"]), seed=int(recipe["seed"]))
out_dir = Path(snakemake.output[0]).parent
staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
model.save_pretrained(str(staging))
if out_dir.exists():
    shutil.rmtree(out_dir)
staging.rename(out_dir)
