"""core.sampling.held_out_by_group: the held-out cells of the multi-task and multi-modal benchmarks."""

import numpy as np

from scdiva.bench.core.sampling import held_out_by_group


def test_each_group_gives_its_rounded_share_of_cells():
    groups = np.array(["a"] * 10 + ["b"] * 5 + ["c"] * 1)
    mask = held_out_by_group(groups, 0.2, seed=0)
    assert [int(mask[groups == g].sum()) for g in "abc"] == [2, 1, 0]
    assert (held_out_by_group(groups, 0.2, seed=0) == mask).all()
    assert any((held_out_by_group(groups, 0.2, seed=s) != mask).any() for s in range(1, 5))


def test_at_least_one_tests_every_group_that_can_also_train():
    groups = np.array(["a"] * 10 + ["b"] * 2 + ["c"] * 1)
    mask = held_out_by_group(groups, 0.1, seed=3, at_least_one=True)
    assert [int(mask[groups == g].sum()) for g in "abc"] == [1, 1, 0]


def test_the_draw_order_of_the_groups_decides_which_cells():
    groups = np.array(["b", "a"] * 20)
    sorted_order = held_out_by_group(groups, 0.3, seed=1)
    assert (held_out_by_group(groups, 0.3, seed=1, order=["a", "b"]) == sorted_order).all()
    assert (held_out_by_group(groups, 0.3, seed=1, order=["b", "a"]) != sorted_order).any()
