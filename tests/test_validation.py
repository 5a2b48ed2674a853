"""Bad input raises a clear Python exception naming the field, never a crash."""

from __future__ import annotations

import numpy as np
import pytest
from anisoscan import Index, exact_search


@pytest.fixture(scope="module")
def built():
    x = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    return Index(8, "L2", nlist=4).build(x), x


def test_wrong_dimension(built):
    index, x = built
    with pytest.raises(ValueError, match="dimension 9 does not match"):
        index.search(np.zeros((2, 9), np.float32))
    with pytest.raises(ValueError, match="vectors: dimension"):
        index.add(np.zeros((2, 7), np.float32))


@pytest.mark.parametrize("bad", [np.zeros(8, np.float32), np.zeros((1, 2, 8), np.float32)])
def test_non_2d(built, bad):
    with pytest.raises(ValueError, match="queries: expected a 2-D array"):
        built[0].search(bad)


def test_float64_and_non_contiguous_are_converted(built):
    index, x = built
    ref = index.search(x[:5], 3, nprobe=4, reorder_k=20)
    as64 = index.search(x[:5].astype(np.float64), 3, nprobe=4, reorder_k=20)
    strided = np.asfortranarray(x[:5])
    assert not strided.flags.c_contiguous
    np.testing.assert_array_equal(ref[0], as64[0])
    np.testing.assert_array_equal(ref[0], index.search(strided, 3, nprobe=4, reorder_k=20)[0])


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite(built, value):
    q = np.zeros((3, 8), np.float32)
    q[1, 2] = value
    with pytest.raises(ValueError, match="row 1 contains NaN or infinity"):
        built[0].search(q)
    with pytest.raises(ValueError, match="NaN"):
        Index(8, "L2", nlist=1).build(q)


def test_wrong_types(built):
    with pytest.raises(TypeError, match="dtype"):
        built[0].search(np.array([["a"] * 8]))
    with pytest.raises(TypeError, match="dtype"):
        built[0].search(np.ones((1, 8), dtype=bool))
    with pytest.raises(TypeError, match="k: expected an integer"):
        built[0].search(np.zeros((1, 8)), k=2.5)


def test_checked_search_settings_are_remembered_by_type(built):
    """Checks are cached per setting; a valid 1 must never vouch for True or 1.0."""
    q = np.zeros((1, 8), np.float32)
    assert built[0].search(q, k=1, nprobe=1)[0].shape == (1, 1)
    for bad in (True, 1.0):
        with pytest.raises(TypeError, match="k: expected an integer"):
            built[0].search(q, k=bad, nprobe=1)
        with pytest.raises(TypeError, match="nprobe: expected an integer"):
            built[0].search(q, k=1, nprobe=bad)
    with pytest.raises(TypeError, match="k: expected an integer"):
        built[0].search(q, k=[1])  # unhashable: checked without the cache


@pytest.mark.parametrize("kwargs, match", [
    ({"k": 0}, "k: 0 is out of range"),
    ({"k": -3}, "k: -3 is out of range"),
    ({"nprobe": 0}, "nprobe: 0 is out of range"),
    ({"nprobe": 5}, "nprobe: 5 exceeds nlist=4"),
    ({"k": 10, "reorder_k": 5}, "reorder_k: 5 is smaller than k=10"),
])
def test_bad_search_params(built, kwargs, match):
    with pytest.raises(ValueError, match=match):
        built[0].search(np.zeros((1, 8), np.float32), **kwargs)


def test_unknown_metric():
    with pytest.raises(ValueError, match="metric_type: unknown metric 'HAMMING'"):
        Index(8, "HAMMING")
    with pytest.raises(ValueError, match="metric"):
        exact_search(np.zeros((2, 2)), np.zeros((1, 2)), 1, "JACCARD")


def test_search_before_build():
    with pytest.raises(RuntimeError, match="not built yet"):
        Index(8, "IP").search(np.zeros((1, 8), np.float32))
    with pytest.raises(RuntimeError, match="not built yet"):
        Index(8, "IP").add(np.zeros((1, 8), np.float32))


def test_nlist_larger_than_data():
    with pytest.raises(ValueError, match="nlist: 128 partitions need at least 128 vectors, got 10"):
        Index(4, "IP").build(np.ones((10, 4), np.float32))


@pytest.mark.parametrize("params, match", [
    ({"nlist": 0}, "nlist"), ({"nlist": 70000}, "nlist"), ({"sub_dim": 0}, "sub_dim"),
    ({"sub_dim": 9}, "sub_dim"), ({"with_raw_data": "maybe"}, "with_raw_data"),
    ({"by_residual": 2}, "by_residual"),
    ({"anisotropic_threshold": -1}, "anisotropic_threshold"), ({"bogus": 1}, "bogus"),
])
def test_bad_build_params(params, match):
    with pytest.raises((ValueError, TypeError), match=match):
        Index(8, "IP", **params)


def test_bad_milvus_params():
    with pytest.raises(ValueError, match="index_type: 'HNSW' is not served"):
        Index.from_milvus_params(8, {"index_type": "HNSW"})
    with pytest.raises(ValueError, match=r"params: unknown key\(s\) \['nlistt'\]"):
        Index.from_milvus_params(8, {"index_type": "SCANN", "params": {"nlistt": 3}})


def test_bad_ids(built):
    index, x = built
    with pytest.raises(ValueError, match="ids: expected a 1-D array with one id per vector"):
        Index(8, "L2", nlist=2).build(x, ids=np.arange(3))
    with pytest.raises(ValueError, match="duplicate ids"):
        Index(8, "L2", nlist=2).build(x, ids=np.zeros(len(x), np.int64))
    with pytest.raises(TypeError, match="integer ids"):
        Index(8, "L2", nlist=2).build(x, ids=np.full(len(x), 0.5))
    with pytest.raises(TypeError, match="integer ids"):
        Index(8, "L2", nlist=2).build(x, ids=np.arange(len(x), dtype=np.float64))
    with pytest.raises(ValueError, match="non-negative"):
        Index(8, "L2", nlist=2).build(x, ids=-np.arange(len(x)))


def test_empty_queries_give_empty_results(built):
    ids, dist = built[0].search(np.zeros((0, 8), np.float32), k=3)
    assert ids.shape == (0, 3) and dist.shape == (0, 3)
