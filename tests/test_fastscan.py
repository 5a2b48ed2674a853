"""Every SIMD level must return exactly the scalar reference's quantized scores and top-k."""

from __future__ import annotations

import subprocess
import sys

import anisoscan
import numpy as np
import pytest
from anisoscan import _core

LEVELS = ["scalar", "avx2", "avx512"]
RANK = {name: i for i, name in enumerate(LEVELS)}


def require(level: str) -> None:
    detected = _core.detected_simd_level()
    if RANK[level] > RANK[detected]:
        pytest.skip(f"this CPU supports SIMD up to {detected}, not {level}")


def random_case(rng, n, m, spread=1.0):
    codes = rng.integers(0, 16, size=(n, m), dtype=np.uint8)
    lut = (spread * rng.normal(size=(m, 16))).astype(np.float32)
    table, scale, offset = _core.testing.fastscan_quantize_lut(lut)
    return codes, table, _core.testing.fastscan_pack(codes)


def reference_scores(codes, table):
    m = codes.shape[1]
    return table[np.arange(m)[None, :], codes.astype(np.int64)].astype(np.int64).sum(axis=1)


SHAPES = [(1, 1), (5, 2), (31, 3), (32, 4), (33, 5), (64, 16), (100, 25), (257, 33), (1000, 64), (77, 384)]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("n,m", SHAPES)
def test_scores_match_reference(level, n, m):
    require(level)
    rng = np.random.default_rng(n * 1000 + m)
    codes, table, packed = random_case(rng, n, m)
    scores = _core.testing.fastscan_scores(level, packed, table, n, m)
    np.testing.assert_array_equal(scores.astype(np.int64), reference_scores(codes, table))


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("n,m,k", [(1, 3, 5), (40, 7, 10), (1000, 25, 10), (3000, 64, 100), (500, 384, 20)])
def test_topk_matches_scalar_with_ties(level, n, m, k):
    require(level)
    rng = np.random.default_rng(n + m + k)
    # A coarse table (few distinct values) forces many ties; they break by lower index.
    codes = rng.integers(0, 16, size=(n, m), dtype=np.uint8)
    table, _, _ = _core.testing.fastscan_quantize_lut(rng.integers(0, 3, size=(m, 16)).astype(np.float32))
    packed = _core.testing.fastscan_pack(codes)
    idx, scores = _core.testing.fastscan_topk(level, packed, table, n, m, k)
    ref_idx, ref_scores = _core.testing.fastscan_topk("scalar", packed, table, n, m, k)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(scores, ref_scores)
    full = reference_scores(codes, table)
    order = np.lexsort((np.arange(n), full))[:k]
    np.testing.assert_array_equal(idx, order)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("n,m,nq", [(1, 1, 2), (33, 5, 3), (100, 25, 4), (257, 33, 5), (1000, 64, 9), (96, 384, 6)])
def test_queries_scanned_together_match_each_alone(level, n, m, nq):
    """One pass over the codes for several queries gives each exactly its own scan's top-k."""
    require(level)
    rng = np.random.default_rng(n * m + nq)
    codes = rng.integers(0, 16, size=(n, m), dtype=np.uint8)
    packed = _core.testing.fastscan_pack(codes)
    # Coarse tables force ties; one query of each group gets a constant table (all ties).
    tables = np.stack([_core.testing.fastscan_quantize_lut(rng.integers(0, 4, size=(m, 16)).astype(np.float32))[0]
                       for _ in range(nq)])
    tables[-1] = 0
    k = min(10, n)
    idx, scores = _core.testing.fastscan_topk(level, packed, tables, n, m, k)
    assert idx.shape == (nq, k)
    for j in range(nq):
        ref_idx, ref_scores = _core.testing.fastscan_topk("scalar", packed, tables[j], n, m, k)
        np.testing.assert_array_equal(idx[j], ref_idx)
        np.testing.assert_array_equal(scores[j], ref_scores)


def extreme_tables(m: int) -> list[np.ndarray]:
    """Float tables at the quantizer's limits: every row spanning the same range; one pair
    far wider than the rest; rows of wildly different ranges."""
    rng = np.random.default_rng(m)
    uniform = np.tile(np.arange(16, dtype=np.float32), (m, 1))
    one_wide = uniform * 1e-3
    one_wide[:2] = uniform[:2]
    mixed = rng.normal(size=(m, 16)) * 10 ** rng.uniform(-2, 2, size=(m, 1))
    return [np.ascontiguousarray(t, dtype=np.float32) for t in (uniform, one_wide, mixed)]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("m", [1, 3, 25, 384, 767])
