"""Resume through the public API: from a checkpoint inside an epoch, and refused for another run.

The checkpoint interval (3 steps) is not a multiple of the steps per epoch (4 for 120 cells in
batches of 32), so the run resumes in the middle of an epoch: a resume that ignored its position
inside the epoch (restarting the epoch, or reshuffling) would train on other batches and end with
other weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scdiva import ScDiVaModel
from scdiva.module.scdiva_module import ScDiVaModule

SETTINGS = dict(tasks=["masked_expression", "integration"], batch_key="donor", max_steps=9, batch_size=32,
                seed=1, progress_bar=False)
EVERY = 3
CELLS_PER_EPOCH_STEPS = 4  # ceil(120 / 32)


class Interrupted(Exception):
    pass


def _weights(model) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in model.module.state_dict().items()}


_LAST_CALLS: dict[str, int] = {"n": 0}


def _interrupt_after(monkeypatch, n_calls: int) -> None:
    original = ScDiVaModule.losses
    calls = _LAST_CALLS
    calls["n"] = 0

    def losses_then_crash(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > n_calls:
            raise Interrupted
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ScDiVaModule, "losses", losses_then_crash)


def _checkpointed_run(small_pbmc, tmp_path, monkeypatch, crash_after: int):
    """A run interrupted after `crash_after` training steps (checkpoints every EVERY steps)."""
    _interrupt_after(monkeypatch, crash_after)
    with pytest.raises(Interrupted):
        ScDiVaModel.from_config("tiny", genes=small_pbmc.var_names, seed=0).fit(
            small_pbmc, checkpoint_dir=tmp_path, checkpoint_every=EVERY, **SETTINGS)
    monkeypatch.undo()


def test_resume_from_the_middle_of_an_epoch_ends_with_the_uninterrupted_weights(small_pbmc, tmp_path, monkeypatch):
    from scdiva.train.trainer import steps_per_epoch

    assert steps_per_epoch(small_pbmc.n_obs, SETTINGS["batch_size"]) == CELLS_PER_EPOCH_STEPS
    assert EVERY % CELLS_PER_EPOCH_STEPS != 0 and CELLS_PER_EPOCH_STEPS % EVERY != 0
    torch.manual_seed(0)
    reference = ScDiVaModel.from_config("tiny", genes=small_pbmc.var_names, seed=0)
    reference_history = reference.fit(small_pbmc, **SETTINGS)

    # Steps 1-5 run, checkpoint at step 3 (epoch 0, 3 of its 4 batches done), crash in step 6.
    _checkpointed_run(small_pbmc, tmp_path, monkeypatch, crash_after=5)
    resumed_model = ScDiVaModel.from_config("tiny", genes=small_pbmc.var_names, seed=123)
    _interrupt_after(monkeypatch, 10_000)  # counts the steps the resumed run trains, crashes never
    resumed = resumed_model.fit(small_pbmc, checkpoint_dir=tmp_path, resume=True, checkpoint_every=EVERY, **SETTINGS)
    monkeypatch.undo()
    assert _LAST_CALLS["n"] == SETTINGS["max_steps"] - EVERY  # it started at the step-3 checkpoint, not at 0
    assert [h["step"] for h in resumed] == list(range(1, SETTINGS["max_steps"] + 1))
    np.testing.assert_allclose([h["loss"] for h in resumed], [h["loss"] for h in reference_history], rtol=1e-5)
    got, want = _weights(resumed_model), _weights(reference)
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("change", ["seed", "batch_size", "dataset_size"])
def test_resume_refuses_a_checkpoint_of_a_different_run(small_pbmc, pbmc, tmp_path, monkeypatch, change):
    _checkpointed_run(small_pbmc, tmp_path, monkeypatch, crash_after=4)
    settings, data = dict(SETTINGS), small_pbmc
    if change == "seed":
        settings["seed"] = 2
    elif change == "batch_size":
        settings["batch_size"] = 16
    else:
        data = pbmc[:150].copy()
    with pytest.raises(ValueError, match="cannot resume") as error:
        ScDiVaModel.from_config("tiny", genes=small_pbmc.var_names, seed=0).fit(
            data, checkpoint_dir=tmp_path, resume=True, checkpoint_every=EVERY, **settings)
    assert {"seed": "seed", "batch_size": "batch_size", "dataset_size": "n_cells"}[change] in str(error.value)


def test_resume_refuses_other_cells_of_the_same_number(small_pbmc, pbmc, tmp_path, monkeypatch):
    _checkpointed_run(small_pbmc, tmp_path, monkeypatch, crash_after=4)
    others = pbmc[~pbmc.obs_names.isin(small_pbmc.obs_names)][: small_pbmc.n_obs].copy()
    assert others.n_obs == small_pbmc.n_obs
    with pytest.raises(ValueError, match="cannot resume") as error:
        ScDiVaModel.from_config("tiny", genes=small_pbmc.var_names, seed=0).fit(
            others, checkpoint_dir=tmp_path, resume=True, checkpoint_every=EVERY, **SETTINGS)
    assert "data: checkpoint" in str(error.value)
