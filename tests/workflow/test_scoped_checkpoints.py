"""A checkpoint recipe with `seed: each`: every seed of the run pretrains its own checkpoint, and each
seed's ScDiVa job loads the checkpoint of its seed (so ScDiVa's spread over seeds includes pretraining)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
import yaml

SEEDS = [0, 1]


@pytest.fixture(scope="module")
def per_seed_run(smoke_run, workflow_tools, tmp_path_factory):
    base = tmp_path_factory.mktemp("per_seed_checkpoints")
    workdir = workflow_tools.copy(smoke_run, base / "run")
    recipe = yaml.safe_load((workflow_tools.repo / "config" / "smoke.yaml").read_text())["checkpoints"]["scdiva_tiny"]
    per_seed = {"checkpoints": {"scdiva_tiny": {"recipe": {**recipe["recipe"], "seed": "each"}}}}
    overlay = base / "per_seed.yaml"
    overlay.write_text(yaml.safe_dump({"seeds": SEEDS, **per_seed}))
    run = workflow_tools.run(workdir, overlay, extra=tuple(zeroshot_targets(SEEDS)))
    # the same run given one seed more, as a user extends a finished benchmark (dry run)
    more_seeds = base / "more_seeds.yaml"
    more_seeds.write_text(yaml.safe_dump({"seeds": [*SEEDS, 2], **per_seed}))
    extended = workflow_tools.run(workdir, more_seeds, extra=("--dry-run", *zeroshot_targets([*SEEDS, 2])))
    return workdir, run.log, extended.log


def zeroshot_targets(seeds: list[int]) -> list[str]:
    return [f"results/pbmc_3chem/integration/scdiva_zeroshot/seed{s}.h5ad" for s in seeds]


@pytest.mark.slow
def test_each_seed_pretrains_its_checkpoint_and_its_jobs_load_it(per_seed_run):
    from scdiva import ScDiVaModel
    from scdiva.bench.methods.scdiva import counts_view

    workdir, log, _ = per_seed_run
    for seed in SEEDS:
        assert f"--seed {seed} " in log  # `scdiva train` of each seed's checkpoint
    checkpoints = {s: workdir / "resources" / "checkpoints" / "scdiva_tiny" / f"seed{s}" for s in SEEDS}
    models = {s: ScDiVaModel.from_pretrained(path) for s, path in checkpoints.items()}
    first, second = (dict(models[s].module.state_dict()) for s in SEEDS)
    assert any(not np.allclose(first[k].numpy(), second[k].numpy()) for k in first)  # two pretrainings
    cells = counts_view(ad.read_h5ad(workdir / "results" / "pbmc_3chem" / "preprocessed.h5ad"))
    for seed in SEEDS:
        job = ad.read_h5ad(workdir / "results" / "pbmc_3chem" / "integration" / "scdiva_zeroshot" / f"seed{seed}.h5ad")
        own = np.asarray(models[seed].get_latent(cells), dtype=np.float32)
        other = np.asarray(models[1 - seed].get_latent(cells), dtype=np.float32)
        np.testing.assert_allclose(job.obsm["X_emb"], own, atol=1e-5)
        assert not np.allclose(job.obsm["X_emb"], other, atol=1e-3)


@pytest.mark.slow
def test_a_seed_added_later_pretrains_only_its_own_checkpoint(per_seed_run):
    # the pretraining corpus is kept: made again, it would be newer than the finished seeds'
    # checkpoints and retrain them all
    _, _, extended = per_seed_run
    assert "--seed 2 " in extended
    for seed in SEEDS:
        assert f"--seed {seed} " not in extended
