"""Snakemake adapter of workflow/rules/runs.smk: ``runs_table`` writes results/tables/runs.csv from every
run's .run.json; ``check_runs`` fails the run when some run was not ok (and removes its outputs, so the next
``snakemake`` retries exactly those runs)."""

import logging
import shutil
from pathlib import Path

from scdiva.bench.core.io import atomic_path, configure_logging, fail
from scdiva.bench.core.outcomes import COMPLETE, RunOutcome, runs_table
from scdiva.bench.report.coverage import read_runs

configure_logging(snakemake.log[0])
logger = logging.getLogger("runs")

if snakemake.rule == "runs_table":
    table = runs_table(snakemake.input.records, snakemake.input.metrics_status)
    with atomic_path(snakemake.output[0]) as tmp:
        table.to_csv(tmp, index=False)
    logger.info("%d runs: %s", len(table), table["status"].value_counts().to_dict())
else:
    table = read_runs(snakemake.input.runs)
    bad = table[~table["status"].isin(COMPLETE)]
    if bad.empty:
        Path(snakemake.output[0]).write_text(f"all {len(table)} runs ok or not applicable\n")
    else:
        records = {}
        for path in snakemake.input.records:
            record = RunOutcome.read(path)
            records[(record.dataset, record.task, record.method, int(record.seed))] = (record, path)
        lines = []
        for row in bad.itertuples(index=False):
            record, path = records[(row.dataset, row.task, row.method, int(row.seed))]
            if record.ok:  # the method ran; its scoring failed: score the dataset again
                remove = snakemake.params.metrics_outputs[row.dataset]
            else:
                remove = [*record.outputs, path]
            for output in remove:
                target = Path(output)
                if target.name == "model.pt":  # scvi's saved model: its whole directory
                    shutil.rmtree(target.parent, ignore_errors=True)
                else:
                    target.unlink(missing_ok=True)
            lines.append(f"  {row.task} {row.method} on {row.dataset} (seed {row.seed}): {row.status}: {row.reason}"
                         f"\n    log: {record.log}")
        fail(f"{len(bad)} of {len(table)} runs did not complete (results/tables/runs.csv):\n" + "\n".join(lines)
             + "\nTheir outputs were removed: fix the cause (see each log) and run `snakemake` again to retry "
             "exactly these runs; the other results are kept.")
