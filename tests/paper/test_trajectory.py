"""Trajectory figure on the real PBMCs."""

import numpy as np

from scdiva.bench.tasks.integration.trajectory import plot_trajectories, trajectory_on


def test_pseudotime_starts_at_the_first_hsc(pbmc_preprocessed):
    work, how = trajectory_on(pbmc_preprocessed, pbmc_preprocessed.obsm["X_pca"], label_key="cell_type",
                              root_label="HSC")
    first_hsc = np.flatnonzero(pbmc_preprocessed.obs["cell_type"].astype(str) == "HSC")[0]
    assert work.uns["iroot"] == first_hsc and "HSC" in how
    assert work.obs["dpt_pseudotime"].iloc[first_hsc] == 0
    assert "paga" in work.uns


def test_trajectory_figure_is_written(pbmc_preprocessed, tmp_path):
    path = tmp_path / "trajectory.png"
    medians = plot_trajectories(pbmc_preprocessed, {"PCA": pbmc_preprocessed.obsm["X_pca"]}, str(path),
                                label_key="cell_type", root_label="no-such-type")
    assert path.stat().st_size > 10_000
    assert list(medians.columns) == ["PCA"] and np.isfinite(medians.to_numpy()).all()
