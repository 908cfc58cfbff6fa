"""The workflow's metrics stage (scib-metrics, scdiva.bench.tasks.integration.metrics) beside the ``scib`` package's
Python implementations of the same metrics, on the same embedding.

Embedding: Harmony on the embedded PBMC cells, preprocessed by the workflow's own function. Metrics
compared (those scib implements without R): isolated labels (ASW), Leiden NMI/ARI (best
resolution), silhouette label, silhouette batch, cLISI, iLISI, graph connectivity, PCR comparison.
Not compared: kBET (R only in scib), BRAS and the k-means NMI/ARI (not in scib).

Each side is timed end to end for these metrics, neighbour graphs included. Ours runs twice in this
process: the first (cold) call pays JAX/numba compilation, as the first embedding of a metrics job
does; the second (warm) is what every further embedding of that job costs. ``ratio`` of
``metrics_vs_scib_speedup`` = scib seconds / our warm seconds (higher = ours faster); of
``metrics_vs_scib_agreement`` = the fraction of compared metrics whose values differ by at most 1e-3.

    python benchmarks/metrics_vs_scib.py --threads 1
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from _bench import REPO, record

TOLERANCE = 1e-3


def ours(emb: np.ndarray, labels: np.ndarray, batches: np.ndarray, pre: np.ndarray, n_jobs: int) -> dict[str, float]:
    from scdiva.bench.tasks.integration import metrics as m

    nn = m.compute_neighbors(emb, n_jobs=n_jobs)
    sub = {k: nn.subset_neighbors(n=k) for k in (15, 90)}
    out = {"isolated_labels": m.isolated_labels(emb, labels, batches)}
    out.update(m.nmi_ari_leiden(sub[15], labels))
    out["silhouette_label"] = m.silhouette_label(emb, labels)
    out["silhouette_batch"] = m.silhouette_batch(emb, labels, batches)
    out["clisi"] = m.clisi(sub[90], labels)
    out["ilisi"] = m.ilisi(sub[90], batches)
    out["graph_connectivity"] = m.graph_connectivity(sub[15], labels)
    out["pcr_comparison"] = m.pcr_comparison(pre, emb, batches)
    return out


def scib_lisi_helper(workdir: Path) -> bool:
    """Make scib's LISI find a working build of its C++ helper ``knn_graph``.

    scib runs ``<package>/knn_graph/knn_graph.o``; the wheel's prebuilt one may need a newer glibc
    than this machine has. Then it is compiled from the package's own ``knn_graph.cpp`` (as scib's
    README describes) into ``workdir`` and scib is pointed there. False when that is impossible.
    """
    import scib

    shipped = Path(scib.__file__).parent / "knn_graph"
    probe = subprocess.run([str(shipped / "knn_graph.o")], capture_output=True, text=True)
    if probe.returncode != 127 and "not found" not in probe.stderr:  # runs (prints its usage)
        return True
    if shutil.which("g++") is None:
        return False
    target = workdir / "scib" / "knn_graph"
    target.mkdir(parents=True, exist_ok=True)
    build = subprocess.run(["g++", "-O3", "-std=c++11", str(shipped / "knn_graph.cpp"), "-o",
                            str(target / "knn_graph.o")], capture_output=True, text=True)
    if build.returncode != 0:
        return False
    scib.__file__ = str(workdir / "scib" / "__init__.py")  # lisi.py resolves the helper from here
    return True


def scib_python(adata, pre, *, batch_key: str, label_key: str, n_jobs: int) -> dict[str, float]:
    import scanpy as sc
    import scib

    out = {"isolated_labels": scib.me.isolated_labels_asw(adata, label_key=label_key, batch_key=batch_key,
                                                          embed="X_emb", verbose=False)}
    sc.pp.neighbors(adata, use_rep="X_emb", n_neighbors=15, random_state=0)
    scib.me.cluster_optimal_resolution(adata, label_key=label_key, cluster_key="cluster", use_rep="X_emb",
                                       verbose=False)
    out["nmi_leiden"] = scib.me.nmi(adata, "cluster", label_key)
    out["ari_leiden"] = scib.me.ari(adata, "cluster", label_key)
    out["silhouette_label"] = scib.me.silhouette(adata, label_key=label_key, embed="X_emb")
    out["silhouette_batch"] = scib.me.silhouette_batch(adata, batch_key=batch_key, label_key=label_key,
                                                       embed="X_emb", verbose=False)
    out["clisi"] = scib.me.clisi_graph(adata, label_key=label_key, type_="embed", use_rep="X_emb", n_cores=n_jobs)
    out["ilisi"] = scib.me.ilisi_graph(adata, batch_key=batch_key, type_="embed", use_rep="X_emb", n_cores=n_jobs)
    out["graph_connectivity"] = scib.me.graph_connectivity(adata, label_key=label_key)
    out["pcr_comparison"] = scib.me.pcr_comparison(pre, adata, covariate=batch_key, embed="X_emb")
    return {k: float(v) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    from scdiva.bench.core.threads import limit_threads

    limit_threads(args.threads)  # before JAX is imported, as the metrics job does
    import anndata as ad

    from scdiva.bench.api import integrate
    from scdiva.bench.core.preprocess import preprocess

    warnings.filterwarnings("ignore")
    adata = preprocess(ad.read_h5ad(REPO / "data" / "pbmc_3chem_symphony.h5ad"), dataset="pbmc_3chem",
                       batch_key="donor", label_key="cell_type", seed=0)
    integrate(adata, "harmony", batch_key="donor", label_key="cell_type", seed=0, threads=args.threads)
    emb = np.asarray(adata.obsm["X_emb"], dtype=np.float32)
    labels, batches = adata.obs["cell_type"].astype(str).to_numpy(), adata.obs["donor"].astype(str).to_numpy()
    pca = np.asarray(adata.obsm["X_pca"])

    times = {}
    for run in ("cold", "warm"):
        start = time.perf_counter()
        mine = ours(emb, labels, batches, pca, args.threads)
        times[run] = time.perf_counter() - start
        print(f"  ours ({run}): {times[run]:.1f} s", flush=True)
    post = ad.AnnData(obs=adata.obs[["donor", "cell_type"]].copy())
    post.obsm["X_emb"] = emb
    pre = adata  # the preprocessed cells: X_pca and its variances (uns["pca"]), as scib's PCR reads them
    with tempfile.TemporaryDirectory() as workdir:
        if not scib_lisi_helper(Path(workdir)):
            raise SystemExit("scib's LISI needs its C++ helper: install g++ (apt-get install g++) and rerun")
        start = time.perf_counter()
        theirs = scib_python(post, pre, batch_key="donor", label_key="cell_type", n_jobs=args.threads)
        scib_s = time.perf_counter() - start
    print(f"  scib: {scib_s:.1f} s", flush=True)

    diffs = {k: abs(mine[k] - theirs[k]) for k in mine}
    within = sorted(k for k, d in diffs.items() if d <= TOLERANCE)
    common = dict(cells=adata.n_obs, embedding="harmony", threads=args.threads,
                  ours={k: round(v, 5) for k, v in mine.items()}, scib={k: round(v, 5) for k, v in theirs.items()},
                  abs_difference={k: round(v, 5) for k, v in diffs.items()})
    record("metrics_vs_scib_speedup", scib_s, "s", times["warm"], scib_s / times["warm"],
           summary=(f"scib {scib_s:.1f} s vs ours {times['warm']:.1f} s warm = {scib_s / times['warm']:.1f}x faster "
                    f"({times['cold']:.1f} s cold, incl. JAX/numba compile = {scib_s / times['cold']:.1f}x; "
                    f"{len(mine)} metrics, {adata.n_obs:,} cells)"),
           ours_cold_s=times["cold"], ours_warm_s=times["warm"], scib_s=scib_s,
           cold_ratio=scib_s / times["cold"], **common)
    worst = max(diffs, key=diffs.get)
    record("metrics_vs_scib_agreement", diffs[worst], "max |ours - scib|", TOLERANCE, len(within) / len(diffs),
           summary=(f"{len(within)}/{len(diffs)} metrics within {TOLERANCE:g} of scib ({', '.join(within)}); "
                    f"largest difference {diffs[worst]:.3f} ({worst})"),
           within_tolerance=within, **common)


if __name__ == "__main__":
    main()
