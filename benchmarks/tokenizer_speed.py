"""Input speed: a batch of cells from an AnnData to tokens, against the pipeline before Dec 5 (tenth session).

Times what every forward pass starts with: the cells' counts scattered onto the vocabulary
(``CellTokenDataset.batch_of``) and tokenised (``scdiva.module.tokenizer.tokenize``, inference mode).
The previous pipeline, kept here as the reference, scattered the counts with a sparse product against
a gene-mapping matrix, masked the cells x genes keys with ``-inf`` before each top-k, took the top-k
on unpadded rows and computed ``log1p`` over the whole matrix. Both run on the first 256 cells of the embedded
PBMC and human pancreas files (raw counts), each over a vocabulary of its own genes, with the tiny
preset's 32 + 4 tokens. ``ratio`` = previous seconds / current seconds on the first panel (higher =
faster now). Both pipelines choose the same tokens (up to genes whose keys tie); the script checks that first.

    python benchmarks/tokenizer_speed.py --threads 1
"""

from __future__ import annotations

import argparse

import numpy as np
from _bench import REPO, best_time, record


def previous_tokens(dataset, index, gene_median, gene_mean, max_tokens: int, n_zero_tokens: int, target_sum: float):
    """The previous pipeline (inference mode): sparse product, ``-inf`` masks, unpadded top-k, full ``log1p``."""
    import scipy.sparse as sp
    import torch

    from scdiva.data.vocab import N_SPECIAL

    var = np.flatnonzero(dataset.alignment.var_to_token >= 0)
    mapping = sp.csr_matrix((np.ones(var.size, dtype=np.float32), (var, dataset.alignment.var_to_token[var] - N_SPECIAL)),
                            shape=(dataset.alignment.var_to_token.size, len(dataset.vocab)))
    counts = torch.from_numpy((dataset.reader.rows(index).astype(np.float32) @ mapping).toarray())
    library = counts.sum(1)
    values = torch.log1p(counts / library.clamp(min=1.0).unsqueeze(-1) * target_sum)
    expressed = counts > 0
    observed = torch.from_numpy(dataset.alignment.observed)
    rank_key = (counts / library.clamp(min=1.0).unsqueeze(-1) * target_sum) / gene_median.clamp(min=1e-6)
    top_key, top_idx = torch.topk(rank_key.masked_fill(~expressed, float("-inf")), max_tokens, dim=1)
    keep = torch.isfinite(top_key)
    zero_key = torch.log(gene_mean.clamp(min=1e-8)).expand(len(index), -1).masked_fill(expressed | ~observed, float("-inf"))
    z_key, z_idx = torch.topk(zero_key, n_zero_tokens, dim=1)
    return torch.where(keep, top_idx, -1), values.gather(1, top_idx), torch.where(torch.isfinite(z_key), z_idx, -1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    import anndata as ad
    import torch

    from scdiva.config import ScDiVaConfig
    from scdiva.data.dataset import CellCorpus, CellTokenDataset, gene_statistics
    from scdiva.data.vocab import N_SPECIAL, GeneVocab
    from scdiva.module.tokenizer import tokenize

    torch.set_num_threads(args.threads)
    config = ScDiVaConfig.from_size("tiny")
    panels = {}
    for name, file in (("PBMC", "pbmc_3chem_symphony.h5ad"), ("human pancreas", "pancreas_baron_human.h5ad")):
        adata = ad.read_h5ad(REPO / "data" / file)
        panels[f"{name}, {adata.n_vars:,} genes"] = adata
    index = np.arange(256)
    timings = {}
    for panel, adata in panels.items():
        vocab = GeneVocab(list(adata.var_names))
        dataset = CellTokenDataset(adata, vocab, vocab.align(adata, min_coverage=0.0))
        median, mean = gene_statistics(CellCorpus([dataset]), len(vocab), config.target_sum)

        def current(dataset=dataset, median=median, mean=mean):
            batch = dataset.batch_of(index)
            return tokenize(batch.counts, batch.observed, batch.library, max_tokens=config.max_tokens,
                            n_zero_tokens=config.n_zero_tokens, target_sum=config.target_sum,
                            selection="median_normalised", gene_median=median, gene_mean=mean, training=False)

        def previous(dataset=dataset, median=median, mean=mean):
            return previous_tokens(dataset, index, median, mean, config.max_tokens, config.n_zero_tokens,
                                   config.target_sum)

        # the same choice: equal keys per cell (genes whose keys tie may swap places)
        batch, (ids, _, padding) = dataset.batch_of(index), current()
        top, _, zeros = previous()
        width = ids.shape[1] - 1 - config.n_zero_tokens
        n = len(vocab)
        rank_key = torch.cat([batch.counts / median, torch.zeros(len(index), 1)], dim=1)  # column n: padding
        chosen = torch.where(padding[:, 1:1 + width], n, ids[:, 1:1 + width] - N_SPECIAL)
        previous_chosen = torch.where(top[:, :width] < 0, n, top[:, :width])
        same = (torch.equal(rank_key.gather(1, chosen).sort(1).values, rank_key.gather(1, previous_chosen).sort(1).values)
                and torch.equal(mean[ids[:, 1 + width:] - N_SPECIAL].sort(1).values, mean[zeros].sort(1).values))
        if not same:
            raise SystemExit(f"{panel}: the two pipelines chose different tokens")
        timings[panel] = (best_time(previous, args.repeats), best_time(current, args.repeats))

    first = next(iter(timings))
    previous_s, current_s = timings[first]
    parts = [f"{panel}: {1000 * now:.2f} ms against {1000 * before:.2f} ms ({before / now:.2f}x)"
             for panel, (before, now) in timings.items()]
    record("tokenizer_speed", current_s / 256 * 1000, "s per 1000 cells", previous_s / 256 * 1000,
           previous_s / current_s, summary="256 cells to tokens, " + "; ".join(parts),
           panels={p: {"current_s": c, "previous_s": b} for p, (b, c) in timings.items()}, threads=args.threads)


if __name__ == "__main__":
    main()
