"""Centers in integers for a first pass of partition ranking: the AVX2 kernel equal to its
scalar reference, the error bound holding, and the ranking they narrow equal to the exact one
(searches with and without them agree bit for bit, alone and in batches)."""

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


INT8_KERNEL = _cpu_has("avx2")


def test_sums_are_the_integer_products_of_the_codes():
    """The scalar reference against numpy's integer product of codes rebuilt from the products:
    a center's sum is exactly <codes of x, codes of c> + 64 * sum(codes of c), both in [-63, 63]."""
    rng = np.random.default_rng(3)
    centers = rng.standard_normal((70, 9)).astype(np.float32)
    x = rng.standard_normal((3, 9)).astype(np.float32)
    sums, _, _, usable = _core.testing.int8_center_products("scalar", x, centers)
    assert usable
    cq = np.round(centers / (np.abs(centers).max(1, keepdims=True) / 63)).astype(np.int64)
    xq = np.round(x / (np.abs(x).max(1, keepdims=True) / 63)).astype(np.int64)
    np.testing.assert_array_equal(sums, xq @ cq.T + 64 * cq.sum(1))


@pytest.mark.parametrize("rows,n,d", [(1, 5, 3), (1, 130, 768), (2, 64, 17), (7, 65, 64), (13, 200, 100)])
def test_products_are_within_their_bound(rows, n, d):
    rng = np.random.default_rng(n + d)
    centers = (rng.standard_normal((n, d)) * rng.uniform(0.01, 100, (n, 1))).astype(np.float32)
    x = rng.standard_normal((rows, d)).astype(np.float32)
    _, approx, bounds, usable = _core.testing.int8_center_products("scalar", x, centers)
    assert usable
    exact = _core.testing.center_products(x, centers)  # what the exact ranking uses
    rounding = 2.0 ** -22 * np.abs(approx)  # product()'s own float rounding
    assert (np.abs(approx.astype(np.float64) - exact) <= bounds + rounding).all()
    # Tight enough to rule centers out: a few percent of ||x|| ||c|| (7-bit centers and queries).
    scale = np.linalg.norm(x, axis=1)[:, None] * np.linalg.norm(centers, axis=1)[None, :]
    assert (bounds < 0.05 * scale).all()


@pytest.mark.skipif(not INT8_KERNEL, reason="this CPU lacks AVX2: only the scalar reference runs")
@pytest.mark.parametrize("rows,n,d", [(1, 1, 1), (1, 63, 17), (2, 64, 64), (5, 129, 30), (3, 200, 768),
                                        (8, 64, 64), (9, 200, 768), (4, 70, 17), (9, 129, 21)])
def test_avx2_kernel_equals_the_scalar_reference(rows, n, d):
    """Whole and partial panels, dimensions past the last whole group of 4, groups of four
    queries sharing each load of the centers and the queries left over."""
    rng = np.random.default_rng(rows * n * d)
    centers = (rng.standard_normal((n, d)) * 3).astype(np.float32)
    x = rng.standard_normal((rows, d)).astype(np.float32)
    scalar = _core.testing.int8_center_products("scalar", x, centers)[0]
    np.testing.assert_array_equal(_core.testing.int8_center_products("avx2", x, centers)[0], scalar)


@pytest.mark.skipif(not INT8_KERNEL, reason="this CPU lacks AVX2: only the scalar reference runs")
def test_avx2_kernel_at_the_largest_16_bit_sums():
    """Query codes all 127 against centers all +63 or all -63: every 16-bit sum of two groups
    is +-32004, the most the kernel adds before widening, in tiles of 4 queries and alone."""
    d = 68  # 17 groups: pairs and a last group alone
    centers = (np.repeat([[1.0], [-1.0]], 33, axis=0) * np.ones((1, d))).astype(np.float32)
    x = np.ones((5, d), np.float32)
    scalar = _core.testing.int8_center_products("scalar", x, centers)[0]
    np.testing.assert_array_equal(_core.testing.int8_center_products("avx2", x, centers)[0], scalar)
    assert (scalar[:, :33] == d * 127 * 63).all() and (scalar[:, 33:66] == -d * 127 * 63).all()


