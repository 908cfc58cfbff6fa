"""What each ScDiVa design choice is worth: every change on and off, several seeds, beside the baselines.

On the embedded datasets (PBMC: 3 chemistries; human pancreas: 5 libraries), for each seed:

- baselines at their authors' settings, through the workflow's own method registry: scVI, scANVI,
  Harmony (integration) and logistic regression, scANVI (annotation);
- ScDiVa variants: pretrain ``tiny`` on the dataset's cells without labels (as the default
  checkpoint recipe does), then the workflow's own fine-tunes (``finetune_integration``,
  ``fit_annotation_model`` from scdiva.bench.methods.scdiva). ``default`` is the shipped recipe;
  each other variant turns one choice back (see VARIANTS), ``previous`` turns all of them back.

Integration is scored with the workflow's scIB metrics (scib-metrics), annotation by accuracy
and macro-F1 on the query batches. Every result is cached as JSON under ``--out``, so an
interrupted run resumes; a ScDiVa result records the settings each part (integration, annotation) ran
with, and a part whose settings have changed since is rerun alone. The table (mean +- std over seeds)
is printed and written as CSV.

    python benchmarks/scdiva_ablation.py                         # everything: hours on 2 cores
    python benchmarks/scdiva_ablation.py --datasets pbmc --variants default previous --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]

DATASETS: dict[str, dict[str, Any]] = {
    "pbmc": {"path": "data/pbmc_3chem_symphony.h5ad", "batch_key": "donor", "label_key": "cell_type",
             "reference": ["3pv2", "5p"], "query": ["3pv1"]},
    "pancreas": {"path": "data/pancreas_baron_human.h5ad", "batch_key": "library", "label_key": "cell_type",
                 "reference": ["human2_lib1", "human2_lib2", "human2_lib3"], "query": ["human4_lib1", "human4_lib3"]},
}

#: pretraining of every variant: masked expression + the integration ELBO on all cells, no labels
#: (the workflow's default checkpoint recipe, config/config.yaml)
PRETRAIN = {"tasks": ["masked_expression", "integration"], "max_epochs": 30, "batch_size": 128}

#: variant -> model config overrides, fine-tune parameter overrides, whether the KL schedule restarts
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "legacy_decoder": {"config": {"decoder_batch_conditioning": "legacy"}},
    "top_count_tokens": {"config": {"token_selection": "top_count"}},
    "masked_in_finetune": {"finetune": {"tasks": ["masked_expression", "integration"]}},
    # the masked-expression task kept in the integration fine-tune at a tenth of the ELBO's weight
    "light_masked_in_finetune": {"finetune": {"tasks": ["masked_expression", "integration"],
                                              "task_weights": {"masked_expression": 0.1}}},
    # the same, early-stopped on the held-out ELBO alone (the masked term does not prolong the run)
    "light_masked_elbo_stop": {"finetune": {"tasks": ["masked_expression", "integration"],
                                            "task_weights": {"masked_expression": 0.1},
                                            "early_stopping_tasks": ["integration"]}},
    "kl_restart": {"kl_restart": True},
    "no_early_stopping": {"finetune": {"early_stopping_patience": None, "validation_fraction": 0.0}},
    # the integration fine-tune's previous budget: at most 100 epochs, early-stopped after 8 evaluations without progress
    "short_finetune": {"finetune": {"max_epochs": 100, "early_stopping_patience": 8}},
    # integration only: the pretrained trunk (all but the heads) at the decoder's learning rate, the
    # previous default (the default is 0.3x: the fine-tune moves the encoder that pretraining shaped less)
    "full_trunk_finetune": {"finetune": {"trunk_lr_factor": 1.0}},
    # integration only: the trunk at 0.1x, gentler still
    "gentle_trunk_finetune": {"finetune": {"trunk_lr_factor": 0.1}},
    # annotation only (the integration columns stay empty): the pretrained trunk at 0.3x the heads' learning rate
    "gentle_trunk": {"annotation": {"trunk_lr_factor": 0.3}},
    # annotation only: a multinomial logistic regression on the latent mean instead of the one-hidden-layer MLP
    "linear_classifier": {"annotation": {"classifier_hidden_layers": 0}},
    # the classifier reads the encoder's representation before the variational bottleneck
    "classifier_on_cell": {"annotation": {"classifier_representation": "cell"}},
    # the classifier on the latent mean plus a linear term on the log-normalised genes ("wide and deep")
    "wide_classifier": {"annotation": {"classifier_representation": "latent_and_genes"}},
    # annotation only: the integration fine-tune's budget (scVI's epoch heuristic, patience 20) for the
    # reference fit instead of at most 100 epochs with patience 8
    "long_annotation": {"annotation": {"max_epochs": None, "early_stopping_patience": 20}},
    # both annotation candidates at once: the wide classifier (latent MLP + a linear term on the genes)
    # trained at the longer budget
    "long_wide_annotation": {"annotation": {"max_epochs": None, "early_stopping_patience": 20,
                                            "classifier_representation": "latent_and_genes"}},
    # annotation: the classifier on the latent mean alone, without the logistic regression on the genes
    # beside it (the default reads both: classifier_representation "latent_and_genes_ensemble")
    "latent_classifier": {"annotation": {"classifier_representation": "latent"}},
    # the ensemble's MLP on the encoder's cell representation (2 d_model wide, before the variational
    # bottleneck) instead of the 16-dim latent mean, beside the same regression on the genes
    "cell_ensemble": {"annotation": {"classifier_representation": "cell_and_genes_ensemble"}},
    # turned back: the ensemble's genes expert as the minibatch training leaves it
    "joint_genes_expert": {"annotation": {"converge_genes_expert": False}},
    # annotation: the last step's weights instead of their moving average over about 5 epochs
    # (weight_average_epochs; scdiva.train.trainer.WeightAverage)
    "unaveraged_annotation": {"annotation": {"weight_average_epochs": None}},
    # both: the annotation classifier before Dec 4 (sixth session)
    "previous_classifier": {"annotation": {"classifier_representation": "latent", "weight_average_epochs": None}},
    # the integration fine-tune on cells thinned to 30-100% of their counts: a latent that does not
    # follow sequencing depth, which differs between the batches (chemistries, libraries)
    "thinned_finetune": {"finetune": {"count_thinning": 0.3}},
    # the reference cells thinned to 30-100% (10-100%) of their counts while the annotator trains: the
    # PBMC query (3' v1) has about half the counts per cell of the reference chemistries
    "thinned_annotation": {"annotation": {"count_thinning": 0.3}},
    "strongly_thinned_annotation": {"annotation": {"count_thinning": 0.1}},
    # the integration fine-tune early-stopped on, and ending with, the last step's weights instead of
    # their moving average over about 5 epochs
    "unaveraged_finetune": {"finetune": {"weight_average_epochs": None}},
    # the integration fine-tune with the checkpoint's dropout (0.1, on the transformer's residual
    # branches) instead of none; and stopped after 20 epochs without improvement instead of 10
    "finetune_with_dropout": {"finetune": {"dropout": 0.1}},
    "patient_finetune": {"finetune": {"early_stopping_patience": 20}},
    # no dropout anywhere: pretraining (the checkpoint's config) and every fine-tune
    "dropout_free_model": {"config": {"dropout": 0.0}},
    # the annotation fit and query mapping without dropout (the checkpoint's 0.1)
    "dropout_free_annotation": {"annotation": {"dropout": 0.0}},
    # annotation: the reference cells in their own proportions, not resampled to equal class frequencies
    "unbalanced_annotation": {"annotation": {"balance_labels": False}},
    # the KL weight rises over 5,000 steps instead of 1,000 (pretraining and fine-tunes share the schedule),
    # closer to scVI, whose warm-up spans its whole 400 epochs
    "slow_kl_warmup": {"config": {"kl_warmup_steps": 5000}},
    # pretraining 3x longer than the default recipe's 30 epochs (both fine-tunes start from it)
    "long_pretrain": {"pretrain": {"max_epochs": 90}},
    # half the pretraining (15 epochs): between `no_pretraining` and the default's 30
    "short_pretrain": {"pretrain": {"max_epochs": 15}},
    # the workflow's default recipe over several datasets: one checkpoint pretrained on both embedded
    # datasets' cells (union vocabulary, batches named `<dataset>/<batch>`), then fine-tuned on each
    "joint_pretrain": {"pretrain": {"corpus": ["pbmc", "pancreas"]}},
    "no_transformer": {"config": {"n_layers": 0}},
    # one transformer block more than the tiny preset's 2
    "three_layers": {"config": {"n_layers": 3}},
    # turned back: the integration fine-tune's KL term at the checkpoint's weight (1) instead of 3
    "checkpoint_kl_weight": {"finetune": {"kl_weight": None}},
    # the integration fine-tune's KL term weighed 2, 4 or 5 instead of 3
    "kl_weight_2": {"finetune": {"kl_weight": 2.0}},
    "kl_weight_4": {"finetune": {"kl_weight": 4.0}},
    "kl_weight_5": {"finetune": {"kl_weight": 5.0}},
    # free bits in the fine-tune: the first 0.5 nats of each latent dimension's KL unpenalised
    "free_bits": {"finetune": {"kl_free_bits": 0.5}},
    # turned back: the fine-tune's KL weight set to 3 at once instead of over its first 50 epochs
    "kl_at_once": {"finetune": {"kl_weight_ramp_epochs": 0}},
    # the KL term weighed 2 from pretraining on (config.kl_weight), so every fine-tune keeps it
    "kl_weight_2_model": {"config": {"kl_weight": 2.0}},
    # annotation: the reference fit and query mapping with the KL term of their ELBO weighed 2
    "annotation_kl_weight_2": {"annotation": {"kl_weight": 2.0}},
    # what pretraining is worth: one pretraining step (it only sets the tokenizer's gene statistics from
    # the cells), then the integration fine-tune from that near-random model, its trunk at the full rate
    "no_pretraining": {"pretrain": {"max_epochs": 0}, "finetune": {"trunk_lr_factor": 1.0}},
    # scVI's latent width (10) instead of the tiny preset's 16, from pretraining on
    "narrow_latent": {"config": {"n_latent": 10}},
    # the tiny preset's context before Dec 5: each cell's 64 top-ranked expressed genes (and 8 unexpressed
    # ones) instead of 32 and 4, so every forward pass runs about twice the token work
    "long_context": {"config": {"max_tokens": 64, "n_zero_tokens": 8}},
    # the adversarial batch classifier on the latent from pretraining on (config), so every fine-tune keeps it
    "adversarial_batch": {"config": {"adversarial_batch_weight": 0.1}},
    # a negative-binomial dispersion per gene and batch in the integration fine-tune (scVI's
    # dispersion="gene-batch"), starting from the checkpoint's per-gene values
    "gene_batch_dispersion": {"finetune": {"decoder_dispersion": "gene-batch"}},
    # two hidden layers in the count decoder instead of one (batch injected into each), 128 wide as the tiny
    # preset's were until Dec 6, from pretraining on: room for batch effects that differ by cell type
    "two_layer_decoder": {"config": {"decoder_layers": 2, "decoder_hidden": 128}},
    # turned back: the decoder's (and the latent encoder's) hidden layer 128 wide, the tiny preset's until Dec 6
    "narrow_decoder": {"config": {"decoder_hidden": 128}},
    # 512 wide instead of the tiny preset's 256
    "wider_decoder": {"config": {"decoder_hidden": 512}},
    "previous": {"config": {"decoder_batch_conditioning": "legacy", "token_selection": "top_count",
                            "max_tokens": 64, "n_zero_tokens": 8},
                 "finetune": {"tasks": ["masked_expression", "integration"], "max_steps": 200, "batch_size": 64,
                              "trunk_lr_factor": 1.0, "dropout": None, "weight_average_epochs": None,
                              "early_stopping_patience": None, "validation_fraction": 0.0},
                 "annotation": {"max_steps": 200, "batch_size": 64, "trunk_lr_factor": 1.0, "balance_labels": False,
                                "query_epochs": 0, "early_stopping_patience": None, "validation_fraction": 0.0,
                                "annotation_only": True},
                 "kl_restart": True},
}

SCIB_COLUMNS = ["total_score", "batch_score", "bio_score", "kbet", "ilisi"]


def preprocessed(name: str, out: Path):
    """The dataset through the workflow's preprocessing (cached)."""
    import anndata as ad

    from scdiva.bench.core.io import write_h5ad_atomic
    from scdiva.bench.core.preprocess import PreprocessSettings, preprocess

    path = out / f"{name}.preprocessed.h5ad"
    if path.is_file():
        adata = ad.read_h5ad(path)
        if adata.uns["preprocess"].get("dataset") == name:
            return adata
        # made before the preprocessed file recorded its dataset's name: made again (deterministic)
    spec = DATASETS[name]
    out.mkdir(parents=True, exist_ok=True)
    adata = preprocess(ad.read_h5ad(REPO / spec["path"]), dataset=name, batch_key=spec["batch_key"],
                       label_key=spec["label_key"],
                       settings=PreprocessSettings(min_genes=50, min_counts=100))
    # through a temporary file: two processes started on a fresh --out both write it, and two direct
    # writes at once once left a file whose first 114 PBMC cells had zeros for their log-normalised
    # values (counts intact), which took logistic regression from 0.798 to 0.762 macro-F1
    write_h5ad_atomic(adata, path)
    return adata


