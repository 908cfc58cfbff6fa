"""``ScDiVaModel``: the user-facing model (AnnData in, numpy/AnnData out), like scvi-tools' models."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors.torch import load_file

from scdiva.config import (
    DEFAULT_CLASSIFIER_HIDDEN_LAYERS,
    DEFAULT_CLASSIFIER_REPRESENTATION,
    ScDiVaConfig,
)
from scdiva.data.dataset import (
    CellCorpus,
    CellTokenDataset,
    ObsEncoding,
    TokenBatch,
    default_counts_layer,
    gene_statistics,
)
from scdiva.data.vocab import GeneVocab
from scdiva.model.pretrained import (
    CONFIG_FILE,
    VOCAB_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    damaged_file_error,
    resolve_checkpoint,
)
from scdiva.model.protein import protein_counts, protein_names_of
from scdiva.model.recipes import INTEGRATION_FINETUNE
from scdiva.model.settings import FitSettings
from scdiva.model.tasks import TaskSpec, resolve_tasks
from scdiva.module.scdiva_module import ScDiVaModule
from scdiva.module.tokenizer import normalised_log
from scdiva.train.checkpoint import save_safetensors
from scdiva.train.precision import check_precision, uses_bf16
from scdiva.train.trainer import TrainingSettings, steps_per_epoch, train

if TYPE_CHECKING:
    import anndata

logger = logging.getLogger(__name__)

#: a classifier head's options when its saved spec does not name them (scdiva.module.heads.ClassifierHead)
CLASSIFIER_HEAD_DEFAULTS = {"hidden_layers": DEFAULT_CLASSIFIER_HIDDEN_LAYERS,
                            "representation": DEFAULT_CLASSIFIER_REPRESENTATION}

#: ``layer="auto"``: ``layers["counts"]`` if the AnnData has it, else ``X``
AUTO = "auto"


@contextlib.contextmanager
def seeded_initialisation(seed: int) -> Iterator[None]:
    """Draw the initial weights of what a ``fit`` adds (a new task head, a new batch's decoder rows,
    the protein modality) from ``seed``, leaving the caller's global torch random state as it was.
    Without it they came from whatever state the process had reached, so two fits with the same seed,
    data and starting weights labelled the PBMC query differently (macro-F1 from 0.763 to 0.799 for
    one seed)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def default_max_epochs(n_cells: int) -> int:
    """Training length when neither max_steps nor max_epochs is given: scVI's heuristic,
    ``min(round(20,000 / n_cells * 400), 400)`` epochs (400 for up to 20,000 cells)."""
    return int(min(round(20_000 / max(n_cells, 1) * 400), 400))


