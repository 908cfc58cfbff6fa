"""Sections of the integration benchmark: score tables, results figure, UMAPs, wall times, versions."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from scdiva.bench.core.io import atomic_path
from scdiva.bench.methods.catalog import method_records, model_methods
from scdiva.bench.methods.record import is_control
from scdiva.bench.report.coverage import left_out_lines, seed_counts
from scdiva.bench.report.document import Section
from scdiva.bench.report.figures import message_figure, results_table_figure, umap_grid, walltime_figure
from scdiva.bench.report.ranks import rank_stability_section
from scdiva.bench.report.tables import paired_comparison_markdown, paired_differences, wide_table
from scdiva.bench.tasks.integration.metrics import (
    AGGREGATES,
    BATCH_WEIGHT,
    BIO_WEIGHT,
    GRAPH_METRICS,
    METRICS,
)

VERSION_PACKAGES = ("scdiva", "scanpy", "anndata", "scvi-tools", "scib-metrics", "harmonypy", "scanorama",
                    "torch", "jax", "numpy", "pandas", "scikit-learn", "snakemake")


@dataclass
class DatasetInputs:
    """What the report needs of one dataset: its obs keys, preprocessed file, embeddings (method -> h5ad)
    and role (``development``: the model under test was tuned on it, its rows are in-sample)."""

    batch_key: str
    label_key: str
    preprocessed: str
    embeddings: Mapping[str, str]
    role: str = "evaluation"

    @property
    def development(self) -> bool:
        return self.role == "development"


#: said beside every table of a development dataset
IN_SAMPLE_NOTE = ("**Development data**: ScDiVa's defaults were chosen on this dataset (docs/model.md, "
                  "Decisions), so its ScDiVa rows, marked *in-sample*, are not an independent evaluation.")


def in_sample(datasets: pd.Series, methods: pd.Series, development: Collection[str],
              models: Collection[str] | None = None) -> pd.Series:
    """Which (dataset, method) rows are in-sample: the model under test's on a development dataset.

    ``models``: the run's methods with role "model" (config-derived ones included); None: the built-in ones.
    """
    if models is None:
        models = [name for task in ("integration", "annotation") for name in model_methods(task)]
    return datasets.isin(list(development)) & methods.isin(list(models))


def _write_csv(frame: pd.DataFrame, path: Path, **kwargs) -> Path:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, **kwargs)
    return path


#: How far apart two single runs can land by seed alone: 1.96 x the sd of a difference of two runs,
#: from the seed-to-seed sd of the scIB total over 20 seeds on the embedded PBMCs (scVI 0.011,
#: ScDiVa 0.014; README, "How ScDiVa compares"): sqrt(0.011^2 + 0.014^2) x 1.96 = 0.035.
ONE_SEED_NOISE = 0.035


def paired_markdown(paired: pd.DataFrame, reference: str) -> str:
    """The paired comparison of total scores against ``reference`` as report markdown (empty without rows)."""
    return paired_comparison_markdown(paired, reference, {"total_score": "total"}, one_seed_noise=ONE_SEED_NOISE)


def controls_of(methods: Sequence[str], task: str = "integration") -> dict[str, list[str]]:
    """The built-in controls among ``methods``, by kind (``negative``, ``positive``; their records say)."""
    records = method_records(task)
    kinds: dict[str, list[str]] = {"negative": [], "positive": []}
    for method in methods:
        record = records.get(method)
        if record is not None and record.control:
            kinds[record.control].append(method)
    return kinds


def scaled_by_controls(wide: pd.DataFrame, columns: Sequence[str]) -> tuple[pd.DataFrame | None, list[str]]:
    """Each method's ``columns`` scaled between the dataset's controls, and the methods at or below one.

    A value becomes (value - negative) / (positive - negative), where negative is the best negative
    control's value and positive the positive control's: 0 scores like integrating nothing useful,
    1 like the cell types themselves (above 1 or below 0 beyond them). ``None`` when a kind of
    control did not run (or the positive control is not above the negative). The second result:
    the methods (controls excluded) whose total score is at or below a negative control's.
    """
    kinds = controls_of(list(wide.index))
    methods = [m for m in wide.index if not is_control(m)]
    flagged = []
    if kinds["negative"] and "total_score" in wide.columns:
        floor = wide.loc[kinds["negative"], "total_score"].max()
        flagged = [m for m in methods if wide.loc[m, "total_score"] <= floor]
    if not kinds["negative"] or not kinds["positive"] or not methods:
        return None, flagged
    negative = wide.loc[kinds["negative"], list(columns)].max()
    positive = wide.loc[kinds["positive"], list(columns)].max()
    span = (positive - negative).where(positive > negative)
    return (wide.loc[methods, list(columns)] - negative) / span, flagged


#: what a graph-only method's embedding metrics and embedding-based aggregates show
NOT_APPLICABLE = "n/a (graph)"


def graph_only_methods(wide: pd.DataFrame) -> list[str]:
    """The methods of a wide table scored from a neighbour graph alone: a graph total, no embedding
    metric (scdiva.bench.tasks.integration.metrics.compute_graph_metrics)."""
    embedding_metrics = [c for c in wide.columns if c in METRICS and c not in GRAPH_METRICS]
    if "graph_total_score" not in wide.columns or not embedding_metrics:
        return []
    graph_only = wide["graph_total_score"].notna() & wide[embedding_metrics].isna().all(axis=1)
    return list(wide.index[graph_only])


def mean_std_table(long: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Methods x metrics as strings ``mean ± std`` (just ``mean`` with one seed), best total first; a
    graph-only method's metrics that need an embedding read :data:`NOT_APPLICABLE`."""
    wide = wide_table(long, dataset)
    sub = long[long["dataset"] == dataset]
    std = sub.pivot(index="method", columns="metric", values="std").reindex_like(wide)
    graph_only = set(graph_only_methods(wide))

    def cell(method: str, metric: str, mean: float, sd: float) -> str:
        if method in graph_only and not np.isfinite(mean) and metric not in GRAPH_METRICS:
            return NOT_APPLICABLE
        return f"{mean:.3f}" if not np.isfinite(sd) else f"{mean:.3f} ± {sd:.3f}"

    return pd.DataFrame(
        {c: [cell(method, c, m, s) for method, m, s in zip(wide.index, wide[c], std[c], strict=True)]
         for c in wide.columns},
        index=wide.index,
    )