def write_json(path: Path, result: dict[str, Any]) -> None:
    """Write ``result`` whole or not at all: an interrupted run leaves no truncated cache entry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial_path = path.with_name(path.name + ".partial")
    partial_path.write_text(json.dumps(result, indent=1) + "\n")
    partial_path.replace(path)


def cached(path: Path, compute) -> dict[str, Any]:
    if path.is_file():
        return json.loads(path.read_text())
    start = time.perf_counter()
    result = compute()
    result["seconds"] = time.perf_counter() - start
    write_json(path, result)
    return result


def scib_scores(adata, embedding: np.ndarray, spec: dict[str, Any], seed: int, threads: int) -> dict[str, float]:
    from scdiva.bench.tasks.integration.metrics import aggregate_scores, compute_integration_metrics

    values = compute_integration_metrics(embedding, batches=adata.obs[spec["batch_key"]].to_numpy(),
                                         labels=adata.obs[spec["label_key"]].to_numpy(),
                                         pre_embedding=np.asarray(adata.obsm["X_pca"]), seed=seed, n_jobs=threads,
                                         progress=False)
    return {**values, **aggregate_scores(values)}


def split(adata, spec: dict[str, Any]):
    batches = adata.obs[spec["batch_key"]].astype(str)
    return adata[batches.isin(spec["reference"]).to_numpy()].copy(), adata[batches.isin(spec["query"]).to_numpy()].copy()


def annotation_scores(method: str, adata, spec: dict[str, Any], seed: int, threads: int) -> dict[str, float]:
    from scdiva.bench.api import annotate

    reference, query = split(adata, spec)
    result = annotate(method, reference, query, label_key=spec["label_key"], batch_key=spec["batch_key"], seed=seed,
                      threads=threads, timing_repeats=1)
    return {**result.scores, **result.timings}


def baseline(name: str, method: str, adata, spec: dict[str, Any], seed: int, threads: int,
             out: Path) -> dict[str, float]:
    if method in ("logreg",):
        return annotation_scores(method, adata, spec, seed, threads)
    from scdiva.bench.api import integrate

    work = adata.copy()
    # as in the workflow, scANVI starts from the scvi run's model (same cells, settings and seed)
    scvi_model = out / name / f"scvi.seed{seed}.model"
    files = {"save_model": scvi_model} if method == "scvi" else {}
    if method == "scanvi" and (scvi_model / "model.pt").is_file():
        files = {"scvi_model": scvi_model}
    integrate(work, method, batch_key=spec["batch_key"], label_key=spec["label_key"], seed=seed, threads=threads,
              **files)
    scores = scib_scores(adata, work.obsm["X_emb"], spec, seed, threads)
    if method == "scanvi":
        scores.update({f"annotation_{k}": v for k, v in annotation_scores("scanvi", adata, spec, seed, threads).items()})
    return scores


def changes_integration(settings: dict[str, Any]) -> bool:
    """Whether a variant's integration differs from ``default``'s (``default`` itself included); one that
    changes only the annotation recipe integrates exactly as ``default`` does, so it is not rerun."""
    return not settings or not set(settings) <= {"annotation"}


def changes_annotation(settings: dict[str, Any]) -> bool:
    """Whether a variant's annotation differs from ``default``'s (``default`` itself included): the
    annotation fine-tune starts from the pretrained checkpoint, so only the model config and the
    annotation recipe reach it; a variant of the integration fine-tune alone is not rerun for it."""
    return not settings or bool(set(settings) & {"config", "pretrain", "annotation"})


def part_settings(variant: str) -> dict[str, dict[str, Any]]:
    """The resolved settings of each part a ScDiVa variant runs (``integration``, ``annotation``): what
    its cached result is stamped with, so that a changed default reruns the parts it reaches."""
    from scdiva.bench.methods.scdiva import SCDIVA_ANNOTATION_DEFAULTS, SCDIVA_FINETUNED_DEFAULTS

    settings = VARIANTS[variant]
    shared = {"config": model_config(variant), "pretrain": pretrain_settings(variant)}
    parts = {}
    if changes_integration(settings):
        parts["integration"] = {**shared, "finetune": {**SCDIVA_FINETUNED_DEFAULTS, **settings.get("finetune", {})},
                                "kl_restart": bool(settings.get("kl_restart"))}
    if changes_annotation(settings):
        parts["annotation"] = {**shared, "annotation": {**SCDIVA_ANNOTATION_DEFAULTS, **settings.get("annotation", {})}}
    # JSON round trip: the stamp compares equal to the one read back from the cache
    return json.loads(json.dumps(parts))


def set_options(stamp: Any) -> Any:
    """A settings stamp without its unset (None) options: an option added later, off by default, leaves
    what the cached runs did, and so their stamps, unchanged."""
    if isinstance(stamp, dict):
        return {k: set_options(v) for k, v in stamp.items() if v is not None}
    return stamp


def cached_parts(path: Path, stamps: dict[str, dict[str, Any]], compute,
                 only: list[str] | None = None) -> dict[str, Any]:
    """A result made of parts, cached in ``path`` with each part's settings stamp (``settings.<part>``).

    ``compute(parts)`` returns ``{part: scores}`` for the named parts. Parts whose stamp is missing or
    differs from ``stamps`` are recomputed together, the scores of the others are kept (``owners`` maps
    each score to its part); a part no longer in ``stamps`` is dropped with its stamp. ``only`` limits
    the parts run now to those named: the others' cached scores and stamps stay as they are.
    """
    result = json.loads(path.read_text()) if path.is_file() else {}
    stored = result.get("settings", {})
    if only is not None:
        stamps = {**{p: s for p, s in stored.items() if p in stamps and p not in only},
                  **{p: s for p, s in stamps.items() if p in only}}
    stale = [part for part, stamp in stamps.items() if set_options(stored.get(part)) != set_options(stamp)]
    if not stale and set(stored) == set(stamps):
        return result
    owners = {k: part for k, part in result.get("owners", {}).items() if part in stamps and part not in stale}
    kept = {k: result[k] for k in owners}
    for part, scores in (compute(stale) if stale else {}).items():
        kept.update(scores)
        owners.update(dict.fromkeys(scores, part))
    merged = {**kept, "settings": stamps, "owners": owners}
    write_json(path, merged)
    return merged


def model_config(variant: str) -> dict[str, Any]:
    """The variant's model: the ``tiny`` preset with its ``config`` overrides. Caches are keyed and
    stamped with the whole of it, so a changed preset is never served an older checkpoint."""
    from scdiva.config import NAMED_SIZES

    return {**NAMED_SIZES["tiny"], **VARIANTS[variant].get("config", {})}


def pretrain_settings(variant: str) -> dict[str, Any]:
    """The variant's pretraining: :data:`PRETRAIN` with its ``pretrain`` overrides."""
    return {**PRETRAIN, **VARIANTS[variant].get("pretrain", {})}


