"""Likelihoods and divergences used by the variational objective."""

from __future__ import annotations

import torch


def negative_binomial_log_likelihood(x: torch.Tensor, mu: torch.Tensor, theta: torch.Tensor,
                                     eps: float = 1e-8) -> torch.Tensor:
    """Elementwise ``log NB(x; mean=mu, inverse dispersion=theta)`` (higher is better)."""
    log_theta_mu = torch.log(theta + mu + eps)
    return (theta * (torch.log(theta + eps) - log_theta_mu)
            + x * (torch.log(mu + eps) - log_theta_mu)
            + torch.lgamma(x + theta) - torch.lgamma(theta) - torch.lgamma(x + 1.0))


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor, *, per_dimension: bool = False) -> torch.Tensor:
    """``KL(N(mean, exp(logvar)) || N(0, I))`` per cell, summed over latent dimensions (or, with
    ``per_dimension``, one value per cell and dimension), >= 0."""
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)
    return kl if per_dimension else kl.sum(-1)