def test_extreme_values_keep_the_bound_or_turn_the_pass_off():
    """Zero and subnormal rows quantize to zeros with the whole row as error; centers whose
    bounds overflow float switch the first pass off."""
    centers = np.array([[0, 0, 0], [1e-40, -1e-42, 0], [1, 2, 3]], np.float32)
    x = np.array([[0, 0, 0], [1e-41, 0, 1e-40], [3, -2, 1]], np.float32)
    _, approx, bounds, usable = _core.testing.int8_center_products("scalar", x, centers)
    assert usable
    exact = _core.testing.center_products(x, centers)
    assert (np.abs(approx.astype(np.float64) - exact) <= bounds + 2.0 ** -22 * np.abs(approx) + 1e-37).all()
    huge = np.array([[3e38, 3e38], [1, 1]], np.float32)
    assert not _core.testing.int8_center_products("scalar", np.ones((1, 2), np.float32), huge)[3]


def _alone(index: Index, queries: np.ndarray, **params) -> tuple[np.ndarray, np.ndarray]:
    found = [index.search(q[None], 5, **params) for q in queries]
    return np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])


# 300 centers of 832 dimensions: 1 MiB of float panels, where the first pass in integers starts.
N_CENTERS, DIM = 300, 832
CENTER_SETS = {
    # One vector per partition, so that nprobe 1 must find the exact nearest.
    "unit": lambda rng: rng.standard_normal((N_CENTERS, DIM)),
    # Centers apart by far less than the integers resolve: the exact pass must break them.
    "near_ties": lambda rng: 1.0 + 1e-5 * rng.standard_normal((N_CENTERS, DIM)),
    "duplicates": lambda rng: np.repeat(rng.standard_normal((N_CENTERS // 5, DIM)), 5, axis=0),
    "large_l2": lambda rng: 500 + 40 * rng.standard_normal((N_CENTERS, DIM)),
    "large_values": lambda rng: 1e15 * rng.standard_normal((N_CENTERS, DIM)),
    # Lengths 3e-6 to 3e-5: IP and COSINE rank by direction, <q, c> / ||c||, so an error in a
    # product moves a center's rank by as much over its length.
    "short": lambda rng: rng.standard_normal((N_CENTERS, DIM)) * rng.uniform(1e-7, 1e-6, (N_CENTERS, 1)),
    # Products so large (||q|| ||c|| >= 1e30: L2, whose centers keep their norms) that the
    # first pass is skipped and the query ranked exactly at once.
    "huge": lambda rng: 1e17 * rng.standard_normal((N_CENTERS, DIM)),
}


@pytest.mark.parametrize("metric", ["IP", "L2", "COSINE"])
@pytest.mark.parametrize("case", sorted(CENTER_SETS))
def test_ranking_alone_and_in_batches_is_the_exact_one(metric, case, monkeypatch):
    rng = np.random.default_rng(len(case))
    base = CENTER_SETS[case](rng).astype(np.float32)
    queries = (base[rng.integers(0, len(base), 40)] + 0.01 * rng.standard_normal((40, DIM))).astype(np.float32)
    index = Index(DIM, metric, nlist=len(base), with_raw_data=True).build(base)
    for nprobe in (1, 3, 40):
        batched = index.search(queries, 5, nprobe=nprobe, reorder_k=20)
        alone = _alone(index, queries, nprobe=nprobe, reorder_k=20)
        monkeypatch.setenv("ANISOSCAN_SIMD", "scalar")  # no first pass in integers: the exact ranking alone
        exact = _alone(index, queries, nprobe=nprobe, reorder_k=20)
        monkeypatch.delenv("ANISOSCAN_SIMD")
        for got in (alone, batched):
            np.testing.assert_array_equal(got[0], exact[0])
            np.testing.assert_array_equal(got[1], exact[1])



@pytest.mark.skipif(not INT8_KERNEL, reason="this CPU lacks AVX2: every index keeps its float panels")
@pytest.mark.parametrize("metric", ["IP", "L2", "COSINE"])
@pytest.mark.parametrize("extra", [{}, {"soar_lambda": 1.0}], ids=["plain", "soar"])
def test_without_float_panels_rows_go_and_queries_rank_as_with_them(metric, extra, tmp_path, monkeypatch):
    """Where the first pass in integers runs, the float panels are not kept: rows are assigned
    (add) and queries ranked from it and the rows, and every bit matches an index that kept
    the panels (built with no first pass)."""
    rng = np.random.default_rng(3)
    centers = rng.standard_normal((N_CENTERS, DIM))
    base = (centers[rng.integers(0, N_CENTERS, 1500)] + 0.3 * rng.standard_normal((1500, DIM))).astype(np.float32)
    queries = (base[:30] + 0.05 * rng.standard_normal((30, DIM))).astype(np.float32)
    params = dict(nlist=N_CENTERS, with_raw_data=True, kmeans_iters=4, **extra)
    lean = Index(DIM, metric, **params).build(base)
    monkeypatch.setenv("ANISOSCAN_SIMD", "scalar")
    kept = Index(DIM, metric, **params).build(base)
    monkeypatch.delenv("ANISOSCAN_SIMD")
    panel_bytes = 5 * 64 * DIM * 4  # 300 centers in panels of 64
    int8_bytes = panel_bytes // 4 + 16 * N_CENTERS  # its panels, and 4 numbers per center
    assert kept.memory_bytes - lean.memory_bytes == panel_bytes - int8_bytes
    lean.save(tmp_path / "lean.idx")
    kept.save(tmp_path / "kept.idx")
    assert (tmp_path / "lean.idx").read_bytes() == (tmp_path / "kept.idx").read_bytes()  # the same partitions
    # Incremental adds go where a build puts them, both ways.
    more = (base[:200] + 0.01).astype(np.float32)
    lean.add(more, np.arange(5000, 5200))
    monkeypatch.setenv("ANISOSCAN_SIMD", "scalar")
    kept.add(more, np.arange(5000, 5200))
    monkeypatch.delenv("ANISOSCAN_SIMD")
    lean.save(tmp_path / "lean.idx")
    kept.save(tmp_path / "kept.idx")
    assert (tmp_path / "lean.idx").read_bytes() == (tmp_path / "kept.idx").read_bytes()
    rare = np.arange(0, 1500, 97)  # 16 ids: the probed partitions starve, every partition gets ranked
    for nprobe in (1, 10, N_CENTERS // 4 + 1, N_CENTERS):  # nlist: every product, from the rows
        search = dict(nprobe=nprobe, reorder_k=20)
        expected = kept.search(queries, 5, **search)
        found = [lean.search(queries, 5, **search), _alone(lean, queries, **search)]
        filtered = kept.search(queries, 5, allowed_ids=rare, **search)
        np.testing.assert_array_equal(lean.search(queries, 5, allowed_ids=rare, **search)[0], filtered[0])
        radius = float(np.quantile(expected[1], 0.5))
        for a, b in zip(lean.range_search(queries, radius, **search), kept.range_search(queries, radius, **search)):
            np.testing.assert_array_equal(a, b)
        monkeypatch.setenv("ANISOSCAN_SIMD", "scalar")  # no first pass now: all products from the rows
        found.append(lean.search(queries, 5, **search))
        monkeypatch.delenv("ANISOSCAN_SIMD")
        for got in found:
            np.testing.assert_array_equal(got[0], expected[0])
            np.testing.assert_array_equal(got[1], expected[1])
