"""Per-rule wall times of a workflow run, from Snakemake's benchmark files, and how busy the run
kept the machine.

Reads ``<run>/results/benchmarks/<rule>/*.tsv`` (one per job) and the run's Snakemake log
(``<run>/.snakemake/log/``, newest) for the run's elapsed time. ``ratio`` = summed job wall time /
(elapsed time x cores): the fraction of the cores that jobs occupied (1.0 = never idle; higher is
better). Writes the per-rule chart (the report's figure) beside the JSON.

    python benchmarks/rule_walltimes.py --run .            # after `make run`
"""

from __future__ import annotations

import argparse
import re
from datetime import datetime
from pathlib import Path

from _bench import OUT_DIR, record

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")


def elapsed_seconds(run: Path) -> float | None:
    """Seconds from the first to the last timestamp of the run's newest Snakemake log."""
    logs = sorted((run / ".snakemake" / "log").glob("*.snakemake.log"), key=lambda p: p.stat().st_mtime)
    if not logs:
        return None
    stamps = [datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
              for line in logs[-1].read_text().splitlines() if (m := STAMP.match(line.strip()))]
    return (stamps[-1] - stamps[0]).total_seconds() if len(stamps) >= 2 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("."), help="the workflow's working directory")
    parser.add_argument("--cores", type=int, default=2, help="--cores of that run")
    args = parser.parse_args()
    from scdiva.bench.report.figures import walltime_figure
    from scdiva.bench.report.integration import benchmark_walltimes

    jobs = benchmark_walltimes(args.run / "results" / "benchmarks")
    if jobs.empty:
        print(f"workflow_rule_walltimes: skipped (no Snakemake benchmark files under {args.run}/results/benchmarks; "
              "run `make run` first)")
        return
    per_rule = jobs.groupby("rule")["wall_s"].sum().sort_values(ascending=False)
    total = float(per_rule.sum())
    elapsed = elapsed_seconds(args.run)
    utilisation = total / (elapsed * args.cores) if elapsed else None
    chart = OUT_DIR / "workflow_rule_walltimes.png"
    walltime_figure(jobs, [chart], title=f"{args.run.resolve().name}: wall time per rule")
    top = ", ".join(f"{rule} {sec:.0f} s" for rule, sec in per_rule.head(4).items())
    record("workflow_rule_walltimes", total, "s (summed job wall time)", elapsed, utilisation,
           summary=(f"{len(jobs)} jobs, {total:.0f} s summed"
                    + (f" in {elapsed:.0f} s elapsed on {args.cores} cores = {100 * utilisation:.0f}% busy"
                       if elapsed else " (no Snakemake log for the elapsed time)") + f"; largest: {top}"),
           per_rule_s={k: round(float(v), 1) for k, v in per_rule.items()},
           per_job_s={f"{r.rule}/{r.job}": round(float(r.wall_s), 1) for r in jobs.itertuples()},
           elapsed_s=elapsed, cores=args.cores, chart=str(chart))


if __name__ == "__main__":
    main()