def graph_only_note(methods: Sequence[str]) -> str:
    """What the integration section says when graph-only methods ran (empty when none did)."""
    if not methods:
        return ""
    names = ", ".join(f"`{m}`" for m in methods)
    labels = ", ".join(METRICS[m].label for m in GRAPH_METRICS)
    return (f"\n\n{names} gives a neighbour graph, not an embedding: it is scored on the metrics that need only "
            f"a graph ({labels}), on its own neighbours (the embeddings' graphs have 15, 50 and 90); the "
            f"metrics that need an embedding, and the batch, bio and total scores built on them, are not "
            f"applicable (`{NOT_APPLICABLE}`). Compare it on `graph_total_score`: {BATCH_WEIGHT} x the mean of "
            f"the graph batch metrics + {BIO_WEIGHT} x the mean of the graph bio metrics, which every method "
            f"has. It is not ranked on the total.")


def benchmark_walltimes(bench_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """Wall time (s) and peak memory (MB) of every finished job from Snakemake ``benchmark:`` files."""
    rows = []
    for path in sorted(Path(bench_dir).glob("**/*.tsv")):
        frame = pd.read_csv(path, sep="\t")
        if frame.empty:
            continue
        rows.append({"rule": path.parent.name, "job": path.stem, "wall_s": float(frame["s"].iloc[-1]),
                     "max_rss_mb": pd.to_numeric(frame["max_rss"], errors="coerce").iloc[-1]})
    return pd.DataFrame(rows, columns=["rule", "job", "wall_s", "max_rss_mb"])


def package_versions(packages: Sequence[str] = VERSION_PACKAGES) -> pd.DataFrame:
    rows = []
    for name in packages:
        try:
            rows.append({"package": name, "version": metadata.version(name)})
        except metadata.PackageNotFoundError:
            rows.append({"package": name, "version": "not installed"})
    return pd.DataFrame(rows)


def _metric_glossary() -> str:
    lines = ["| metric | kind | in aggregate | meaning |", "|---|---|---|---|"]
    for m in METRICS.values():
        lines.append(f"| {m.label} (`{m.name}`) | {m.kind} | {'yes' if m.in_aggregate else 'no'} | {m.description} |")
    return "\n".join(lines)


def _seed_column(long: pd.DataFrame, dataset: str, methods: pd.Index, runs: pd.DataFrame | None) -> pd.Series:
    """Per method ``ok seeds/scheduled seeds`` (and "not ranked" when it missed a seed)."""
    if runs is None:  # no run record: the seeds that have a score (a graph-only method: its graph metrics)
        seeds = long[long["dataset"] == dataset].groupby("method")["n_seeds"].max()
        return pd.Series([str(int(seeds.loc[m])) for m in methods], index=methods)
    counts = seed_counts(runs, "integration", dataset).droplevel("dataset")
    missing = [m for m in methods if m not in counts.index]
    if missing:
        raise ValueError(f"integration scores of {missing} on {dataset!r} but no such run in runs.csv: "
                         "the tables and runs.csv are from different runs; run snakemake again")
    return pd.Series([f"{counts.loc[m, 'n_ok']}/{counts.loc[m, 'n_scheduled']}"
                      + ("" if counts.loc[m, "complete"] else " (not ranked)") for m in methods], index=methods)


def integration_sections(
    long: pd.DataFrame,
    datasets: Mapping[str, DatasetInputs],
    out_dir: str | os.PathLike[str],
    *,
    runs: pd.DataFrame | None = None,
    bench_dir: str | os.PathLike[str] = "results/benchmarks",
    seed: int = 0,
    by_seed: pd.DataFrame | None = None,
    reference: str | None = None,
    models: Collection[str] | None = None,
) -> list[Section]:
    """Write the integration tables and figures under ``out_dir`` and return their report sections.

    Parameters
    ----------
    long
        Mean over completed seeds per dataset, method and metric (:func:`scdiva.bench.report.tables.summarise_seeds`).
    datasets
        What each dataset's section needs (keys, preprocessed file, first-seed embeddings).
    out_dir
        The report directory (``tables/`` and ``figures/`` are written under it).
    runs
        ``runs.csv`` (:func:`scdiva.bench.report.coverage.read_runs`): only methods that completed every
        seed of a dataset are ranked, UMAPs only of completed runs, and the runs left out are named.
        ``None``: every method in ``long`` is ranked.
    bench_dir
        Snakemake ``benchmark:`` files (wall time per rule).
    seed
        The seed whose embeddings the UMAPs show.
    by_seed, reference
        Per-run scores (completed runs) and the method every other is compared with seed by seed
        (:func:`scdiva.bench.report.tables.paired_differences`); either ``None``: no comparison.
    models
        The run's methods of the model under test (marked in-sample on development data; :func:`in_sample`).
    """
    out_dir = Path(out_dir)
    tables, figures = out_dir / "tables", out_dir / "figures"
    tables.mkdir(parents=True, exist_ok=True)
    figures.mkdir(parents=True, exist_ok=True)
    development = {name for name, inputs in datasets.items() if inputs.development}
    _write_csv(long.assign(in_sample=in_sample(long["dataset"], long["method"], development, models)),
               tables / "integration_scores.csv", index=False)
    n_seeds = int(long["n_seeds"].max()) if len(long) else 0
    sections = [Section(
        title="Integration benchmark: how to read it",
        order=10,
        markdown=(
            "Every metric is in [0, 1] but the ARIs, which fall below 0 for a clustering worse than "
            "chance (a negative control can); higher is better (scIB, Luecken et al. 2022, computed with "
            f"scib-metrics). Batch score = mean of the batch-correction metrics, bio score = mean of the "
            f"bio-conservation metrics marked *in aggregate*, total = {BATCH_WEIGHT} x batch + "
            f"{BIO_WEIGHT} x bio. Aggregates use the raw metric values (no min-max scaling across "
            f"methods). Values are means over the seeds that completed (up to {n_seeds}); `± std` is the "
            "sample standard deviation over seeds. *seeds* says how many of the scheduled seeds completed: "
            "a method that missed one is shown but not ranked, and a run that did not complete is in no "
            "mean (see *Coverage*). A metric that is undefined by its own definition in a completed run "
            "(e.g. kBET when no label has enough cells) is left out of its group's mean for that run and "
            "of its own mean over seeds; a metric undefined on every seed shows `nan`.\n\n" + _metric_glossary()
        ),
    )]
    ranked_by_dataset: dict[str, list[str]] = {}
    for i, (dataset, inputs) in enumerate(datasets.items()):
        fig_table = [figures / f"{dataset}_scib_results.png", figures / f"{dataset}_scib_results.pdf"]
        fig_umap = [figures / f"{dataset}_umap.png", figures / f"{dataset}_umap.pdf"]
        left_out = left_out_lines(runs, "integration", dataset) if runs is not None else []
        left_out_md = ("\n\n**Left out** (no score; not in any mean):\n\n" + "\n".join(left_out)) if left_out else ""
        if not (long["dataset"] == dataset).any():
            message = f"{dataset}: no integration run completed"
            for paths in (fig_table, fig_umap):
                message_figure(message, paths)
            for name in (f"{dataset}_integration_wide.csv", f"{dataset}_integration.csv"):
                _write_csv(pd.DataFrame(columns=["method"]), tables / name, index=False)
            with atomic_path(tables / f"{dataset}_integration.tex") as tmp:  # the report's outputs always exist
                tmp.write_text(f"% {message}\n")
            sections.append(Section(title=f"Integration: {dataset}", order=20 + i,
                                    markdown=f"No integration run of `{dataset}` completed, so there are no "
                                             f"scores to show.{left_out_md}"))
            continue
        ranked = None
        if runs is not None:
            counts = seed_counts(runs, "integration", dataset)
            ranked = [m for (_, m), complete in counts["complete"].items() if complete]
        wide = wide_table(long, dataset, ranked)
        graph_only = graph_only_methods(wide)
        # a graph-only method has no total, so no rank on it
        ranked_by_dataset[dataset] = [m for m in wide.index if (ranked is None or m in ranked)
                                      and m not in graph_only]
        seeds_done = _seed_column(long, dataset, wide.index, runs)
        _write_csv(wide, tables / f"{dataset}_integration_wide.csv")
        pretty = mean_std_table(long, dataset).reindex(wide.index)
        pretty.columns = [METRICS[c].label if c in METRICS else c for c in pretty.columns]
        pretty.insert(0, "seeds", seeds_done)
        if inputs.development:
            flags = in_sample(pd.Series(dataset, index=pretty.index), pretty.index.to_series(), [dataset], models)
            pretty.insert(0, "in-sample", flags.map({True: "yes", False: ""}))
        _write_csv(pretty, tables / f"{dataset}_integration.csv")
        with atomic_path(tables / f"{dataset}_integration.tex") as tmp:
            tmp.write_text(pretty.to_latex(escape=True, caption=f"Integration scores on {dataset} "
                                           "(mean ± std over completed seeds; higher is better).",
                                           label=f"tab:{dataset}-integration"))
        results_table_figure(wide, fig_table, ranked=ranked,
                             title=f"{dataset}: integration scores"
                             + (" (development data: ScDiVa in-sample)" if inputs.development else ""))

        # deferred: imports anndata (this module is imported at workflow parse time)
        import anndata as ad

        ref = ad.read_h5ad(inputs.preprocessed, backed="r")
        obs = ref.obs[[inputs.batch_key, inputs.label_key]].copy()
        ref.file.close()
        shown = list(wide.index)
        if runs is not None:  # the UMAP seed's embedding of a method exists only when that run completed
            ok = runs[(runs["task"] == "integration") & (runs["dataset"] == dataset) & (runs["seed"] == seed)
                      & (runs["status"] == "ok")]
            shown = [m for m in shown if m in set(ok["method"])]
        embeddings = {}
        graphs = []
        for method in shown:
            emb = ad.read_h5ad(inputs.embeddings[method])
            if "X_emb" not in emb.obsm:  # a graph-only method (BBKNN)
                graphs.append(method)
                continue
            # Align to the preprocessed cell order whatever order the method wrote.
            embeddings[method] = pd.DataFrame(np.asarray(emb.obsm["X_emb"]), index=emb.obs_names).loc[obs.index].to_numpy()
        if embeddings:
            umap_grid(obs, embeddings, batch_key=inputs.batch_key, label_key=inputs.label_key,
                      paths=fig_umap, seed=seed)
        else:
            message_figure(f"{dataset}: no run of seed {seed} completed", fig_umap)
        no_umap = [m for m in wide.index if m not in embeddings and m not in graphs]
        contenders = [m for m in wide.index if not is_control(m) and (ranked is None or m in ranked)]
        if contenders:
            best = contenders[0]
            best_text = f"Best total score: **{best}** ({wide.loc[best, 'total_score']:.3f})."
        elif ranked is None or ranked:
            best_text = "Only controls ran, and a control is never ranked."
        else:
            best_text = "No method completed every seed, so none is ranked."
        aggregates = [c for c in wide.columns if c in AGGREGATES]
        scaled, below = scaled_by_controls(wide, aggregates)
        controls_md = ""
        if scaled is not None:
            scaled.columns = [METRICS[c].label if c in METRICS else c for c in scaled.columns]
            _write_csv(scaled, tables / f"{dataset}_integration_scaled.csv")
            controls_md += ("\n\n**Scaled between the controls** (0 = the best negative control, 1 = the "
                            "positive control; `tables/" + f"{dataset}_integration_scaled.csv`):\n\n"
                            + scaled.round(3).to_markdown())
        if below:
            controls_md += ("\n\n**At or below a negative control** (total score): "
                            + ", ".join(f"`{m}`" for m in below) + ".")
        if by_seed is not None and reference in wide.index:
            paired = paired_differences(by_seed[by_seed["dataset"] == dataset], reference)
            _write_csv(paired, tables / f"{dataset}_integration_paired.csv", index=False)
            controls_md = paired_markdown(paired, reference) + controls_md
        sections.append(Section(
            title=f"Integration: {dataset}" + (" (development data)" if inputs.development else ""),
            order=20 + i,
            markdown=(
                (IN_SAMPLE_NOTE + "\n\n" if inputs.development else "")
                + f"Batch key `{inputs.batch_key}`, label key `{inputs.label_key}`. {best_text} "
                f"Tables: `tables/{dataset}_integration.csv`, `.tex`; raw means: "
                f"`tables/{dataset}_integration_wide.csv`.\n\n"
                + pretty[[*(["in-sample"] if inputs.development else []), "seeds", *[METRICS[c].label if c in METRICS else c for c in wide.columns
                                     if c in AGGREGATES]]].to_markdown()
                + graph_only_note(graph_only) + controls_md + left_out_md
                + "\n\n<details><summary>All metrics</summary>\n\n"
                + pretty.to_markdown() + "\n\n</details>\n\nUMAP rows are methods (seed "
                f"{seed}); left coloured by batch, right by label."
                + (f" No UMAP of {', '.join(f'`{m}`' for m in no_umap)}: its seed {seed} run did not complete."
                   if no_umap else "")
                + (f" No UMAP of {', '.join(f'`{m}`' for m in graphs)}: a graph has no coordinates." if graphs else "")
            ),
            figures=[str(fig_table[0]), str(fig_umap[0])],
        ))
    if by_seed is not None:
        if runs is not None:
            counts = seed_counts(runs, "integration")
            complete = {key for key, done in counts["complete"].items() if done}
        else:
            complete = {(d, m) for d, m in by_seed[["dataset", "method"]].drop_duplicates().itertuples(index=False)}
        stability = rank_stability_section(by_seed, ranked_by_dataset, tables, complete)
        if stability is not None:
            sections.append(stability)
    walltimes = benchmark_walltimes(bench_dir)
    _write_csv(walltimes, tables / "benchmark_walltimes.csv", index=False)
    per_rule = walltimes.groupby("rule")["wall_s"].agg(["count", "sum", "max"]).round(1)
    jobs = walltimes.sort_values("wall_s", ascending=False).round(1)
    walltime_png = figures / "benchmark_walltimes.png"
    if not walltimes.empty:
        walltime_figure(walltimes, [walltime_png], title="Wall time per rule (sum over its jobs)")
    sections.append(Section(
        title="Wall time per rule (Snakemake benchmark files)",
        order=80,
        figures=[str(walltime_png)] if not walltimes.empty else [],
        markdown=(f"Sum of job wall times: {walltimes['wall_s'].sum():.0f} s (jobs may run in parallel).\n\n"
                  + per_rule.to_markdown() + "\n\n<details><summary>Per job</summary>\n\n"
                  + jobs.to_markdown(index=False) + "\n\n</details>"),
    ))
    versions = package_versions()
    _write_csv(versions, tables / "versions.csv", index=False)
    sections.append(Section(title="Package versions", order=90, markdown=versions.to_markdown(index=False)))
    return sections
