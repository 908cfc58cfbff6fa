# Paper figures that need ScDiVa's embedding: PAGA + diffusion pseudotime beside PCA.


def trajectory_methods():
    return [m for m in ("scdiva_zeroshot", "scdiva_finetuned") if m in method_names()]


rule trajectory:
    input:
        h5ad="results/{dataset}/preprocessed.h5ad",
        embeddings=lambda wc: [f"results/{wc.dataset}/integration/{m}/seed{seeds()[0]}.h5ad"
                               for m in trajectory_methods()],
    output:
        figure="results/{dataset}/trajectory.png",
        medians="results/{dataset}/trajectory_median_pseudotime.csv",
    params:
        methods=trajectory_methods(),
        label_key=lambda wc: dataset_config(wc.dataset)["label_key"],
        root_label=config.get("report", {}).get("trajectory_root_label", "HSC"),
        seed=seeds()[0],
    log:
        "results/logs/trajectory/{dataset}.log",
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/trajectory.py"


def trajectory_figures():
    """Trajectory figures for the report: every dataset, once a ScDiVa embedding is configured."""
    return [f"results/{d}/trajectory.png" for d in dataset_names()] if trajectory_methods() else []


_final_outputs_before_paper = final_outputs


def final_outputs():
    return _final_outputs_before_paper() + trajectory_figures()


# --- report sections: paper claims vs this run, annotation, multi-task, trajectory ---------------

PAPER_SECTIONS = ["claims", "integration", "annotation", "multitask", "trajectory"]
REPORT_SECTION_FILES = globals().get("REPORT_SECTION_FILES", []) + [
    f"results/report/sections/paper_{name}.json" for name in PAPER_SECTIONS
]


def paper_section_inputs(wildcards):
    inputs = {"claims": str(REPO_ROOT / "config" / "paper_claims.yaml")}
    if method_names():
        inputs["integration"] = "results/tables/integration_scores.csv"
    if annotation_datasets() and annotation_methods():
        inputs["annotation"] = "results/tables/annotation_scores.csv"
        jobs = [f"results/{d}/annotation/{m}/seed{seeds()[0]}" for d in annotation_datasets()
                for m in annotation_methods()]
        inputs["annotation_infos"] = [f"{j}.json" for j in jobs]
        inputs["confusion"] = [f"{j}.confusion.png" for j in jobs]
    if "multitask" in config and multitask_datasets():
        inputs["multitask"] = "results/tables/multitask_scores.csv"
        inputs["multitask_infos"] = [f"results/{d}/multitask/seed{seeds()[0]}.json" for d in multitask_datasets()]
    figures = trajectory_figures()
    if figures:
        inputs["trajectory"] = figures
        inputs["trajectory_medians"] = [f.replace("trajectory.png", "trajectory_median_pseudotime.csv")
                                        for f in figures]
    return inputs


rule paper_sections:
    input:
        unpack(paper_section_inputs),
    output:
        **{name: f"results/report/sections/paper_{name}.json" for name in PAPER_SECTIONS},
    params:
        figures={name: f"results/report/figures/paper_{name}.png"
                 for name in ("integration", "annotation", "multitask")},
    log:
        "results/logs/paper_sections/paper_sections.log",
    localrule: True
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/paper_sections.py"
