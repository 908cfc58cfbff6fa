# ScDiVa Bench: benchmark single-cell integration (and ScDiVa) on datasets from the config.
#
#   snakemake --cores 2                                   # embedded PBMC data, config/config.yaml
#   snakemake --cores 2 --configfile config/smoke.yaml    # 600 cells, few epochs (~4 min on 2 idle cores)
#
# Stages: download (stage + verify) -> preprocess (validate, QC, normalise, HVG, PCA)
#         -> integrate -> metrics -> report. See docs/ARCHITECTURE.md for the paths.

from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")


# Resolved against the Snakefile, so `--directory elsewhere` still finds it; extra
# `--configfile` files are merged on top (`--replace-workflow-config` to replace it instead).
configfile: Path(workflow.basedir) / "config/config.yaml"


include: "workflow/rules/common.smk"
# each stage's helpers beside its rules; included first, as rules name them when they are declared
include: "workflow/rules/datasets_common.smk"
include: "workflow/rules/integration_common.smk"
include: "workflow/rules/checkpoints_common.smk"
include: "workflow/rules/annotation_common.smk"
include: "workflow/rules/paper_common.smk"
include: "workflow/rules/runs_common.smk"
include: "workflow/rules/provenance_common.smk"


wildcard_constraints:
    dataset="|".join(map(re.escape, dataset_names())),
    seed=r"\d+",


include: "workflow/rules/download.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/checkpoints.smk"
include: "workflow/rules/integrate.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/annotation.smk"
include: "workflow/rules/multitask.smk"
include: "workflow/rules/paper.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/provenance.smk"
include: "workflow/rules/multimodal_common.smk"
include: "workflow/rules/multimodal.smk"
include: "workflow/rules/cross_species_common.smk"
include: "workflow/rules/cross_species.smk"
include: "workflow/rules/runs.smk"


rule all:
    input:
        final_outputs(),
    default_target: True