class ScDiVaModel:
    """ScDiVa: a variational transformer over a cell's genes, with task heads.

    Create one with :meth:`from_config` (fresh) or :meth:`from_pretrained` (saved), train it with
    :meth:`fit`, then use :meth:`get_latent` / :meth:`predict_labels` on AnnData or
    :meth:`encode` / :meth:`predict` on token batches. ``model.module`` is the pure-torch network.

    ``inference_precision`` ("auto", "fp32" or "bf16") is what inference computes in: "auto" is bf16
    autocast on CUDA and on CPUs that multiply bf16 matrices in hardware, float32 elsewhere
    (scdiva.train.precision).
    Set it to "fp32" for results that do not depend on the machine's CPU.
    """

    def __init__(self, config: ScDiVaConfig, vocab: GeneVocab, module: ScDiVaModule | None = None,
                 device: str | torch.device | None = None):
        self.inference_precision = "auto"
        if config.n_genes != len(vocab):
            raise ValueError(f"config.n_genes ({config.n_genes}) != vocabulary size ({len(vocab)})")
        self.config = config
        self.vocab = vocab
        self.module = module if module is not None else ScDiVaModule(config)
        self.device = torch.device(device) if device is not None else (
            torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
        self.module.to(self.device).eval()

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_config(cls, size: str | ScDiVaConfig = "tiny", genes: Sequence[str] | None = None, *,
                    vocab: GeneVocab | None = None, device: str | torch.device | None = None,
                    seed: int = 0, **overrides: Any) -> ScDiVaModel:
        """A freshly initialised model of a named size (or a config) over a gene vocabulary.

        ``genes`` (e.g. ``adata.var_names``) becomes the vocabulary, in order; or pass ``vocab``.
        ``overrides`` change config fields (``ScDiVaConfig.from_size(size, **overrides)``).
        """
        if (genes is None) == (vocab is None):
            raise ValueError("give exactly one of genes= (e.g. adata.var_names) or vocab=")
        vocab = vocab if vocab is not None else GeneVocab([str(g) for g in genes])
        if isinstance(size, ScDiVaConfig):
            config = ScDiVaConfig.from_dict({**size.to_dict(), **overrides, "n_genes": len(vocab)})
        else:
            config = ScDiVaConfig.from_size(size, **{**overrides, "n_genes": len(vocab)})
        torch.manual_seed(seed)
        return cls(config, vocab, device=device)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, device: str | torch.device | None = None) -> ScDiVaModel:
        """Load a checkpoint from a local directory or a Hugging Face repo id (``org/name``).

        Only ``config.json``, ``vocab.json`` and ``model.safetensors`` are read; a directory that
        holds pickle files (``*.bin``, ``*.pt``, ``*.pkl``, ...) is refused.

        Parameters
        ----------
        name_or_path
            A checkpoint directory (written by :meth:`save_pretrained`) or a Hugging Face repo id.
        device
            Where the model lives (default: cuda if available, else cpu).

        Raises
        ------
        scdiva.errors.CheckpointError
            The checkpoint is missing, unreachable, holds pickles, or a file is damaged (truncated or
            garbled weights, a vocabulary that is not JSON, weights that do not fit the config): the
            message names the file and the fix.
        """
        from safetensors import SafetensorError

        from scdiva.bench.checkpoints.inputs import safetensors_problem

        directory = resolve_checkpoint(name_or_path)
        config = ScDiVaConfig.from_json(directory / CONFIG_FILE)
        try:
            vocab = GeneVocab.load(directory / VOCAB_FILE)
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
            raise damaged_file_error(directory / VOCAB_FILE, f"not a ScDiVa vocabulary ({type(err).__name__}: "
                                     f"{err})") from None
        model = cls(config, vocab, device="cpu")
        weights = directory / WEIGHTS_FILE
        # The header check names what is wrong (truncated, not safetensors) before the library reads it.
        problem = safetensors_problem(weights)
        if problem:
            raise damaged_file_error(weights, f"not a complete safetensors file: {problem}")
        try:
            state = load_file(str(weights))
        except (SafetensorError, OSError) as err:
            raise damaged_file_error(weights, f"{type(err).__name__}: {str(err).splitlines()[0]}") from None
        mismatch = f"{weights} does not match {directory / CONFIG_FILE}"
        fix = "Use the config.json saved with these weights (save_pretrained writes both)."
        try:
            missing, unexpected = model.module.load_state_dict(state, strict=False)
        except RuntimeError as err:  # a tensor of another shape; torch lists them one per line
            shapes = [line.strip().rstrip(".") for line in str(err).splitlines() if "size mismatch" in line]
            raise CheckpointError(f"{mismatch}: {'; '.join(shapes[:2]) or err}. {fix}") from None
        if missing or unexpected:
            raise CheckpointError(f"{mismatch}: missing {missing[:5]}, unexpected {unexpected[:5]}. {fix}")
        model.to(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
        return model

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json``, ``model.safetensors`` and ``vocab.json`` (no pickle) atomically.

        Under ``torchrun`` only rank 0 writes (the ranks hold identical weights after training).
        """
        directory = Path(directory)
        if torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
            return directory
        tmp = directory.with_name(f".{directory.name}.tmp")
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self._write_files(tmp)
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
        return directory

    def _write_files(self, directory: Path) -> None:
        self.config.to_json(directory / CONFIG_FILE)
        self.vocab.save(directory / VOCAB_FILE)
        state = {k: v.detach().cpu().contiguous() for k, v in self.module.state_dict().items()}
        save_safetensors(state, directory / WEIGHTS_FILE, metadata={"format": "pt", "model_type": "scdiva"})

    def to(self, device: str | torch.device) -> ScDiVaModel:
        self.device = torch.device(device)
        self.module.to(self.device)
        return self

    @property
    def tasks(self) -> list[str]:
        """Names of the task heads (usable as ``predict(..., task=name)``)."""
        return list(self.module.heads.keys())

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    def __repr__(self) -> str:
        return (f"ScDiVaModel(size={self.config.size!r}, parameters={self.num_parameters():,}, "
                f"genes={len(self.vocab):,}, latent={self.config.n_latent}, tasks={self.tasks})")

    # ---------------------------------------------------------------- data
    def _dataset(self, adata: anndata.AnnData, *, layer: str | None = AUTO, gene_column: str | None = None,
                 min_coverage: float = 0.5, batch: ObsEncoding | None = None,
                 labels: dict[str, ObsEncoding] | None = None,
                 protein_obsm_key: str | None = None, protein_names: Sequence[str] | None = None) -> CellTokenDataset:
        """The cells of ``adata`` aligned to the vocabulary; raises, naming what to fix, before any
        training. Reads the model, never changes it. ``protein_names``: the proteins to read from
        ``obsm[protein_obsm_key]`` (default: the model's)."""
        if adata.n_obs == 0:
            raise ValueError("the AnnData has no cells")
        alignment = self.vocab.align(adata, gene_column=gene_column, min_coverage=min_coverage)
        logger.info("gene alignment: %s", alignment.summary())
        if layer == AUTO:
            layer = default_counts_layer(adata)
        protein = None
        if protein_obsm_key is not None:  # the optional protein modality (scdiva.module.protein)
            protein = protein_counts(adata, protein_obsm_key,
                                     self.config.protein_names if protein_names is None else protein_names)
        return CellTokenDataset(adata, self.vocab, alignment, layer=layer, batch=batch, labels=labels,
                                protein=protein)

    def _with_batches(self, found: Sequence[str]) -> list[str]:
        """The batch categories the model knows, followed by those of ``found`` it does not."""
        known = list(self.config.batch_categories)
        return known + [c for c in found if c not in known]

    def _extend_batches(self, categories: list[str]) -> None:
        """Condition the decoder on ``categories`` (from :meth:`_with_batches`: the known ones first,
        their learned rows kept; the decoder grows rows for the others)."""
        old = list(self.config.batch_categories)
        if categories != old:
            self.module.decoder.set_batches(old, categories)
            self.module.decoder.to(self.device)
            self.config.batch_categories = categories

    def _plan_tasks(self, adatas: Sequence[anndata.AnnData], specs: list[TaskSpec], batch_key: str | None
                    ) -> tuple[list[str] | None, list[dict[str, Any]], list[tuple[ObsEncoding | None, dict[str, ObsEncoding]]]]:
        """What a fit of ``specs`` on ``adatas`` changes in the model, without changing it: the batch
        categories the decoder is to know (None: no integration task with a batch key), the classifier
        head specs to (re)build, and each AnnData's obs columns encoded against categories shared by all
        of them. Raises, naming the column, on a missing batch or label key."""
        batch_categories = None
        if any(s.kind == "integration" for s in specs) and batch_key is not None:
            found = sorted({c for a in adatas
                            for c in ObsEncoding.from_adata(a, batch_key, what="batch_key").categories})
            batch_categories = self._with_batches(found)
        label_categories: dict[str, list[str]] = {}
        heads: list[dict[str, Any]] = []
        for spec in specs:
            if spec.kind != "classifier":
                continue
            found = sorted({c for a in adatas for c in ObsEncoding.from_adata(
                a, spec.obs_key, what=f"label column of task {spec.name!r}").categories})
            label_categories[spec.name] = found
            existing = next((t for t in self.config.tasks if t["name"] == spec.name), None)
            # head options the spec asks for; one it leaves unset keeps the existing head's value
            options = {k: v for k, v in (("hidden_layers", spec.hidden_layers),
                                         ("representation", spec.representation)) if v is not None}
            same_shape = existing is not None and all(
                existing.get(k, CLASSIFIER_HEAD_DEFAULTS[k]) == v for k, v in options.items())
            if existing is None or existing["categories"] != found or not same_shape:
                heads.append({"name": spec.name, "kind": "classifier", "obs_key": spec.obs_key, "categories": found,
                              **options})
        encoded = []
        for a in adatas:
            batch = (None if batch_categories is None
                     else ObsEncoding.from_adata(a, batch_key, categories=batch_categories, what="batch_key"))
            labels = {spec.name: ObsEncoding.from_adata(a, spec.obs_key, categories=label_categories[spec.name])
                      for spec in specs if spec.kind == "classifier"}
            encoded.append((batch, labels))
        return batch_categories, heads, encoded

    def _add_heads(self, heads: list[dict[str, Any]]) -> None:
        """Build the classifier heads :meth:`_plan_tasks` asked for; one with the name of an existing
        head (new label set, depth or input) replaces it, re-initialised."""
        for head_spec in heads:
            existing = next((t for t in self.config.tasks if t["name"] == head_spec["name"]), None)
            if existing is not None:
                logger.warning("task %r: label categories or classifier options changed; its classifier head is "
                               "re-initialised", head_spec["name"])
                self.config.tasks.remove(existing)
            self.config.tasks.append(head_spec)
            self.module.add_head(head_spec)

    def _set_objective(self, *, kl_weight: float | None = None, adversarial_batch_weight: float | None = None,
                       decoder_dispersion: str | None = None, kl_free_bits: float | None = None,
                       kl_weight_ramp_steps: int = 0) -> None:
        """Set the count decoder's objective from now on (None leaves a setting as it is); the config
        keeps it, so a saved model records what it was trained with."""
        decoder = self.module.decoder
        decoder.check_objective(kl_weight=kl_weight, adversarial_batch_weight=adversarial_batch_weight,
                                decoder_dispersion=decoder_dispersion,
                                kl_free_bits=kl_free_bits)  # all checked before any is set
        if adversarial_batch_weight is not None:
            decoder.set_adversarial_batch_weight(float(adversarial_batch_weight))
        if kl_weight is not None:
            decoder.set_kl_weight(float(kl_weight), ramp_steps=kl_weight_ramp_steps)
        if decoder_dispersion is not None:
            decoder.set_dispersion(str(decoder_dispersion))
        if kl_free_bits is not None:
            decoder.set_kl_free_bits(float(kl_free_bits))

    # ---------------------------------------------------------------- training
    def fit(self, adata: anndata.AnnData | Sequence[anndata.AnnData],
            tasks: Sequence[str | TaskSpec] = ("masked_expression", "integration"),
            batch_key: str | None = None, label_key: str | None = None, *, settings: FitSettings | None = None,
            layer: str | None = AUTO, gene_column: str | None = None, min_coverage: float = 0.5,
            protein_obsm_key: str | None = None, data_name: str | Sequence[str] | None = None,
            **options: Any) -> list[dict[str, Any]]:
        """Train on ``adata`` for the given tasks; returns the loss history (one dict per step).

        Parameters
        ----------
        adata
            The cells, or a list of AnnData (e.g. several datasets of a pretraining corpus): each
            is aligned to the vocabulary on its own, so a gene one dataset does not measure is never
            read as a zero there; batch and label categories are shared across them.
        tasks
            ``"masked_expression"`` (predict hidden expression values), ``"integration"`` (the ELBO
            of the batch-conditioned count decoder; needs ``batch_key`` to correct batches),
            ``"annotation"`` (classifier of ``label_key``) and any ``TaskSpec(name,
            kind="classifier", obs_key=...)``. Pretraining is typically ``["masked_expression",
            "integration"]``; integration fine-tuning ``["integration"]``; annotation fine-tuning
            ``["integration", "annotation"]`` (the ELBO keeps the latent a model of all the cells,
            labelled or not, as in scANVI). Cells with a missing label are skipped by that label's
            classifier only.
        batch_key, label_key
            obs columns of the batch and of the ``annotation`` task's labels.
        settings
            How to train (:class:`scdiva.model.settings.FitSettings`; default: its defaults).
        layer, gene_column, min_coverage
            The raw integer counts (default: ``layers["counts"]`` if present, else ``X``), the var
            column with gene names (default: ``var_names``) and the least share of the vocabulary's
            genes the data must measure.
        protein_obsm_key
            ``adata.obsm[key]`` with raw surface-protein counts (CITE-seq): the model then learns the
            protein modality (scdiva.module.protein) in the same latent; its likelihood is part of the
            ``integration`` loss, so train with the ``integration`` task.
        data_name
            Labels the run in ``config.training_data`` (what the model was trained on).
        **options
            Fields of ``settings`` to replace (``max_steps=200``); an unknown name is a TypeError.

        Every AnnData is checked (obs keys, genes against the vocabulary, counts, proteins) before the
        model changes: a fit that fails on its input leaves the model as it was.
        """
        run = (settings or FitSettings()).replace(**options)
        specs = resolve_tasks(tasks, label_key)
        adatas = [adata] if hasattr(adata, "obs") else list(adata)
        # every AnnData is checked (keys, genes, counts, proteins) before the model changes, so a fit
        # that fails on its input leaves the model as it was
        batch_categories, new_heads, encoded = self._plan_tasks(adatas, specs, batch_key)
        fresh_protein = protein_obsm_key is not None and self.module.protein is None
        protein_names = None
        if fresh_protein:
            protein_names = protein_names_of(adatas[0], protein_obsm_key)
        datasets = [self._dataset(a, layer=layer, gene_column=gene_column, min_coverage=min_coverage,
                                  batch=batch, labels=labels, protein_obsm_key=protein_obsm_key,
                                  protein_names=protein_names)
                    for a, (batch, labels) in zip(adatas, encoded, strict=True)]
        self._apply_objective(run, sum(len(d) for d in datasets))
        with seeded_initialisation(run.seed):  # batch rows, heads and the protein modality the fit adds
            if batch_categories is not None:
                self._extend_batches(batch_categories)
            self._add_heads(new_heads)
            if fresh_protein:
                self.module.enable_protein(protein_names)
                self.module.protein.init_rate(torch.from_numpy(datasets[0].protein.mean(0)))
        corpus = CellCorpus(datasets)
        self._init_gene_statistics(corpus)
        balance_task = None
        if run.balance_labels:
            classifiers = [s.name for s in specs if s.kind == "classifier"]
            if not classifiers:
                raise ValueError("balance_labels=True needs a classifier task (e.g. 'annotation')")
            balance_task = "annotation" if "annotation" in classifiers else classifiers[0]
        history = self._train(corpus, specs, run, balance_task=balance_task)
        if run.converge_genes_expert:
            self._fit_genes_experts(corpus, specs)
        names = [data_name] if isinstance(data_name, str) or data_name is None else list(data_name)
        for i, (a, dataset) in enumerate(zip(adatas, datasets, strict=True)):
            name = names[i] if i < len(names) else None
            self._record_training(name, a.n_obs, dataset.alignment, specs, batch_key, history)
        return history

    def fit_integration(self, adatas: Sequence[anndata.AnnData], batch_labels: Sequence[np.ndarray], *,
                        layer: str | None = AUTO, gene_column: str | None = None, min_coverage: float = 0.5,
                        settings: FitSettings | None = None, **options: Any) -> list[dict[str, Any]]:
        """Fine-tune the integration objective on several AnnData (gene sets may differ).

        ``batch_labels[i]`` is the batch of each cell of ``adatas[i]``; the decoder is conditioned
        on these batches (new ones are added to those the model knows). Training follows
        :data:`scdiva.model.recipes.INTEGRATION_FINETUNE`, the workflow's ``scdiva_finetuned`` recipe
        (its settings and what each was worth are listed there), applied to ``settings`` (default:
        :class:`~scdiva.model.settings.FitSettings`' defaults). Any field of it in ``options``
        replaces the recipe's (``max_steps=200`` for a short run); ``kl_weight=None`` keeps the
        model's own. The KL weight is kept in ``config.kl_weight``, so a saved model records it.
        """
        if len(adatas) != len(batch_labels):
            raise ValueError("give one batch-label array per AnnData")
        run = (settings or FitSettings()).replace(**{**INTEGRATION_FINETUNE, **options})
        new = self._with_batches(sorted({str(b) for labels in batch_labels for b in labels}))
        lookup = {c: i for i, c in enumerate(new)}
        datasets = []
        for adata, labels in zip(adatas, batch_labels, strict=True):
            if len(labels) != adata.n_obs:
                raise ValueError(f"batch labels ({len(labels)}) do not match the AnnData's {adata.n_obs} cells")
            codes = np.array([lookup[str(b)] for b in labels], dtype=np.int64)
            datasets.append(self._dataset(adata, layer=layer, gene_column=gene_column, min_coverage=min_coverage,
                                          batch=ObsEncoding("batch", new, codes)))
        # the model changes only once every AnnData is known to be usable
        self._apply_objective(run, sum(len(d) for d in datasets))
        with seeded_initialisation(run.seed):
            self._extend_batches(new)
        corpus = CellCorpus(datasets)
        self._init_gene_statistics(corpus)
        specs = [TaskSpec("integration", kind="integration")]
        history = self._train(corpus, specs, run)
        for adata, dataset in zip(adatas, datasets, strict=True):
            self._record_training(None, adata.n_obs, dataset.alignment, specs, "batch", history)
        return history

    def _apply_objective(self, run: FitSettings, n_cells: int) -> None:
        """Set the integration objective ``run`` asks for, its KL ramp counted in optimizer steps."""
        objective = run.objective()
        objective["kl_weight_ramp_steps"] = self._ramp_steps(
            objective.pop("kl_weight_ramp_epochs"), n_cells, run.batch_size, run.validation_fraction)
        self._set_objective(**objective)

    def _train(self, corpus: CellCorpus, specs: list[TaskSpec], run: FitSettings, *,
               balance_task: str | None = None) -> list[dict[str, Any]]:
        n_cells = len(corpus)
        max_steps = run.max_steps
        if max_steps is None:
            epochs = default_max_epochs(n_cells) if run.max_epochs is None else run.max_epochs
            max_steps = max(1, math.ceil(epochs * self._epoch_steps(n_cells, run.batch_size,
                                                                    run.validation_fraction)))
        elif run.max_epochs is not None:
            raise ValueError("give max_steps or max_epochs, not both")
        optimisation = run.optimisation()
        if optimisation["early_stopping_tasks"] is not None:
            optimisation["early_stopping_tasks"] = tuple(optimisation["early_stopping_tasks"])
        training = TrainingSettings(max_steps=max_steps, device=self.device, balance_task=balance_task,
                                    task_weights={s.name: s.weight for s in specs}, **optimisation)
        return train(self.module, corpus, [s.name for s in specs], training, save_model=self._write_files)

    @staticmethod
    def _epoch_steps(n_cells: int, batch_size: int, validation_fraction: float) -> int:
        """Optimizer steps per epoch over the cells left for training (on each of ``WORLD_SIZE`` ranks)."""
        n_train = n_cells - round(validation_fraction * n_cells)
        return steps_per_epoch(n_train, batch_size, int(os.environ.get("WORLD_SIZE", "1")))

    @classmethod
    def _ramp_steps(cls, epochs: float | None, n_cells: int, batch_size: int, validation_fraction: float) -> int:
        """``kl_weight_ramp_epochs`` in optimizer steps (0: no ramp)."""
        if not epochs:
            return 0
        if epochs < 0:
            raise ValueError(f"kl_weight_ramp_epochs must be >= 0, got {epochs!r}")
        return math.ceil(epochs * cls._epoch_steps(n_cells, batch_size, validation_fraction))

    #: most profile entries (cells x genes, float32) a genes expert is fitted on at once (512 MiB); a larger
    #: labelled set is subsampled at random to fit
    GENES_EXPERT_MAX_ENTRIES = 2 ** 27

    @torch.inference_mode()
    def _fit_genes_experts(self, corpus: CellCorpus, specs: list[TaskSpec]) -> None:
        """Fit each ensemble classifier's genes expert to its optimum on the corpus's labelled cells."""
        for spec in specs:
            head = self.module.heads[spec.name]
            if head.kind != "classifier" or not head.has_genes_expert:
                continue
            codes = corpus.label_codes(spec.name)
            labelled = np.flatnonzero(codes >= 0)
            most = max(1, self.GENES_EXPERT_MAX_ENTRIES // self.config.n_genes)
            if labelled.size > most:
                labelled = np.sort(np.random.default_rng(0).choice(labelled, most, replace=False))
            profile = torch.cat([normalised_log(b.counts, b.library, self.config.target_sum)
                                 for b in (corpus.batch_of(chunk) for chunk in np.array_split(
                                     labelled, max(1, math.ceil(labelled.size / 1024))))])
            with torch.inference_mode(False):
                head.fit_genes_expert(profile.to(self.device), torch.from_numpy(codes[labelled]).to(self.device))

    def _init_gene_statistics(self, corpus: CellCorpus) -> None:
        """Set the tokenizer's per-gene statistics from the first corpus the model is trained on."""
        if bool(self.module.gene_statistics_set):
            return
        median, mean = gene_statistics(corpus, self.config.n_genes, self.config.target_sum)
        self.module.set_gene_statistics(median, mean)

    def _record_training(self, data_name: str | None, n_cells: int, alignment, specs: list[TaskSpec],
                         batch_key: str | None, history: list[dict[str, Any]]) -> None:
        self.config.training_data.append({
            "data": data_name or "(unnamed AnnData)", "n_cells": int(n_cells),
            "n_genes_matched": int(alignment.n_matched), "tasks": [s.name for s in specs],
            "label_keys": [s.obs_key for s in specs if s.kind == "classifier"],
            "batch_key": batch_key if any(s.kind == "integration" for s in specs) else None,
            "steps": len(history)})

    # ---------------------------------------------------------------- inference (tensor level)
    @torch.inference_mode()
    def encode(self, x: TokenBatch | anndata.AnnData) -> torch.Tensor:
        """Latent mean ``(n_cells, n_latent)`` of a token batch (see :meth:`tokenize`); an AnnData
        is encoded through :meth:`get_latent`."""
        if not isinstance(x, TokenBatch):
            if hasattr(x, "obs") and hasattr(x, "var_names"):
                return torch.from_numpy(self.get_latent(x))
            raise TypeError(f"encode expects a TokenBatch (model.tokenize(adata)) or an AnnData, got {type(x).__name__}")
        self.module.eval()
        with self._autocast():
            return self.module.encode(x.to(self.device)).float()

    @torch.inference_mode()
    def predict(self, x: TokenBatch, task: str = "annotation") -> torch.Tensor:
        """Output of a task head on a token batch: class probabilities for classifiers,
        normalised expression for ``integration``, predicted values for ``masked_expression``."""
        head = self._head(task)
        self.module.eval()
        x = x.to(self.device)
        with self._autocast():
            output = head(self.module(x), x).float()
        return torch.softmax(output, dim=-1) if head.kind == "classifier" else output

    def tokenize(self, adata: anndata.AnnData, *, layer: str | None = AUTO, gene_column: str | None = None,
                 min_coverage: float = 0.5) -> TokenBatch:
        """All cells of a (small) AnnData as one token batch, for :meth:`encode` / :meth:`predict`."""
        dataset = self._dataset(adata, layer=layer, gene_column=gene_column, min_coverage=min_coverage)
        batch = dataset.batch_of(np.arange(len(dataset)))
        self.module.eval()
        with torch.inference_mode():
            self.module.tokenize(batch)
        return batch

    def _head(self, task: str):
        if task not in self.module.heads:
            raise KeyError(f"model has no task {task!r}; its tasks are {self.tasks}. Train one with "
                           f"fit(..., tasks=[{task!r}], label_key=...)")
        return self.module.heads[task]

    @property
    def inference_precision(self) -> str:
        """What inference computes in: "auto", "fp32" or "bf16" (see the class docstring)."""
        return self._inference_precision

    @inference_precision.setter
    def inference_precision(self, value: str) -> None:
        self._inference_precision = check_precision(value, "inference_precision")

    def _autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16,
                              enabled=uses_bf16(self.inference_precision, self.device, inference=True))

    # ---------------------------------------------------------------- inference (AnnData level)
    @torch.inference_mode()
    def _map_cells(self, adata, fn, *, batch_size: int, layer, gene_column, min_coverage, progress_bar: bool,
                   protein_obsm_key: str | None = None):
        from tqdm.auto import tqdm

        dataset = self._dataset(adata, layer=layer, gene_column=gene_column, min_coverage=min_coverage,
                                protein_obsm_key=protein_obsm_key)
        self.module.eval()
        outputs = []
        starts = range(0, len(dataset), batch_size)
        with self._autocast():  # one autocast region: the weights are cast to bf16 once, not per batch
            for start in tqdm(starts, desc="ScDiVa inference", unit="batch", disable=not progress_bar):
                batch = dataset.batch_of(np.arange(start, min(start + batch_size, len(dataset)))).to(self.device)
                outputs.append(fn(batch).float().cpu())
        return torch.cat(outputs).numpy()

    def get_latent(self, adata: anndata.AnnData, batch_size: int = 256, *, layer: str | None = AUTO,
                   gene_column: str | None = None, min_coverage: float = 0.5,
                   progress_bar: bool = False, protein_obsm_key: str | None = None) -> np.ndarray:
        """Latent mean of every cell, ``(n_cells, n_latent)`` float32 (batch-corrected if the model
        was trained with the integration task and a batch key). With ``protein_obsm_key`` (a model
        with the protein modality) the cells' protein counts join the RNA in the joint latent."""
        if protein_obsm_key is not None and self.module.protein is None:
            raise ValueError("protein_obsm_key given, but this model has no protein modality; train it with "
                             "fit(..., protein_obsm_key=...) first")
        return self._map_cells(adata, self.module.encode, batch_size=batch_size, layer=layer,
                               gene_column=gene_column, min_coverage=min_coverage, progress_bar=progress_bar,
                               protein_obsm_key=protein_obsm_key)

    def predict_protein(self, adata: anndata.AnnData, batch_size: int = 256, *, layer: str | None = AUTO,
                        gene_column: str | None = None, min_coverage: float = 0.5,
                        protein_obsm_key: str | None = None, progress_bar: bool = False) -> np.ndarray:
        """Expected protein counts ``(n_cells, n_proteins)`` (columns: ``config.protein_names``)
        decoded from the latent; from RNA alone unless ``protein_obsm_key`` is given."""
        protein = self.module.protein
        if protein is None:
            raise ValueError("this model has no protein modality; train it with fit(..., protein_obsm_key=...)")
        return self._map_cells(adata, lambda b: protein.rate(self.module.encode(b)), batch_size=batch_size,
                               layer=layer, gene_column=gene_column, min_coverage=min_coverage,
                               progress_bar=progress_bar, protein_obsm_key=protein_obsm_key)

    def predict_proba(self, adata: anndata.AnnData, task: str = "annotation", batch_size: int = 256, *,
                      layer: str | None = AUTO, gene_column: str | None = None, min_coverage: float = 0.5,
                      progress_bar: bool = False) -> tuple[np.ndarray, list[str]]:
        """Class probabilities ``(n_cells, n_classes)`` of a classifier task, and the class names."""
        head = self._head(task)
        if head.kind != "classifier":
            raise ValueError(f"task {task!r} is a {head.kind!r} task, not a classifier")

        def probabilities(batch: TokenBatch) -> torch.Tensor:
            return torch.softmax(head(self.module(batch), batch).float(), dim=-1)

        proba = self._map_cells(adata, probabilities, batch_size=batch_size, layer=layer,
                                gene_column=gene_column, min_coverage=min_coverage, progress_bar=progress_bar)
        return proba, list(head.categories)

    def predict_labels(self, adata: anndata.AnnData, task: str = "annotation", **kwargs: Any
                       ) -> tuple[np.ndarray, np.ndarray]:
        """Predicted label (str array) and its probability (the confidence, in [0, 1]) per cell."""
        proba, categories = self.predict_proba(adata, task=task, **kwargs)
        best = proba.argmax(1)
        return np.asarray(categories, dtype=object)[best], proba[np.arange(len(best)), best]
