"""Task heads and their registry.

A task is one :class:`TaskHead` subclass registered under a ``kind``: it turns the encoder's
output into a prediction (:meth:`TaskHead.forward`) and a training loss (:meth:`TaskHead.loss`).
Adding a task means adding one class decorated with :func:`register_task`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from scdiva.config import ScDiVaConfig
from scdiva.module.distributions import gaussian_kl, negative_binomial_log_likelihood

TASK_REGISTRY: dict[str, type[TaskHead]] = {}


def register_task(kind: str):
    """Class decorator: make a :class:`TaskHead` available under ``kind``."""

    def decorate(cls: type[TaskHead]) -> type[TaskHead]:
        if kind in TASK_REGISTRY:
            raise ValueError(f"task kind {kind!r} is already registered by {TASK_REGISTRY[kind].__name__}")
        cls.kind = kind
        TASK_REGISTRY[kind] = cls
        return cls

    return decorate


@dataclass
class EncoderOutput:
    """What the encoder computed for a batch; heads read what they need from here."""

    token_states: torch.Tensor        # (B, L, d_model)
    cell: torch.Tensor                # (B, 2 d_model) cell representation
    qz_mean: torch.Tensor             # (B, n_latent)
    qz_logvar: torch.Tensor           # (B, n_latent)
    z: torch.Tensor                   # (B, n_latent) sample (training) or mean (eval)
    value_mask: torch.Tensor | None   # (B, L) bool, positions whose value was hidden


class TaskHead(nn.Module):
    """Base class of task heads. ``kind`` is set by :func:`register_task`."""

    kind: ClassVar[str] = ""

    def __init__(self, config: ScDiVaConfig, name: str, **kwargs):
        super().__init__()
        self.name = name

    def forward(self, out: EncoderOutput, batch) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def loss(self, out: EncoderOutput, batch, step: int) -> torch.Tensor | None:  # pragma: no cover
        """Scalar loss of ``batch``, or ``None`` when the batch has nothing to learn from."""
        raise NotImplementedError


@register_task("masked_expression")
class MaskedExpressionHead(TaskHead):
    """Predict the hidden log-normalised values of masked gene tokens (mean squared error)."""

    def __init__(self, config: ScDiVaConfig, name: str = "masked_expression"):
        super().__init__(config, name)
        self.mlp = nn.Sequential(nn.Linear(config.d_model, config.d_model), nn.GELU(),
                                 nn.Linear(config.d_model, 1))

    def forward(self, out: EncoderOutput, batch) -> torch.Tensor:
        return self.mlp(out.token_states).squeeze(-1)

    def loss(self, out: EncoderOutput, batch, step: int) -> torch.Tensor | None:
        if out.value_mask is None or not out.value_mask.any():
            return None
        predicted = self.forward(out, batch)[out.value_mask].float()
        return F.mse_loss(predicted, batch.values[out.value_mask])


@register_task("integration")
class CountDecoderHead(TaskHead):
    """Batch-conditioned negative-binomial decoder; its loss is the negative ELBO (scVI style).

    ``p(x | z, s) = NB(library * softmax(f(z) + e_s), theta_g)``: the batch ``s`` enters only the
    decoder, so the encoder (which never sees the batch) is free to drop batch effects from
    ``z``: that makes ``z`` a batch-corrected latent. The softmax runs over the genes the cell's
    dataset measured. Loss = (reconstruction NLL + warmed-up KL) / number of measured genes, so its
    scale is comparable to the other tasks' losses.
    """

    def __init__(self, config: ScDiVaConfig, name: str = "integration"):
        super().__init__(config, name)
        self.config = config
        self.hidden = nn.Linear(config.n_latent, config.decoder_hidden)
        self.batch_embedding = nn.Embedding(max(len(config.batch_categories), 1), config.decoder_hidden)
        nn.init.zeros_(self.batch_embedding.weight)
        self.norm = nn.LayerNorm(config.decoder_hidden)
        self.scale = nn.Linear(config.decoder_hidden, config.n_genes)
        self.log_theta = nn.Parameter(torch.zeros(config.n_genes))

    def set_batches(self, old: list[str], new: list[str]) -> None:
        """Condition on ``new`` batch categories, keeping the embeddings of those in ``old``."""
        weight = torch.zeros(max(len(new), 1), self.hidden.out_features, device=self.hidden.weight.device)
        for i, category in enumerate(new):
            if category in old:
                weight[i] = self.batch_embedding.weight.data[old.index(category)]
        self.batch_embedding = nn.Embedding.from_pretrained(weight, freeze=False)

    def forward(self, out: EncoderOutput, batch) -> torch.Tensor:
        """Normalised expression (rows sum to 1 over measured genes)."""
        return self._scale(out.z, batch)

    def _scale(self, z: torch.Tensor, batch) -> torch.Tensor:
        h = self.hidden(z)
        if batch.batch is not None:
            known = (batch.batch >= 0).unsqueeze(-1)
            h = h + self.batch_embedding(batch.batch.clamp(min=0)) * known
        logits = self.scale(F.relu(self.norm(h))).float()
        if batch.observed is not None:
            logits = logits.masked_fill(~batch.observed, float("-inf"))
        return torch.softmax(logits, dim=-1)

    def kl_weight(self, step: int) -> float:
        warmup = self.config.kl_warmup_steps
        return self.config.kl_weight * (1.0 if warmup == 0 else min(1.0, step / warmup))

    def loss(self, out: EncoderOutput, batch, step: int) -> torch.Tensor | None:
        if batch.counts is None:
            raise ValueError("the integration task needs counts in the batch (collate with counts)")
        mu = self._scale(out.z, batch) * batch.library.unsqueeze(-1)
        theta = self.log_theta.float().exp()
        log_lik = negative_binomial_log_likelihood(batch.counts, mu, theta)
        reconstruction = -(log_lik * batch.observed).sum(-1)
        kl = gaussian_kl(out.qz_mean.float(), out.qz_logvar.float())
        n_measured = batch.observed.sum(-1).clamp(min=1)
        return ((reconstruction + self.kl_weight(step) * kl) / n_measured).mean()


@register_task("classifier")
class ClassifierHead(TaskHead):
    """Cell-level classifier on the latent mean (cross-entropy; cells labelled ``-1`` are skipped).

    Classifying from the latent mean (not a sample) makes predictions deterministic and ties the
    label structure to the same space used for integration, as scANVI does.
    """

    def __init__(self, config: ScDiVaConfig, name: str, categories: list[str] | None = None,
                 obs_key: str | None = None):
        super().__init__(config, name)
        if not categories:
            raise ValueError(f"classifier task {name!r} needs its label categories")
        self.categories = list(categories)
        self.obs_key = obs_key
        self.mlp = nn.Sequential(nn.Linear(config.n_latent, config.decoder_hidden), nn.GELU(),
                                 nn.Dropout(config.dropout), nn.Linear(config.decoder_hidden, len(categories)))

    def forward(self, out: EncoderOutput, batch) -> torch.Tensor:
        """Class logits (B, n_classes)."""
        return self.mlp(out.qz_mean)

    def loss(self, out: EncoderOutput, batch, step: int) -> torch.Tensor | None:
        target = batch.labels.get(self.name)
        if target is None:
            raise ValueError(f"batch has no labels for classifier task {self.name!r}")
        if not (target >= 0).any():
            return None
        return F.cross_entropy(self.forward(out, batch).float(), target, ignore_index=-1)