def pretrained(variant: str, data, spec: dict[str, Any], seed: int, out: Path):
    """The variant's pretrained checkpoint (cached under ``out``: variants that share the model config
    share it, and a rerun does not pretrain again); returns the model and its pretraining seconds."""
    import hashlib

    from scdiva import ScDiVaModel
    from scdiva.data.vocab import union_of_genes

    config = VARIANTS[variant].get("config", {})
    recipe = pretrain_settings(variant)
    corpus = recipe.pop("corpus", None)
    key = hashlib.sha1(json.dumps([model_config(variant), recipe, corpus], sort_keys=True).encode()).hexdigest()[:10]
    # a corpus of several datasets is shared by the datasets it holds: cached beside theirs
    path = (out.parent if corpus else out) / "pretrained" / f"{key}.seed{seed}"
    if (path / "model.safetensors").is_file():
        return ScDiVaModel.from_pretrained(path), json.loads((path / "pretrain_s.json").read_text())
    if corpus:
        data, batch_key = joint_corpus(corpus, out.parent), "batch"
        genes = union_of_genes(part.var_names for part in data)  # as `scdiva train` builds it
    else:
        batch_key, genes = spec["batch_key"], list(data.var_names)
    model = ScDiVaModel.from_config("tiny", genes=genes, seed=seed, **config)
    start = time.perf_counter()
    model.fit(data, batch_key=batch_key, seed=seed, progress_bar=True, data_name=corpus, **recipe)
    seconds = time.perf_counter() - start
    model.save_pretrained(path)
    (path / "pretrain_s.json").write_text(json.dumps(seconds))
    return model, seconds


