"""Model configuration and the named sizes (``tiny``, ``small``, ``base``, ``large``)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Named architectures. ``tiny``/``small`` train in minutes on a laptop CPU and keep short
#: contexts (32 / 128 expressed genes a cell); ``base`` (~350M parameters) and ``large`` (~1.5B)
#: are the published-scale shapes with the original contexts (up to 20,000 / 30,000 expressed genes
#: a cell: attention runs through ``scaled_dot_product_attention``, whose memory-efficient and flash
#: kernels on GPU never materialise the L x L matrix). Build them on the meta device to inspect
#: them; training them needs accelerators.
NAMED_SIZES: dict[str, dict[str, Any]] = {
    # tiny: 2 heads of 32 dims; CPU attention kernels run 16-dim heads about 1.6x slower for the same FLOPs.
    # 32 + 4 tokens: the same scIB Total as 64 + 8 on both embedded datasets (PBMC +0.001, 7 seeds; human
    # pancreas +0.004, 5 seeds) in 46% less fine-tune time, and inference about twice as fast. The decoder's
    # and latent encoder's hidden layer 256 wide, not 128: fine-tuned scIB Total +0.011 on the PBMCs (higher in
    # 9 of 10 seeds), level on the human pancreas (-0.002, 10 seeds) (docs/model.md)
    "tiny": dict(d_model=64, n_layers=2, n_heads=2, d_ff=128, n_latent=16, decoder_hidden=256,
                 max_tokens=32, n_zero_tokens=4, vocab_size_hint=2_000),
    "small": dict(d_model=128, n_layers=3, n_heads=4, d_ff=256, n_latent=24, decoder_hidden=256,
                  max_tokens=128, n_zero_tokens=16, vocab_size_hint=5_000),
    "base": dict(d_model=1024, n_layers=24, n_heads=16, d_ff=4096, n_latent=64, decoder_hidden=1024,
                 max_tokens=20_000, n_zero_tokens=200, vocab_size_hint=20_000),
    "large": dict(d_model=2048, n_layers=32, n_heads=32, d_ff=6656, n_latent=128, decoder_hidden=2048,
                  max_tokens=30_000, n_zero_tokens=256, vocab_size_hint=30_000),
}

#: Nominal parameter counts the named sizes are built to (checked by the tests within 15%).
NOMINAL_PARAMETERS: dict[str, int] = {"base": 350_000_000, "large": 1_500_000_000}


#: the count decoder's dispersion choices (``ScDiVaConfig.decoder_dispersion``; scvi-tools' names)
DECODER_DISPERSIONS = ("gene", "gene-batch")
#: the keywords of ScDiVaModel.fit that set the integration objective (the config keeps what they set)
OBJECTIVE_SETTINGS = ("kl_weight", "kl_weight_ramp_epochs", "kl_free_bits", "adversarial_batch_weight",
                      "decoder_dispersion")


#: options that were removed, with the value every model now has: a saved config.json that names
#: one with that value loads as before
REMOVED_FIELDS: dict[str, Any] = {"decoder_batch_gene_offsets": False}


class ConfigError(ValueError):
    """A configuration value is invalid (the message names the field and the allowed values)."""


#: depth of a classifier head's MLP when its task spec does not name one (checkpoints saved before
#: the depth was an option rebuild with it); see scdiva.module.heads.ClassifierHead
DEFAULT_CLASSIFIER_HIDDEN_LAYERS = 1
#: what a classifier head reads: the latent mean, the encoder's cell representation before the
#: variational bottleneck, the latent mean plus a linear term on the log-normalised genes, or the
#: latent mean (or the cell representation) and the genes as two classifiers trained side by side
#: (see scdiva.module.heads.ClassifierHead)
CLASSIFIER_REPRESENTATIONS = ("latent", "cell", "latent_and_genes", "latent_and_genes_ensemble",
                              "cell_and_genes_ensemble")
DEFAULT_CLASSIFIER_REPRESENTATION = "latent"


@dataclass
class ScDiVaConfig:
    """Architecture and tokenisation hyperparameters of a ScDiVa model.

    Build one from a named size with :meth:`from_size` (``ScDiVaConfig.from_size("tiny")``) and
    override any field by keyword. ``n_genes`` is the gene-vocabulary size *without* the special
    tokens; it is set from the vocabulary when a model is created.
    """

    size: str = "custom"
    n_genes: int = 2_000
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 128
    dropout: float = 0.1
    n_latent: int = 16
    decoder_hidden: int = 128
    #: at most this many expressed genes per cell are tokens (the most highly expressed ones)
    max_tokens: int = 64
    #: unexpressed genes sampled per cell as zero-valued tokens (teach the model what "off" means)
    n_zero_tokens: int = 8
    #: fraction of gene tokens whose value is hidden for the masked-expression task
    mask_ratio: float = 0.15
    #: library size each cell is normalised to before log1p (the value input)
    target_sum: float = 1e4
    #: optimizer steps over which the KL weight rises linearly from 0 to ``kl_weight``, counted
    #: across every training run of the model (a fine-tune continues the pretraining schedule)
    kl_warmup_steps: int = 1000
    #: weight of the KL term in the ELBO (a beta-VAE's beta). Above 1 the latent keeps less of what the
    #: batch-conditioned decoder can explain itself; the workflow's integration fine-tune sets its own
    kl_weight: float = 1.0
    #: free bits: nats of KL per latent dimension (averaged over a minibatch's cells) that cost nothing,
    #: so a dimension the KL weight would otherwise switch off can keep that much information; 0: off
    kl_free_bits: float = 0.0
    #: a move of the KL weight in progress, ``[from_weight, first_step, n_steps]`` (None: none): from
    #: optimizer step ``first_step`` (counted across training runs, as the warm-up) the weight goes
    #: linearly from ``from_weight`` to ``kl_weight`` over ``n_steps`` (in place of the warm-up); set by a
    #: fit's ``kl_weight_ramp_epochs``
    kl_weight_ramp: list[float] | None = None
    #: which expressed genes become tokens: "median_normalised" (Geneformer-style rank after
    #: dividing by each gene's corpus median) or "top_count" (highest raw counts); see
    #: scdiva.module.tokenizer
    token_selection: str = "median_normalised"
    #: how the count decoder sees the batch: "every_layer" (added to every decoder layer, scVI
    #: style) or "legacy" (one zero-initialised vector before the hidden norm); see CountDecoderHead
    decoder_batch_conditioning: str = "every_layer"
    #: hidden layers of the count decoder (scVI uses 1)
    decoder_layers: int = 1
    #: the count decoder's negative-binomial dispersion: "gene" (one per gene, scVI's default) or
    #: "gene-batch" (one per gene and batch, scVI's ``dispersion="gene-batch"``); see CountDecoderHead
    decoder_dispersion: str = "gene"
    #: weight of an adversarial batch classifier on the latent mean (the encoder is trained towards
    #: a uniform batch prediction; 0: off); see scdiva.module.heads.BatchAdversary
    adversarial_batch_weight: float = 0.0
    #: what the model was trained on (datasets, cells, genes, labels used), for provenance
    training_data: list[dict[str, Any]] = field(default_factory=list)
    #: task heads (filled in by training; saved so ``from_pretrained`` can rebuild them)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    #: batch categories the count decoder is conditioned on (empty: no decoder yet)
    batch_categories: list[str] = field(default_factory=list)
    #: the size hint of the vocabulary this size was designed for (meta-device parameter counts)
    vocab_size_hint: int = 2_000
    #: names of the surface proteins of the optional protein modality (empty: RNA only); see
    #: scdiva.module.protein
    protein_names: list[str] = field(default_factory=list)

    @property
    def n_proteins(self) -> int:
        """Proteins of the protein modality (0: an RNA-only model)."""
        return len(self.protein_names)

    def __post_init__(self) -> None:
        self.validate()

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_size(cls, size: str, **overrides: Any) -> ScDiVaConfig:
        """Config of a named size (``tiny``, ``small``, ``base``, ``large``) with overrides."""
        if size not in NAMED_SIZES:
            raise ConfigError(f"unknown model size {size!r}; choose one of {sorted(NAMED_SIZES)}")
        values = dict(NAMED_SIZES[size])
        values.setdefault("n_genes", values["vocab_size_hint"])
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown config field(s) {sorted(unknown)}; valid fields: "
                              f"{sorted(f.name for f in dataclasses.fields(cls))}")
        values.update(overrides)
        return cls(size=size, **values)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ScDiVaConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        for name, fixed in REMOVED_FIELDS.items():
            if name in values and values[name] != fixed:
                raise ConfigError(f"config.json sets {name}={values[name]!r}, an option this version no longer has "
                                  f"(only {fixed!r}; docs/model.md#decisions): the checkpoint needs the version that "
                                  "wrote it")
        unknown = set(values) - known - set(REMOVED_FIELDS) - {"model_type", "scdiva_version"}
        if unknown:
            raise ConfigError(f"config.json has unknown field(s) {sorted(unknown)}")
        return cls(**{k: v for k, v in values.items() if k in known})

    @classmethod
    def from_json(cls, path: str | Path) -> ScDiVaConfig:
        path = Path(path)
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path} is not valid JSON: {err}") from err
        return cls.from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        from scdiva import __version__

        return {"model_type": "scdiva", "scdiva_version": __version__, **dataclasses.asdict(self)}

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    # ---------------------------------------------------------------- validation
    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first invalid field."""
        positive_ints = ["n_genes", "d_model", "n_heads", "d_ff", "n_latent", "decoder_hidden", "max_tokens",
                         "decoder_layers"]
        if not isinstance(self.n_layers, int) or self.n_layers < 0:
            raise ConfigError(f"n_layers must be an integer >= 0 (0: no transformer blocks), got {self.n_layers!r}")
        choices = {"token_selection": ("median_normalised", "top_count"),
                   "decoder_batch_conditioning": ("every_layer", "legacy"),
                   "decoder_dispersion": DECODER_DISPERSIONS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.n_zero_tokens, int) or self.n_zero_tokens < 0:
            raise ConfigError(f"n_zero_tokens must be an integer >= 0, got {self.n_zero_tokens!r}")
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ConfigError(f"mask_ratio must be in [0, 1), got {self.mask_ratio!r}")
        if not self.target_sum > 0:
            raise ConfigError(f"target_sum must be > 0, got {self.target_sum!r}")
        if not self.adversarial_batch_weight >= 0:
            raise ConfigError(f"adversarial_batch_weight must be >= 0, got {self.adversarial_batch_weight!r}")
        if self.kl_weight < 0 or self.kl_warmup_steps < 0 or not self.kl_free_bits >= 0:
            raise ConfigError("kl_weight, kl_warmup_steps and kl_free_bits must be >= 0")
        if self.kl_weight_ramp is not None and (len(self.kl_weight_ramp) != 3 or not min(self.kl_weight_ramp) >= 0):
            raise ConfigError(f"kl_weight_ramp must be [from_weight, first_step, n_steps], each >= 0, got "
                              f"{self.kl_weight_ramp!r}")