def test_pairs_add_in_bytes_and_sums_fit_16_bits(level, m):
    """The kernels add a pair's two lookups in bytes and every pair's sum in 16 bits: the
    quantizer keeps each pair of rows (2p, 2p + 1) within 255 together and all rows' largest
    entries within 65535, and uses what these allow. Scores stay exact at their largest."""
    require(level)
    n = 96
    for lut in extreme_tables(m):
        table, _, _ = _core.testing.fastscan_quantize_lut(lut, level)
        largest = table.astype(np.int64).max(axis=1)
        pair_sums = largest[0::2] + largest[1::2]
        assert pair_sums.max() <= 255 and largest.sum() <= 65535
        # Not needlessly coarse: one of the two limits is (nearly) reached.
        assert pair_sums.max() >= 253 or largest.sum() >= 65535 - 2 * m
        codes = np.full((n, m), 15, dtype=np.uint8)
        codes[::2] = np.random.default_rng(m).integers(0, 16, size=(n // 2, m))
        codes[1::4] = table[:m].argmax(axis=1)  # every vector of these rows at the largest score
        scores = _core.testing.fastscan_scores(level, _core.testing.fastscan_pack(codes), table, n, m)
        np.testing.assert_array_equal(scores.astype(np.int64), reference_scores(codes, table))
        assert int(scores[1]) == largest.sum()


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("m", [1, 2, 3, 25, 64, 384])
def test_table_quantization_matches_reference(level, m):
    """Each level quantizes with its own instructions; bytes, scale and offset must not differ."""
    require(level)
    rng = np.random.default_rng(m)
    cases = [
        rng.normal(size=(m, 16)) * 10 ** rng.uniform(-6, 6, size=(m, 1)),  # rows of wildly different scale
        rng.integers(-2, 3, size=(m, 16)),  # ties, exact half steps, signed zeros below
        np.zeros((m, 16)),  # zero range
    ]
    cases[1] = np.where(cases[1] == 0, -0.0, cases[1])
    for lut in cases:
        lut = np.ascontiguousarray(lut, dtype=np.float32)
        table, scale, offset = _core.testing.fastscan_quantize_lut(lut, level)
        ref_table, ref_scale, ref_offset = _core.testing.fastscan_quantize_lut(lut, "scalar")
        np.testing.assert_array_equal(table, ref_table)
        assert (scale, offset) == (ref_scale, ref_offset)


def test_quantized_table_tracks_the_float_table():
    rng = np.random.default_rng(5)
    lut = rng.normal(size=(25, 16)).astype(np.float32)
    table, scale, offset = _core.testing.fastscan_quantize_lut(lut)
    assert offset == pytest.approx(lut.min(axis=1).sum(), rel=1e-5)
    recon = table[:25] / scale + lut.min(axis=1, keepdims=True)
    assert np.abs(recon - lut).max() <= 0.5 / scale + 1e-6
    assert (table[25:] == 0).all()  # padding row for the odd sub-space count


def test_bad_level_names_and_sizes():
    codes, table, packed = random_case(np.random.default_rng(0), 10, 4)
    with pytest.raises(ValueError, match="unknown level 'sse9'"):
        _core.testing.fastscan_scores("sse9", packed, table, 10, 4)
    with pytest.raises(ValueError, match="wrong size"):
        _core.testing.fastscan_scores("scalar", packed[:10], table, 10, 4)


@pytest.mark.parametrize("level", LEVELS)
def test_index_search_identical_across_forced_levels(level, monkeypatch):
    require(level)
    data = anisoscan.datasets.make_clustered(3000, 40, n_queries=30, seed=3)
    index = anisoscan.Index(40, "IP", nlist=16, with_raw_data=False).build(data.base)
    monkeypatch.setenv("ANISOSCAN_SIMD", "scalar")
    ref = index.search(data.queries, 20, nprobe=6)
    monkeypatch.setenv("ANISOSCAN_SIMD", level)
    assert anisoscan.simd_level() == level
    got = index.search(data.queries, 20, nprobe=6)
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])


def test_forcing_an_unknown_or_unsupported_level_is_a_clear_error():
    code = "import anisoscan, numpy as np; anisoscan.simd_level()"
    out = subprocess.run([sys.executable, "-c", code], env={"ANISOSCAN_SIMD": "sse9"},
                         capture_output=True, text=True)
    assert out.returncode != 0 and "ANISOSCAN_SIMD: unknown level 'sse9'" in out.stderr
    # The rule itself, for CPUs this machine is not: a level above the CPU's is refused.
    with pytest.raises(RuntimeError, match="ANISOSCAN_SIMD=avx512: this CPU supports at most 'avx2'"):
        _core.testing.resolve_simd_level("avx512", "avx2")
    assert _core.testing.resolve_simd_level("scalar", "avx2") == "scalar"
    assert _core.testing.resolve_simd_level("", "avx512") == "avx512"