def annotation_recipe(variant: str) -> dict[str, Any]:
    """The annotation fine-tune's settings of a variant (``default``'s for one that leaves annotation alone)."""
    parts = part_settings(variant)
    return (parts if "annotation" in parts else part_settings("default"))["annotation"]["annotation"]


def fitted_annotator(dataset: str, seed: int, out: Path, variant: str = "default"):
    """A variant's annotator on ``dataset``, as the workflow makes it: the variant's cached checkpoint,
    fitted on the reference (``fit_annotation_model``) with its annotation recipe, then the query mapped.
    Returns the fitted model, its :class:`~scdiva.bench.tasks.annotation.base.FittedAnnotator`, and the
    reference and query AnnData."""
    from scdiva.bench.methods.scdiva import counts_view, fit_annotation_model

    spec = DATASETS[dataset]
    adata = preprocessed(dataset, out)
    model, _ = pretrained(variant, counts_view(adata), spec, seed, out / dataset)
    reference, query = split(adata, spec)
    fitted = fit_annotation_model(model, reference, label_key=spec["label_key"], batch_key=spec["batch_key"],
                                  seed=seed, params=annotation_recipe(variant))
    fitted.map_query(query)
    return model, fitted, reference, query


def joint_corpus(names: list[str], out: Path) -> list:
    """The named datasets' counts, labels dropped and batches named ``<dataset>/<batch>``, as the
    workflow's ``pretrain_corpus`` rule writes them (the vocabulary is their genes' union)."""
    from scdiva.bench.checkpoints.fetch import corpus_batches
    from scdiva.bench.methods.scdiva import counts_view

    parts = []
    for name in names:
        adata = counts_view(preprocessed(name, out))
        adata.obs = adata.obs[[]].assign(batch=corpus_batches(name, adata.obs[DATASETS[name]["batch_key"]]))
        parts.append(adata)
    return parts


