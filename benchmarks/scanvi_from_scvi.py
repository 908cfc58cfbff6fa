"""The scanvi integration job before and after it started from the scvi job's saved model.

On the embedded PBMC cells (the workflow's preprocessing), in one process: the scvi job (saves
its model), the scanvi job given that model ("after") and the scanvi job training its own scVI
("before"). ``ratio`` = after / before seconds (lower = the reuse saves more). Also prints each
embedding's kNN(15) label agreement, which should not change. Not part of ``make bench`` (with
the default scVI epochs it takes minutes); ``--scvi-epochs`` caps scVI for a quicker check.

    python benchmarks/scanvi_from_scvi.py --scvi-epochs 20
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _bench import REPO, record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scvi-epochs", type=int, default=None, help="scVI max_epochs (default: scvi-tools' heuristic)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    from scdiva.bench.core.threads import limit_threads

    limit_threads(args.threads)
    import anndata as ad

    from scdiva.bench.api import integrate
    from scdiva.bench.core.preprocess import preprocess
    from scdiva.bench.tasks.integration.metrics import compute_neighbors

    adata = preprocess(ad.read_h5ad(REPO / "data" / "pbmc_3chem_symphony.h5ad"), dataset="pbmc_3chem",
                       batch_key="donor", label_key="cell_type", seed=0)
    labels = adata.obs["cell_type"].to_numpy()
    params = {} if args.scvi_epochs is None else {"max_epochs": args.scvi_epochs}
    kw = dict(batch_key="donor", label_key="cell_type", seed=0, params=params, threads=args.threads)

    def label_agreement(x) -> float:
        idx = compute_neighbors(x, 16).indices[:, 1:]
        return float((labels[idx] == labels[:, None]).mean())

    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "seed0.model"
        for name, method, extra in [("scvi", "scvi", {"save_model": model}), ("after", "scanvi", {"scvi_model": model}),
                                    ("before", "scanvi", {})]:
            run = adata.copy()
            seconds = integrate(run, method, **kw, **extra)
            runs[name] = {"seconds": seconds, "label_agreement": label_agreement(run.obsm["X_emb"]),
                          **{k: int(v) for k, v in run.uns.items() if k.endswith("_epochs")}}
    before, after = runs["before"]["seconds"], runs["after"]["seconds"]
    record("scanvi_from_scvi", after, "s", before, after / before,
           summary=(f"scanvi job {after:.1f} s from the scvi job's model vs {before:.1f} s training its own scVI "
                    f"({runs['before'].get('scvi_epochs')} epochs) = {after / before:.2f}x; kNN label agreement "
                    f"{runs['after']['label_agreement']:.3f} vs {runs['before']['label_agreement']:.3f}"),
           runs=runs, cells=adata.n_obs, threads=args.threads)


if __name__ == "__main__":
    main()
