"""The ScDiVa network: transformer encoder over gene tokens, variational latent, task heads."""

from __future__ import annotations

import torch
from torch import nn

from scdiva.config import ScDiVaConfig
from scdiva.data.vocab import CLS_ID, N_SPECIAL, PAD_ID
from scdiva.module.heads import TASK_REGISTRY, CountDecoderHead, EncoderOutput, TaskHead
from scdiva.module.layers import GeneValueEmbedding, TransformerBlock
from scdiva.module.protein import ProteinModality
from scdiva.module.tokenizer import normalised_log, tokenize

#: heads every model has; classifier heads are added per task from ``config.tasks``
CORE_TASKS = ("masked_expression", "integration")


class ScDiVaModule(nn.Module):
    """Pure-torch ScDiVa (no AnnData here; see :class:`scdiva.ScDiVaModel` for that).

    ``counts -> tokens (scdiva.module.tokenizer) -> gene + value embedding -> pre-norm transformer
    -> cell representation (cls ++ mean of tokens) -> q(z | cell) = N(mean, exp(logvar)) -> task
    heads``. ``config.n_layers = 0`` leaves only the profile projection and the token embeddings
    (the ablation that shows what the attention blocks add).
    """

    def __init__(self, config: ScDiVaConfig):
        super().__init__()
        self.config = config
        self.embedding = GeneValueEmbedding(config.n_genes + N_SPECIAL, config.d_model)
        self.blocks = nn.ModuleList(TransformerBlock(config.d_model, config.n_heads, config.d_ff, config.dropout)
                                    for _ in range(config.n_layers))
        # the <cls> token starts as a projection of the cell's whole log-normalised profile (all
        # genes, not only the top-k tokens): cheap (one matmul) and it lets a short token sequence
        # see every gene, like the first layer of scVI's encoder
        self.profile_projection = nn.Sequential(nn.Linear(config.n_genes, config.d_model), nn.LayerNorm(config.d_model))
        self.final_norm = nn.LayerNorm(config.d_model)
        self.latent_encoder = nn.Sequential(nn.Linear(2 * config.d_model, config.decoder_hidden), nn.GELU(),
                                            nn.LayerNorm(config.decoder_hidden))
        self.latent_mean = nn.Linear(config.decoder_hidden, config.n_latent)
        self.latent_logvar = nn.Linear(config.decoder_hidden, config.n_latent)
        self.heads = nn.ModuleDict({kind: TASK_REGISTRY[kind](config) for kind in CORE_TASKS})
        # tokenizer statistics (see set_gene_statistics); neutral until set
        self.register_buffer("gene_median", torch.ones(config.n_genes))
        self.register_buffer("gene_mean", torch.ones(config.n_genes))
        self.register_buffer("gene_statistics_set", torch.zeros((), dtype=torch.bool))
        for spec in config.tasks:
            self.add_head(spec)
        # optional protein modality (scdiva.module.protein): None for an RNA-only model
        self.protein = (ProteinModality(config.n_proteins, config.decoder_hidden, config.n_latent)
                        if config.n_proteins else None)

    def enable_protein(self, names: list[str]) -> ProteinModality:
        """Add the protein modality (encoder + decoder) for proteins ``names`` to an RNA-only module."""
        if self.protein is not None:
            raise ValueError("this module already has a protein modality")
        self.config.protein_names = list(names)
        device = next(self.parameters()).device
        self.protein = ProteinModality(len(names), self.config.decoder_hidden, self.config.n_latent).to(device)
        return self.protein

    def add_head(self, spec: dict) -> TaskHead:
        """Build the head of a task spec (``{"name", "kind", ...}``) and attach it under its name."""
        kind = spec["kind"]
        if kind not in TASK_REGISTRY:
            raise ValueError(f"unknown task kind {kind!r}; registered kinds: {sorted(TASK_REGISTRY)}")
        options = {k: v for k, v in spec.items() if k not in ("name", "kind")}
        head = TASK_REGISTRY[kind](self.config, spec["name"], **options)
        device = next(self.parameters()).device
        self.heads[spec["name"]] = head.to(device) if device.type != "meta" else head
        return head

    @property
    def decoder(self) -> CountDecoderHead:
        return self.heads["integration"]  # type: ignore[return-value]

    # ---------------------------------------------------------------- tokens
    def set_gene_statistics(self, median: torch.Tensor, mean: torch.Tensor) -> None:
        """Per-gene corpus statistics of normalised expression (``count / library * target_sum``)
        that the tokenizer ranks and samples with: ``median`` over the cells expressing the gene,
        ``mean`` over all cells. Set once, from the pretraining corpus (saved with the weights)."""
        self.gene_median.copy_(median.to(self.gene_median))
        self.gene_mean.copy_(mean.to(self.gene_mean))
        self.gene_statistics_set.fill_(True)

    def tokenize(self, batch) -> None:
        """Fill ``batch.gene_ids/values/padding_mask`` from its counts (see scdiva.module.tokenizer)."""
        batch.gene_ids, batch.values, batch.padding_mask = tokenize(
            batch.counts, batch.observed, batch.library, max_tokens=self.config.max_tokens,
            n_zero_tokens=self.config.n_zero_tokens, target_sum=self.config.target_sum,
            selection=self.config.token_selection, gene_median=self.gene_median, gene_mean=self.gene_mean,
            training=self.training)

    # ---------------------------------------------------------------- forward
    def forward(self, batch, mask_values: bool = False) -> EncoderOutput:
        """Encode a :class:`~scdiva.data.dataset.TokenBatch` (tokenised here if it has no tokens).

        With ``mask_values`` a random ``config.mask_ratio`` of the gene tokens (never ``<cls>``
        or padding) have their value hidden, for the masked-expression task.
        """
        if batch.gene_ids is None:
            self.tokenize(batch)
        value_mask = None
        if mask_values and self.config.mask_ratio > 0:
            maskable = (batch.gene_ids != PAD_ID) & (batch.gene_ids != CLS_ID)
            value_mask = (torch.rand(batch.gene_ids.shape, device=batch.gene_ids.device)
                          < self.config.mask_ratio) & maskable
        x = self.embedding(batch.gene_ids, batch.values, value_mask)
        profile = self._profile(batch, value_mask)
        x[:, 0] = x[:, 0] + self.profile_projection(profile)
        for block in self.blocks:
            x = block(x, batch.padding_mask)
        x = self.final_norm(x)
        keep = (~batch.padding_mask).unsqueeze(-1).to(x.dtype)
        mean_pool = (x * keep).sum(1) / keep.sum(1).clamp(min=1.0)
        cell = torch.cat([x[:, 0], mean_pool], dim=-1)
        h = self.latent_encoder(cell)
        if self.protein is not None:  # the protein modality joins the same latent
            h = self.protein.fuse(h, batch)
        qz_mean = self.latent_mean(h)
        qz_logvar = self.latent_logvar(h).clamp(-10.0, 8.0)
        if self.training:
            z = qz_mean + torch.randn_like(qz_mean) * (0.5 * qz_logvar).exp()  # reparameterisation
        else:
            z = qz_mean
        return EncoderOutput(x, cell, qz_mean, qz_logvar, z, value_mask, profile)

    def _profile(self, batch, value_mask: torch.Tensor | None) -> torch.Tensor:
        """log1p(library-normalised counts) over the vocabulary; masked genes are zeroed so the
        masked-expression task cannot read its answer from the profile."""
        profile = normalised_log(batch.counts, batch.library, self.config.target_sum)
        if value_mask is not None and value_mask.any():
            rows = torch.arange(profile.shape[0], device=profile.device).unsqueeze(-1).expand_as(value_mask)
            profile = profile.index_put((rows[value_mask], batch.gene_ids[value_mask] - N_SPECIAL),
                                        torch.zeros((), device=profile.device))
        return profile

    def encode(self, batch) -> torch.Tensor:
        """Latent mean (B, n_latent)."""
        return self.forward(batch).qz_mean

    def losses(self, batch, tasks: list[str], step: int) -> dict[str, torch.Tensor]:
        """Loss per task (tasks with nothing to learn in this batch are left out).

        The masked-expression head gets its own forward pass with hidden values; every other head
        is trained on the clean input, the same input the latent is used on at inference.
        """
        if batch.gene_ids is None:
            self.tokenize(batch)
        result = {}
        clean_tasks = [t for t in tasks if t != "masked_expression"]
        if clean_tasks:
            out = self.forward(batch)
            for task in clean_tasks:
                loss = self.heads[task].loss(out, batch, step)
                if loss is not None:
                    result[task] = loss
            if "integration" in result and self.protein is not None and batch.protein is not None:
                # the protein likelihood is part of the joint ELBO (scdiva.module.protein)
                result["integration"] = result["integration"] + self.protein.loss(out.z, batch.protein)
        if "masked_expression" in tasks:
            loss = self.heads["masked_expression"].loss(self.forward(batch, mask_values=True), batch, step)
            if loss is not None:
                result["masked_expression"] = loss
        return result

    def finish_training(self, tasks: list[str], n_steps: int) -> None:
        """Advance schedules that span training runs (the decoder's KL warm-up) by ``n_steps``."""
        if "integration" in tasks:
            self.decoder.kl_step += n_steps