def scdiva_variant(variant: str, adata, spec: dict[str, Any], seed: int, threads: int,
                   out: Path, parts: list[str]) -> dict[str, dict[str, float]]:
    """The scores of the given ``parts`` (``integration``, ``annotation``) of a ScDiVa variant, per part."""
    import copy

    import torch

    from scdiva.bench.methods.scdiva import counts_view, finetune_integration, fit_annotation_model
    from scdiva.bench.tasks.annotation.metrics import annotation_metrics

    torch.set_num_threads(threads)
    resolved = part_settings(variant)  # the settings the cache entry is stamped with are the ones that run
    data = counts_view(adata)
    model, pretrain_s = pretrained(variant, data, spec, seed, out)
    result: dict[str, dict[str, float]] = {}
    if "integration" in parts:
        scores: dict[str, float] = {"pretrain_s": pretrain_s}
        scores.update({f"zeroshot_{k}": v for k, v in scib_scores(adata, model.get_latent(data), spec, seed, threads).items()})
        tuned = copy.deepcopy(model)
        if resolved["integration"]["kl_restart"]:
            tuned.module.decoder.kl_step.zero_()
        start = time.perf_counter()
        latent = finetune_integration(tuned, adata, batch_key=spec["batch_key"], seed=seed,
                                      params=resolved["integration"]["finetune"])
        scores["finetune_s"] = time.perf_counter() - start
        scores.update(scib_scores(adata, latent, spec, seed, threads))
        result["integration"] = scores
    if "annotation" not in parts:
        return result
    annotator = copy.deepcopy(model)
    params = dict(resolved["annotation"]["annotation"])
    reference, query = split(adata, spec)
    start = time.perf_counter()
    if params.pop("annotation_only", False):  # the previous recipe: cross-entropy only, no query mapping
        annotator.fit(counts_view(reference), tasks=["annotation"], label_key=spec["label_key"],
                      max_steps=params["max_steps"], batch_size=params["batch_size"], seed=seed, progress_bar=False)
    else:
        fitted = fit_annotation_model(annotator, reference, label_key=spec["label_key"], batch_key=spec["batch_key"],
                                      seed=seed, params=params)
        fitted.map_query(query)
    scores = {"annotation_train_s": time.perf_counter() - start}
    query_counts = counts_view(query)
    predicted, _ = annotator.predict_labels(query_counts)
    truth = query.obs[spec["label_key"]].astype(str).to_numpy()
    scores.update({f"annotation_{k}": v for k, v in annotation_metrics(truth, np.asarray(predicted, str)).items()})
    if annotator.module.heads["annotation"].representation.endswith("_ensemble"):
        for expert, labels in experts_alone(annotator, query_counts).items():
            metrics = annotation_metrics(truth, labels)
            scores.update({f"annotation_{expert}_expert_{k}": metrics[k] for k in ("macro_f1", "accuracy")})
    result["annotation"] = scores
    return result


