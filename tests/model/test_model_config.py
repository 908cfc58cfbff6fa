import pytest
import torch

from scdiva.config import NOMINAL_PARAMETERS, ConfigError, ScDiVaConfig
from scdiva.module import ScDiVaModule


@pytest.mark.parametrize(("size", "n_genes"), [("base", 20_000), ("large", 30_000)])
def test_named_size_parameter_count_within_15_percent(size, n_genes):
    config = ScDiVaConfig.from_size(size, n_genes=n_genes, batch_categories=["a", "b"])
    assert (config.d_model, config.n_layers, config.n_heads) == {
        "base": (1024, 24, 16), "large": (2048, 32, 32)}[size]
    with torch.device("meta"):
        module = ScDiVaModule(config)
    n = sum(p.numel() for p in module.parameters())
    assert abs(n - NOMINAL_PARAMETERS[size]) / NOMINAL_PARAMETERS[size] < 0.15, n


def test_config_json_round_trip(tmp_path):
    config = ScDiVaConfig.from_size("tiny", n_latent=8, batch_categories=["x"])
    config.to_json(tmp_path / "config.json")
    assert ScDiVaConfig.from_json(tmp_path / "config.json") == config


@pytest.mark.parametrize(("overrides", "message"), [
    ({"n_heads": 5}, "divisible by n_heads"),
    ({"n_layers": -1}, "n_layers must be an integer >= 0"),
    ({"token_selection": "random"}, "token_selection must be one of"),
    ({"dropout": 1.5}, "dropout must be in"),
    ({"mask_ratio": -0.1}, "mask_ratio"),
    ({"n_latnet": 8}, "unknown config field"),
])
def test_bad_config_values_raise_clear_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        ScDiVaConfig.from_size("tiny", **overrides)


def test_unknown_size_lists_the_named_sizes():
    with pytest.raises(ConfigError, match=r"choose one of \['base', 'large', 'small', 'tiny'\]"):
        ScDiVaConfig.from_size("huge")


def test_a_removed_option_loads_at_its_fixed_value_and_is_named_otherwise():
    saved = {**ScDiVaConfig.from_size("tiny", n_genes=50).to_dict(), "decoder_batch_gene_offsets": False}
    assert ScDiVaConfig.from_dict(saved) == ScDiVaConfig.from_size("tiny", n_genes=50)
    with pytest.raises(ConfigError, match=r"decoder_batch_gene_offsets=True, an option this version no longer has"):
        ScDiVaConfig.from_dict({**saved, "decoder_batch_gene_offsets": True})
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['no_such_option'\]"):
        ScDiVaConfig.from_dict({**saved, "no_such_option": 1})
