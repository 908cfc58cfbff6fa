import numpy as np
import pytest
import scipy.stats
import torch

from scdiva.config import ScDiVaConfig
from scdiva.data.dataset import TokenBatch
from scdiva.module import TASK_REGISTRY, ScDiVaModule, TaskHead, register_task
from scdiva.module.distributions import gaussian_kl, negative_binomial_log_likelihood


def test_negative_binomial_matches_scipy():
    x = torch.tensor([0.0, 1.0, 7.0, 30.0])
    mu, theta = torch.tensor([0.5, 2.0, 5.0, 40.0]), torch.tensor([0.3, 1.0, 10.0, 2.0])
    p = (theta / (theta + mu)).numpy()
    expected = scipy.stats.nbinom.logpmf(x.numpy(), theta.numpy(), p)
    np.testing.assert_allclose(negative_binomial_log_likelihood(x, mu, theta).numpy(), expected, rtol=1e-4)


def test_gaussian_kl_is_zero_only_at_the_prior():
    assert gaussian_kl(torch.zeros(2, 4), torch.zeros(2, 4)).abs().max() < 1e-7
    assert (gaussian_kl(torch.ones(2, 4), torch.zeros(2, 4)) > 0).all()


def _batch(gene_ids, values):
    gene_ids = torch.tensor(gene_ids)
    return TokenBatch(gene_ids=gene_ids, values=torch.tensor(values), padding_mask=gene_ids == 0)


def test_padding_does_not_change_a_cells_encoding():
    torch.manual_seed(0)
    module = ScDiVaModule(ScDiVaConfig.from_size("tiny", n_genes=20)).eval()
    alone = module.encode(_batch([[1, 5, 6, 7]], [[0.0, 1.0, 2.0, 0.5]]))
    padded = module.encode(_batch([[1, 5, 6, 7, 0, 0], [1, 3, 4, 8, 9, 10]],
                                  [[0.0, 1.0, 2.0, 0.5, 0.0, 0.0], [0.0, 1, 1, 1, 1, 1]]))
    torch.testing.assert_close(padded[0], alone[0], atol=1e-5, rtol=1e-5)
    # and the padded positions really are masked: changing their values changes nothing
    moved = module.encode(_batch([[1, 5, 6, 7, 0, 0]], [[0.0, 1.0, 2.0, 0.5, 3.0, 3.0]]))
    torch.testing.assert_close(moved[0], alone[0], atol=1e-5, rtol=1e-5)


def test_adding_a_task_is_adding_one_registered_class():
    @register_task("test_regression")
    class RegressionHead(TaskHead):
        def __init__(self, config, name, **kwargs):
            super().__init__(config, name)
            self.linear = torch.nn.Linear(config.n_latent, 1)

        def forward(self, out, batch):
            return self.linear(out.qz_mean).squeeze(-1)

        def loss(self, out, batch, step):
            return self.forward(out, batch).pow(2).mean()

    try:
        module = ScDiVaModule(ScDiVaConfig.from_size(
            "tiny", n_genes=20, tasks=[{"name": "depth", "kind": "test_regression"}]))
        losses = module.losses(_batch([[1, 5, 6]], [[0.0, 1.0, 2.0]]), ["depth"], step=0)
        assert set(losses) == {"depth"} and losses["depth"].requires_grad
        with pytest.raises(ValueError, match="already registered"):
            register_task("test_regression")(RegressionHead)
    finally:
        TASK_REGISTRY.pop("test_regression")
