import dataclasses

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


def _batch(gene_ids, values, n_genes=20, batch=None):
    """A batch with given tokens and counts that agree with them (token id - 2 = gene position)."""
    gene_ids = torch.tensor(gene_ids)
    counts = torch.zeros(gene_ids.shape[0], n_genes)
    for row, (ids, vals) in enumerate(zip(gene_ids.tolist(), values, strict=True)):
        for token, value in zip(ids, vals, strict=True):
            if token >= 2 and value > 0:
                counts[row, token - 2] = round(value * 10)
    return TokenBatch(counts=counts, observed=torch.ones_like(counts, dtype=torch.bool), library=counts.sum(1),
                      batch=None if batch is None else torch.tensor(batch), gene_ids=gene_ids,
                      values=torch.tensor(values), padding_mask=gene_ids == 0)


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


def test_cpu_inference_attention_by_matmul_matches_scaled_dot_product_attention():
    from scdiva.module import layers

    torch.manual_seed(0)
    q, k, v = torch.randn(3, 3, 2, 7, 8).unbind(0)  # (batch, heads, length, head_dim)
    padding = torch.zeros(3, 7, dtype=torch.bool)
    padding[1, 5:] = padding[2, 2:] = True
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=~padding[:, None, None, :])
    torch.testing.assert_close(layers._matmul_attention(q, k, v, padding), expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(layers._matmul_attention(q, k, v, None),
                               torch.nn.functional.scaled_dot_product_attention(q, k, v), atol=1e-6, rtol=1e-5)
    # taken for bf16 inference on CPU only: training (gradients) and float32 keep the fused kernel
    x = torch.zeros(2, 7, 16)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert layers._attends_by_matmul(x)
        assert not layers._attends_by_matmul(torch.zeros(2, layers.MATMUL_ATTENTION_MAX_TOKENS + 1, 16))
    with torch.inference_mode():
        assert not layers._attends_by_matmul(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not layers._attends_by_matmul(x)


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


def _trained_decoder_module(conditioning="every_layer"):
    torch.manual_seed(0)
    config = ScDiVaConfig.from_size("tiny", n_genes=20, batch_categories=["a", "b"],
                                    decoder_batch_conditioning=conditioning)
    return ScDiVaModule(config).eval()


def test_latent_ignores_the_batch_label_while_the_decoder_uses_it():
    module = _trained_decoder_module()
    as_a = _batch([[1, 5, 6, 7]], [[0.0, 1.0, 2.0, 0.5]], batch=[0])
    as_b = _batch([[1, 5, 6, 7]], [[0.0, 1.0, 2.0, 0.5]], batch=[1])
    out_a, out_b = module(as_a), module(as_b)
    torch.testing.assert_close(out_a.qz_mean, out_b.qz_mean)  # the encoder never sees the batch
    decoded_a, decoded_b = module.decoder(out_a, as_a), module.decoder(out_b, as_b)
    # from the first step (ordinary initialisation, not zeros) the batch moves every gene's output
    assert (decoded_a - decoded_b).abs().max() > 1e-3
    torch.testing.assert_close(decoded_a.sum(-1), torch.ones(1))


def test_legacy_decoder_starts_blind_to_the_batch():
    module = _trained_decoder_module("legacy")
    as_a = _batch([[1, 5, 6, 7]], [[0.0, 1.0, 2.0, 0.5]], batch=[0])
    as_b = _batch([[1, 5, 6, 7]], [[0.0, 1.0, 2.0, 0.5]], batch=[1])
    torch.testing.assert_close(module.decoder(module(as_a), as_a), module.decoder(module(as_b), as_b))


def test_profile_projection_feeds_the_first_token():
    """The <cls> token sees every gene through the profile: a gene that is no token still moves z."""
    torch.manual_seed(0)
    module = ScDiVaModule(ScDiVaConfig.from_size("tiny", n_genes=20)).eval()
    base = _batch([[1, 5, 6]], [[0.0, 1.0, 2.0]])
    extra = _batch([[1, 5, 6]], [[0.0, 1.0, 2.0]])
    extra.counts[0, 15] = 40.0  # gene 15 is expressed but not among the tokens
    extra.library = extra.counts.sum(1)
    assert (module.encode(base) - module.encode(extra)).abs().max() > 1e-4
    module.profile_projection[0].weight.data.zero_()
    module.profile_projection[0].bias.data.zero_()
    same_tokens = _batch([[1, 5, 6]], [[0.0, 1.0, 2.0]])
    same_tokens.counts[0, 15] = 40.0
    same_tokens.library = base.library  # same token values, only the non-token gene differs
    torch.testing.assert_close(module.encode(base), module.encode(same_tokens))


def test_batch_adversary_trains_the_classifier_and_pushes_the_encoder_to_uniform():
    torch.manual_seed(0)
    config = ScDiVaConfig.from_size("tiny", n_genes=20, batch_categories=["a", "b"])
    module = ScDiVaModule(config).train()
    cells = _batch([[1, 5, 6, 7], [1, 3, 4, 8]], [[0.0, 1.0, 2.0, 0.5], [0.0, 1.0, 1.0, 1.0]], batch=[0, 1])
    out = module(cells)
    assert module.decoder.adversary is None  # off by default in a fresh config
    module.decoder.set_adversarial_batch_weight(0.5)
    adversary = module.decoder.adversary
    z = out.qz_mean.detach().requires_grad_(True)
    adversary.loss(z, cells.batch).backward()
    classifier_grad = adversary.output.weight.grad.clone()
    # the encoder's gradient is that of the cross-entropy to a uniform prediction only
    z_alone = z.detach().requires_grad_(True)
    (-torch.log_softmax(adversary(z_alone), -1).mean()).backward()
    torch.testing.assert_close(z.grad, z_alone.grad)
    # the classifier's gradient is that of the true-batch cross-entropy only
    adversary.zero_grad()
    torch.nn.functional.cross_entropy(adversary(z.detach()), cells.batch).backward()
    torch.testing.assert_close(classifier_grad, adversary.output.weight.grad)
    training = module.decoder.loss(out, cells, step=0)
    without = module.decoder.loss(out, cells, step=None)  # held-out ELBO: no adversarial term
    module.decoder.set_adversarial_batch_weight(0.0)
    torch.testing.assert_close(without, module.decoder.loss(out, cells, step=None))
    assert not torch.isclose(training, module.decoder.loss(out, cells, step=0))


def test_batch_adversary_keeps_known_batches_when_new_ones_arrive():
    config = ScDiVaConfig.from_size("tiny", n_genes=20, batch_categories=["a", "b"], adversarial_batch_weight=1.0)
    module = ScDiVaModule(config)
    before = module.decoder.adversary.output.weight.detach().clone()
    module.decoder.set_batches(["a", "b"], ["b", "c", "a"])
    after = module.decoder.adversary.output.weight
    assert after.shape[0] == 3
    torch.testing.assert_close(after[0], before[1])
    torch.testing.assert_close(after[2], before[0])


def test_kl_weight_scales_only_the_kl_term_of_the_elbo():
    torch.manual_seed(0)
    module = ScDiVaModule(ScDiVaConfig.from_size("tiny", n_genes=20, batch_categories=["a", "b"])).eval()
    cells = _batch([[1, 5, 6, 7], [1, 3, 4, 8]], [[0.0, 1.0, 2.0, 0.5], [0.0, 1.0, 1.0, 1.0]], batch=[0, 1])
    out = module(cells)
    kl = (gaussian_kl(out.qz_mean, out.qz_logvar) / cells.observed.sum(-1)).mean()
    unit = module.decoder.loss(out, cells, step=None)
    module.decoder.set_kl_weight(2.5)
    torch.testing.assert_close(module.decoder.loss(out, cells, step=None), unit + 1.5 * kl)
    assert module.config.kl_weight == 2.5  # kept in the config, so a saved model records it
    with pytest.raises(ValueError, match="kl_weight must be >= 0"):
        module.decoder.set_kl_weight(-0.5)


def test_free_bits_leave_each_dimensions_kl_unpenalised_up_to_the_floor():
    torch.manual_seed(0)
    module = ScDiVaModule(ScDiVaConfig.from_size("tiny", n_genes=20, batch_categories=["a", "b"])).eval()
    cells = _batch([[1, 5, 6, 7], [1, 3, 4, 8]], [[0.0, 1.0, 2.0, 0.5], [0.0, 1.0, 1.0, 1.0]], batch=[0, 1])
    out = module(cells)
    n_measured = cells.observed.sum(-1).float()
    per_dimension = (gaussian_kl(out.qz_mean, out.qz_logvar, per_dimension=True) / n_measured[:, None]).mean(0)
    kl = per_dimension.sum()
    elbo = module.decoder.loss(out, cells, step=None)
    reconstruction = elbo - kl
    floor_nats = 0.5 * float((per_dimension * n_measured.mean()).median())  # between the dimensions' KLs
    floor = floor_nats / n_measured.mean()
    module.decoder.set_kl_free_bits(floor_nats)
    assert module.config.kl_free_bits == floor_nats  # kept in the config, so a saved model records it
    expected = reconstruction + torch.maximum(per_dimension, floor).sum()
    torch.testing.assert_close(module.decoder.loss(out, cells, step=None), expected)
    assert (per_dimension < floor).any() and (per_dimension > floor).any()  # the floor binds somewhere
    # a dimension below the floor gets no gradient from the KL term; one above it does
    qz_mean = out.qz_mean.detach().requires_grad_()
    module.decoder.set_kl_weight(1.0)
    module.decoder._free_bits_kl(dataclasses.replace(out, qz_mean=qz_mean), n_measured).backward()
    gradient = qz_mean.grad.abs().sum(0)
    assert (gradient[per_dimension < floor] == 0).all() and (gradient[per_dimension > floor] > 0).all()
    module.decoder.set_kl_free_bits(0.0)
    torch.testing.assert_close(module.decoder.loss(out, cells, step=None), elbo)
    with pytest.raises(ValueError, match="kl_free_bits must be >= 0"):
        module.decoder.set_kl_free_bits(-1.0)
