"""Half-precision centers for ranking one query alone: conversions exact against numpy, the
AVX2 kernel equal to its scalar reference, the error bound holding, and the ranking they
narrow equal to the exact one (searches with and without them agree bit for bit)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from anisoscan import Index, _core


def _cpu_has(*flags: str) -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            have = set(re.search(r"^flags\s*:(.*)$", f.read(), re.M).group(1).split())
    except (OSError, AttributeError):
        return False
    return all(flag in have for flag in flags)


HALF_KERNEL = _cpu_has("avx2", "fma", "f16c")


def test_conversions_round_like_numpy():
    rng = np.random.default_rng(0)
    edges = np.array([0, -0.0, 1, -1, 65504, 65519.996, 65520, 1e9, -1e9, 2 ** -14, 2 ** -24, 2 ** -25,
                      3 * 2 ** -26, 2 ** -14 * (1 - 2 ** -11), 1 + 2 ** -11, 1 + 3 * 2 ** -11, np.inf, -np.inf],
                     np.float32)
    scaled = (rng.standard_normal(20000) * 10.0 ** rng.integers(-8, 6, 20000)).astype(np.float32)
    any_bits = rng.integers(0, 2 ** 32, 20000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    values = np.concatenate([edges, scaled, any_bits])
    values = values[np.isfinite(values) | np.isinf(values)]  # NaNs have many encodings
    bits = _core.testing.half_from_float(values)
    with np.errstate(over="ignore"):  # numpy warns where it rounds to infinity, as it should
        np.testing.assert_array_equal(bits, values.astype(np.float16).view(np.uint16))
    every_half = np.arange(2 ** 16, dtype=np.uint16)
    back = _core.testing.float_from_half(every_half)
    want = every_half.view(np.float16).astype(np.float32)
    finite = np.isfinite(want)
    np.testing.assert_array_equal(back[finite], want[finite])
    assert np.array_equal(np.isinf(back), np.isinf(want)) and np.isnan(back[np.isnan(want)]).all()


@pytest.mark.parametrize("n,d", [(5, 3), (64, 50), (130, 768)])
def test_products_are_within_their_bound(n, d):
    rng = np.random.default_rng(n + d)
    centers = rng.standard_normal((n, d)).astype(np.float32)
    x = rng.standard_normal(d).astype(np.float32)
    approx, bounds, usable = _core.testing.half_panel_products("scalar", x, centers)
    assert usable
    exact = _core.testing.center_products(x[None], centers)[0]  # what the exact ranking uses
    assert (np.abs(approx.astype(np.float64) - exact) <= np.linalg.norm(x) * bounds).all()
    assert (bounds < 1e-3 * np.linalg.norm(centers, axis=1)).all()  # tight enough to rule centers out


@pytest.mark.skipif(not HALF_KERNEL, reason="this CPU lacks AVX2, FMA or F16C: only the scalar reference runs")
@pytest.mark.parametrize("n,d", [(1, 1), (63, 17), (64, 64), (200, 768)])
def test_avx2_kernel_equals_the_scalar_reference(n, d):
    rng = np.random.default_rng(n * d)
    centers = (rng.standard_normal((n, d)) * 3).astype(np.float32)
    x = rng.standard_normal(d).astype(np.float32)
    scalar = _core.testing.half_panel_products("scalar", x, centers)[0]
    np.testing.assert_array_equal(_core.testing.half_panel_products("avx2", x, centers)[0], scalar)


def test_centers_beyond_half_range_are_not_used():
    centers = np.array([[1.0, 2.0], [7e4, 0.0]], np.float32)
    assert not _core.testing.half_panel_products("scalar", np.ones(2, np.float32), centers)[2]


def _alone(index: Index, queries: np.ndarray, **params) -> tuple[np.ndarray, np.ndarray]:
    found = [index.search(q[None], 5, **params) for q in queries]
    return np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])


# 300 centers of 832 dimensions: 1 MiB of float panels, where the half-precision pass starts.
N_CENTERS, DIM = 300, 832
CENTER_SETS = {
    # One vector per partition, so that nprobe 1 must find the exact nearest.
    "unit": lambda rng: rng.standard_normal((N_CENTERS, DIM)),
    # Centers apart by less than half precision resolves: the exact pass must break them.
    "near_ties": lambda rng: 1.0 + 1e-5 * rng.standard_normal((N_CENTERS, DIM)),
    "duplicates": lambda rng: np.repeat(rng.standard_normal((N_CENTERS // 5, DIM)), 5, axis=0),
    "large_l2": lambda rng: 500 + 40 * rng.standard_normal((N_CENTERS, DIM)),
    "beyond_half_range": lambda rng: 1e5 * rng.standard_normal((N_CENTERS, DIM)),
}


@pytest.mark.parametrize("metric", ["IP", "L2", "COSINE"])
@pytest.mark.parametrize("case", sorted(CENTER_SETS))
def test_one_query_alone_ranks_exactly(metric, case, monkeypatch):
    rng = np.random.default_rng(len(case))
    base = CENTER_SETS[case](rng).astype(np.float32)
    queries = (base[rng.integers(0, len(base), 40)] + 0.01 * rng.standard_normal((40, DIM))).astype(np.float32)
    index = Index(DIM, metric, nlist=len(base), with_raw_data=True).build(base)
    for nprobe in (1, 3, 40):
        batched = index.search(queries, 5, nprobe=nprobe, reorder_k=20)
        alone = _alone(index, queries, nprobe=nprobe, reorder_k=20)
        monkeypatch.setenv("ANISOSCAN_SIMD", "scalar")  # no half-precision pass: the exact ranking alone
        exact = _alone(index, queries, nprobe=nprobe, reorder_k=20)
        monkeypatch.delenv("ANISOSCAN_SIMD")
        for got in (alone, batched):
            np.testing.assert_array_equal(got[0], exact[0])
            np.testing.assert_array_equal(got[1], exact[1])