def experts_alone(model, query) -> dict[str, np.ndarray]:
    """The query labels of each expert of an ensemble classifier on its own (the other's logits set to
    zero, then restored): what the latent MLP and the regression on the genes each contribute."""
    import torch

    head = model.module.heads["annotation"]
    labels = {}
    for expert, silenced in (("latent", head.genes), ("genes", head.mlp[-1])):
        saved = {name: value.clone() for name, value in silenced.state_dict().items()}
        with torch.no_grad():
            for parameter in silenced.parameters():
                parameter.zero_()
        try:
            labels[expert] = np.asarray(model.predict_labels(query)[0], dtype=str)
        finally:
            silenced.load_state_dict(saved)
    return labels


def summarise(out: Path, datasets: list[str], seeds: list[int], methods: list[str]):
    import pandas as pd

    rows = []
    for dataset in datasets:
        for method in methods:
            for seed in seeds:
                path = out / dataset / f"{method}.seed{seed}.json"
                if path.is_file():
                    rows.append({"dataset": dataset, "method": method, "seed": seed,
                                 **json.loads(path.read_text())})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    columns = [c for c in [*SCIB_COLUMNS, *(f"zeroshot_{c}" for c in SCIB_COLUMNS), "annotation_macro_f1",
                           "annotation_accuracy", "macro_f1", "accuracy", "finetune_s", "seconds"] if c in frame]
    table = frame.groupby(["dataset", "method"], sort=False)[columns].agg(["mean", "std", "count"])
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--baselines", nargs="*", default=["scvi", "scanvi", "harmony", "logreg"],
                        choices=["scvi", "scanvi", "harmony", "logreg", "unintegrated"])
    parser.add_argument("--parts", nargs="+", default=["integration", "annotation"],
                        choices=["integration", "annotation"],
                        help="the ScDiVa parts to run (a part left out keeps what is cached for it)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "ablation")
    parser.add_argument("--summary-only", action="store_true", help="print the table of what is cached")
    args = parser.parse_args()
    from scdiva.bench.core.threads import limit_threads

    # before JAX and numba start their pools: without it the metrics' thread pools leave torch's
    # OpenMP pool at two threads, and two ablation processes then oversubscribe two cores 4x over
    limit_threads(args.threads)
    methods = [*args.baselines, *(f"scdiva_{v}" for v in args.variants)]
    if not args.summary_only:
        for dataset in args.datasets:
            spec = DATASETS[dataset]
            adata = preprocessed(dataset, args.out)
            for seed in args.seeds:
                for method in methods:
                    path = args.out / dataset / f"{method}.seed{seed}.json"
                    print(f"[{time.strftime('%H:%M:%S')}] {dataset} seed {seed} {method}", flush=True)
                    if method.startswith("scdiva_"):
                        variant = method.removeprefix("scdiva_")
                        cached_parts(path, part_settings(variant),
                                     partial(scdiva_variant, variant, adata, spec, seed, args.threads,
                                             args.out / dataset), only=args.parts)
                    else:
                        cached(path, partial(baseline, dataset, method, adata, spec, seed, args.threads, args.out))
    table = summarise(args.out, args.datasets, args.seeds, methods)
    if len(table):
        args.out.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out / "ablation_table.csv")
        import pandas as pd

        with pd.option_context("display.width", 250, "display.max_columns", 60):
            print(readable(table).to_string())


def readable(table):
    """``mean ± std (seeds)`` per cell, the form the docs quote."""
    import pandas as pd

    cells = {}
    for column in table.columns.get_level_values(0).unique():
        stats = table[column]
        cells[column] = [f"{m:.3f} ± {s:.3f} ({int(n)})" if n > 1 else (f"{m:.3f} (1)" if n == 1 else "")
                         for m, s, n in zip(stats["mean"], stats["std"].fillna(0.0), stats["count"], strict=True)]
    return pd.DataFrame(cells, index=table.index)


if __name__ == "__main__":
    main()
