"""The inner products that rank partition centers: exact to float rounding, the same for a
row alone or in a block, and fused multiply-adds on CPUs whose clone has them."""

from __future__ import annotations

import platform

import numpy as np
import pytest
from anisoscan import _core


# Row counts cover every tile shape: whole tiles of 6 (AVX2) and 4 (AVX-512), and the last
# 1 to 5 rows, which take 3-, 2- and 1-row tiles.
@pytest.mark.parametrize("rows,n,d", [(1, 5, 3), (2, 70, 65), (3, 64, 130), (4, 130, 37), (5, 129, 64),
                                      (7, 64, 768), (11, 200, 100), (12, 65, 768)])
def test_products_match_float64_and_do_not_depend_on_the_block(rows, n, d):
    rng = np.random.default_rng(rows * n)
    x = rng.standard_normal((rows, d)).astype(np.float32)
    centers = rng.standard_normal((n, d)).astype(np.float32)
    got = _core.testing.center_products(x, centers)
    want = x.astype(np.float64) @ centers.T.astype(np.float64)
    np.testing.assert_allclose(got, want, rtol=0, atol=d * 2e-7 * np.abs(x).max() * np.abs(centers).max())
    for i in range(rows):  # a query searched alone ranks the centers exactly as in a block
        np.testing.assert_array_equal(_core.testing.center_products(x[i:i + 1], centers)[0], got[i])


@pytest.mark.parametrize("d", [1, 7, 8, 17, 768, 771])
@pytest.mark.parametrize("m", [1, 5, 8, 13, 24, 32, 33, 70])
def test_selected_centers_get_the_bits_of_the_whole_product(d, m):
    """One query's candidates are re-scored exactly by reading their rows in place: each product
    must equal, bit for bit, what the product with all centers gives it (1 to 4 groups of 8
    rows transposed at once, passes of 32, a partial last group, dimensions past the last whole 8)."""
    rng = np.random.default_rng(d * m)
    centers = (rng.standard_normal((80, d)) * rng.uniform(0.01, 100, (80, 1))).astype(np.float32)
    x = rng.standard_normal(d).astype(np.float32)
    which = rng.choice(80, m, replace=False).astype(np.uint32)
    got = _core.testing.selected_center_products(x, centers, which)
    np.testing.assert_array_equal(got, _core.testing.center_products(x[None], centers)[0][which])


def test_multiply_adds_are_fused_where_the_cpu_has_them():
    """-1 * 1 + (1 + 2^-12)^2: the product's last bit (2^-24) survives only a fused multiply-add.
    The level list once named "avx2,fma" as one clone; target_clones split it into two and
    the AVX2 one, without FMA, ran: twice the instructions for every dense float loop."""
    e = np.float32(1 + 2.0 ** -12)
    x = np.array([[-1, e]] * 4, np.float32)  # 4 rows: a 4-row tile (AVX-512) or a 3-row and a 1-row tile (AVX2)
    centers = np.array([[1, e]], np.float32)
    fused, unfused = 2.0 ** -11 + 2.0 ** -24, 2.0 ** -11
    alone, block = (_core.testing.center_products(x[:rows], centers)[:, 0] for rows in (1, 4))
    np.testing.assert_array_equal(block, [alone[0]] * 4)
    assert alone[0] in (fused, unfused)
    if platform.machine() in ("x86_64", "AMD64"):  # cloned by level here; elsewhere the compiler decides
        assert alone[0] == (fused if _core.testing.float_loops_fuse() else unfused)
