"""The optional protein modality of ScDiVa (CITE-seq / ECCITE-seq surface-protein counts, ADT).

What was chosen, and why
------------------------
*Encoder.* A small MLP over ``log1p`` protein counts whose output is **added** to the
transformer's cell representation after ``latent_encoder`` (the hidden layer right before the
mean / log-variance projections), so RNA and protein share one variational latent ``q(z | rna,
protein)``. Gene tokens carry a vocabulary position and a value; proteins are few (tens), dense
and measured on another scale, so a separate dense encoder is cheaper and simpler than a second
kind of token, and it leaves the gene tokenizer and the transformer untouched. Its last layer
starts at zero, so switching the modality on does not disturb a pretrained RNA encoder.

*Modality dropout.* During training the protein input of each cell is hidden with probability
``PROTEIN_DROPOUT`` (0.5). The latent must then explain the proteins from RNA alone half of the
time, which is what predicting proteins for cells measured by RNA only needs (and what makes the
embedding of an RNA-only cell comparable to that of a CITE-seq cell).

*Decoder and likelihood.* ``z -> hidden -> log rate`` per protein, with a negative binomial
likelihood and one learned inverse dispersion per protein. totalVI models ADT counts as a
two-component mixture (background + foreground); that fits ambient antibody background better but
doubles the decoder and needs a per-batch background prior estimated from the data. The NB is the
likelihood ScDiVa's RNA decoder already uses, its mean is directly a predicted count, and the
benchmark (``scdiva.bench.tasks.multimodal``) scores predictions by per-protein correlation, which a
background offset does not change. The rate is not scaled by the cell's protein library size
(unknown when proteins are predicted from RNA).

*Loss.* The protein negative log-likelihood, averaged over proteins, is added to the
``integration`` loss (the ELBO), whose RNA reconstruction is likewise averaged over genes: each
modality weighs as one per-feature average, so 49 proteins are not drowned by thousands of genes
(a plain sum, as in totalVI, would give them ~2% of the reconstruction term here).
"""

from __future__ import annotations

import torch
from torch import nn

from scdiva.module.distributions import negative_binomial_log_likelihood

#: probability that a training cell's protein input is hidden from the encoder (modality dropout)
PROTEIN_DROPOUT = 0.5


class ProteinModality(nn.Module):
    """Protein encoder (adds to the cell representation) and NB decoder (from the latent).

    Parameters: ``n_proteins`` (columns of the protein count matrix), ``hidden`` (width of the
    representation it adds to: ``config.decoder_hidden``), ``n_latent``.
    """

    def __init__(self, n_proteins: int, hidden: int, n_latent: int):
        super().__init__()
        if n_proteins < 1:
            raise ValueError(f"a protein modality needs at least one protein, got {n_proteins}")
        self.n_proteins = n_proteins
        self.encoder = nn.Sequential(nn.Linear(n_proteins, hidden), nn.GELU(), nn.LayerNorm(hidden),
                                     nn.Linear(hidden, hidden))
        nn.init.zeros_(self.encoder[-1].weight)
        nn.init.zeros_(self.encoder[-1].bias)
        self.decoder = nn.Sequential(nn.Linear(n_latent, hidden), nn.GELU(), nn.LayerNorm(hidden),
                                     nn.Linear(hidden, n_proteins))
        self.log_theta = nn.Parameter(torch.zeros(n_proteins))

    def init_rate(self, mean_counts: torch.Tensor) -> None:
        """Start the decoder at the proteins' mean counts (its output bias = log mean), so training
        begins from the mean-protein predictor instead of a rate of 1 for every protein."""
        with torch.no_grad():
            self.decoder[-1].bias.copy_(torch.log(mean_counts.to(self.decoder[-1].bias).clamp(min=1e-3)))

    def fuse(self, h: torch.Tensor, batch) -> torch.Tensor:
        """``h`` plus the protein encoding of the cells of ``batch`` that carry proteins (unchanged
        when the batch has none; half of them hidden at random in training)."""
        protein = getattr(batch, "protein", None)
        if protein is None:
            return h
        encoded = self.encoder(torch.log1p(protein.to(h.dtype)))
        if self.training and PROTEIN_DROPOUT > 0:
            keep = (torch.rand(h.shape[0], 1, device=h.device) >= PROTEIN_DROPOUT).to(h.dtype)
            encoded = encoded * keep
        return h + encoded

    def rate(self, z: torch.Tensor) -> torch.Tensor:
        """Expected protein counts (B, n_proteins), > 0."""
        return torch.exp(self.decoder(z).float().clamp(max=15.0))

    def loss(self, z: torch.Tensor, protein: torch.Tensor) -> torch.Tensor:
        """Negative binomial NLL of the observed counts, averaged over proteins and cells (lower is better)."""
        log_lik = negative_binomial_log_likelihood(protein.float(), self.rate(z), self.log_theta.exp())
        return -log_lik.mean()
