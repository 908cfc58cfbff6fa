"""Snakemake adapter: the paper-comparison report sections (scdiva.bench.report.paper) as JSON files."""

from pathlib import Path

from scdiva.bench.core.io import configure_logging
from scdiva.bench.report import paper
from scdiva.bench.report.checkpoints import checkpoint_section
from scdiva.bench.report.claims import hardware_description, load_claims

configure_logging(snakemake.log[0])
for figure in snakemake.params.figures.values():
    Path(figure).parent.mkdir(parents=True, exist_ok=True)
inp, out = snakemake.input, snakemake.output
integration = paper.read_table(inp.get("integration"))
annotation = paper.read_table(inp.get("annotation"))
multitask = paper.read_table(inp.get("multitask"))
annotation_infos = paper.load_infos(inp.get("annotation_infos", []))  # stubs ({status, reason}) of runs that failed included
# The hardware the timed jobs ran on (a cluster may differ from the machine building the report).
hardware = "; ".join(sorted({i["hardware"] for i in annotation_infos.values() if "hardware" in i})) \
    or hardware_description()

paper.claims_section(load_claims(inp.claims), integration, annotation, multitask, hardware,
                     n_seeds=snakemake.params.get("n_seeds"),
                     development=snakemake.params.development).to_json(out.claims)
checkpoint_section(list(inp.get("checkpoint_configs", []))).to_json(out.checkpoints)
sections = {"integration": None, "annotation": None, "multitask": None, "trajectory": None}
if len(integration):
    sections["integration"] = paper.integration_claims_section(integration, snakemake.params.figures['integration'],
                                                               development=snakemake.params.development,
                                                               models=snakemake.params.models)
if len(annotation):
    sections["annotation"] = paper.annotation_section(annotation, annotation_infos, snakemake.params.figures['annotation'],
                                                      list(inp.get("confusion", [])),
                                                      by_seed=paper.read_table(inp.get("annotation_by_seed")),
                                                      reference=snakemake.params.annotation_reference,
                                                      paired_path=out.annotation_paired,
                                                      development=snakemake.params.development,
                                                      models=snakemake.params.models)
else:  # the output exists in every run
    paper.write_table(paper.annotation_paired(paper.read_table(None), ""), out.annotation_paired)
if len(multitask):
    sections["multitask"] = paper.multitask_section(multitask, paper.load_infos(inp.get("multitask_infos", [])),
                                                    snakemake.params.figures['multitask'],
                                                    paper.read_table(inp.get("multitask_comparison")))
if inp.get("trajectory"):
    sections["trajectory"] = paper.trajectory_section(list(inp.trajectory), list(inp.trajectory_medians),
                                                        list(inp.get("trajectory_runs", [])))
skipped = snakemake.params.skipped
for name, section in sections.items():
    path = getattr(out, name)
    notes = paper.skipped_lines(skipped.get(name, {}))
    if section is None and inp.get(name):  # configured, but the table holds no completed run
        paper.Section(title=f"{name.capitalize()} (no completed run)", order=99,
                      markdown=f"No {name} run completed, so there are no scores to show; the *Coverage* "
                               "section says what each run did and why." + notes).to_json(path)
    elif section is None:  # keep the output set fixed: an explicit "not part of this run" section
        paper.Section(title=f"{name.capitalize()} (not run)", order=99,
                      markdown=f"The {name} benchmark is not part of this run's config." + notes).to_json(path)
    else:
        section.markdown += notes
        section.to_json(path)
