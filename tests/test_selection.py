"""The selection that ranks partition centers: the k smallest values, ties to the smaller index."""

from __future__ import annotations

import numpy as np
import pytest
from anisoscan import _core


def expected(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((np.arange(len(values)), values))[:k]
    return values[order], order.astype(np.uint32)


CASES = {
    "random": lambda rng, n: rng.standard_normal(n),
    "ties": lambda rng, n: rng.integers(0, 7, n).astype(float),
    "constant": lambda rng, n: np.full(n, 3.5),
    "one_far_outlier": lambda rng, n: np.append(rng.random(n - 1), 1e30),
    "tiny_spread": lambda rng, n: 1.0 + rng.random(n) * 1e-6,
    "huge_range": lambda rng, n: rng.choice([-3e38, 3e38, 0.0, -1.0], n),
    "sorted_descending": lambda rng, n: -np.arange(n, dtype=float),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("n", [1, 5, 255, 2000])
def test_smallest_k_matches_a_full_sort(case, n):
    rng = np.random.default_rng(n)
    values = CASES[case](rng, n).astype(np.float32)
    for k in sorted({0, 1, 2, n // 3, n - 1, n, n + 4}):
        got_values, got_index = _core.testing.smallest_k(values, k)
        want_values, want_index = expected(values, k)
        np.testing.assert_array_equal(got_index, want_index, err_msg=f"k={k}")
        np.testing.assert_array_equal(got_values, want_values)


def test_smallest_k_rejects_matrices():
    with pytest.raises(ValueError, match="values"):
        _core.testing.smallest_k(np.zeros((2, 2), np.float32), 1)
