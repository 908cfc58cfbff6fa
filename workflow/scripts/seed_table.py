"""Snakemake adapter: concatenate per-seed score files into `*_by_seed.csv` and the summary table.

With a `records` input (the task's .run.json files), a score file `<stem>.scores.csv` counts only when its
run `<stem>.run.json` completed (status ok): a failed run is left out of every mean, never counted as 0.
"""

from pathlib import Path

import pandas as pd

from scdiva.bench.core.io import atomic_path
from scdiva.bench.core.outcomes import RunOutcome
from scdiva.bench.core.provenance import with_run_id
from scdiva.bench.report.seed_tables import summarise_seeds

scores = list(snakemake.input.get("scores", snakemake.input))
records = {str(Path(path)) for path in snakemake.input.get("records", [])}


def completed(score_file: str) -> bool:
    """Whether the run that wrote ``score_file`` completed (always, for a rule without run records)."""
    if not records:
        return True
    record = str(Path(score_file.removesuffix(".scores.csv") + ".run.json"))
    if record not in records:
        raise ValueError(f"{score_file}: its run record {record} is not among this rule's `records` input")
    return RunOutcome.read(record).ok


# a run that did not complete keeps the columns of its (header-only) file and adds no row
frames = [frame if completed(path) else frame.iloc[0:0] for path, frame in ((p, pd.read_csv(p)) for p in scores)]
by_seed = pd.concat(frames, ignore_index=True)
keys = list(snakemake.params.group_by)
with atomic_path(snakemake.output.by_seed) as tmp:
    by_seed.to_csv(tmp, index=False)
with atomic_path(snakemake.output.summary) as tmp:
    with_run_id(summarise_seeds(by_seed, keys), snakemake.params.run_id).to_csv(tmp, index=False)
