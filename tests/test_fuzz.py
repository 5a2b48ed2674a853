"""Property-based: random shapes, dtypes and parameters either give a correct answer or
raise one of the documented exceptions (ValueError, TypeError, RuntimeError)."""

from __future__ import annotations

import numpy as np
from anisoscan import Index
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

DOCUMENTED = (ValueError, TypeError, RuntimeError)
DTYPES = [np.float32, np.float64, np.int32, np.int64, np.uint8, np.float16, np.bool_, np.complex64, object]


@st.composite
def arrays(draw):
    dtype = draw(st.sampled_from(DTYPES))
    ndim = draw(st.integers(0, 3))
    shape = tuple(draw(st.integers(0, 40)) for _ in range(ndim))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = rng.normal(size=shape) * draw(st.sampled_from([1.0, 1e3, 1e40]))
    if draw(st.booleans()) and values.size:
        values.flat[0] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 0.0]))
    with np.errstate(all="ignore"):
        return values.astype(dtype)


LOOSE_INTS = st.one_of(st.integers(-5, 300), st.sampled_from(["8", "x", 2.5, None, True]))

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(vectors=arrays(), dim=st.integers(1, 12), nlist=LOOSE_INTS, sub_dim=LOOSE_INTS,
       metric=st.sampled_from(["IP", "L2", "COSINE", "cosine", "bogus"]), raw=st.sampled_from([True, False, "TRUE", 3]))
def test_build_answers_or_raises_documented(vectors, dim, nlist, sub_dim, metric, raw):
    try:
        index = Index(dim, metric, nlist=nlist, sub_dim=sub_dim, with_raw_data=raw, kmeans_iters=2, pq_iterations=1)
        index.build(vectors)
    except DOCUMENTED:
        return
    x = np.asarray(vectors, dtype=np.float32)
    assert len(index) == x.shape[0] and index.dim == x.shape[1]
    ids, dist = index.search(x, k=3, nprobe=index.params.nlist, reorder_k=max(3, len(x)))
    assert ids.shape == (len(x), 3) and dist.shape == (len(x), 3)
    assert ((ids >= -1) & (ids < len(x))).all()
    if index.params.with_raw_data and index.metric == "L2":
        assert (dist[:, 0] <= 1e-3 * (1 + np.abs(x).max() ** 2)).all()  # each vector finds itself


@st.composite
def search_calls(draw):
    return dict(
        queries=draw(arrays()),
        k=draw(LOOSE_INTS),
        nprobe=draw(LOOSE_INTS),
        reorder_k=draw(LOOSE_INTS),
        allowed_ids=draw(st.one_of(st.none(), st.lists(st.integers(-3, 400), max_size=20), st.just(["a"]))),
    )


_INDEX = {}


def small_index() -> Index:
    if "i" not in _INDEX:
        x = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
        _INDEX["i"] = (Index(8, "IP", nlist=8).build(x), x)
    return _INDEX["i"][0]


@SETTINGS
@given(call=search_calls())
def test_search_answers_or_raises_documented(call):
    index = small_index()
    try:
        ids, dist = index.search(**call)
    except DOCUMENTED:
        return
    q = np.asarray(call["queries"])
    k = call["k"] if call["k"] is not None else 10
    assert ids.shape == (q.shape[0], int(k)) and dist.shape == ids.shape
    valid = ids >= 0
    assert (ids[valid] < 300).all()
    if call["allowed_ids"] is not None:
        assert np.isin(ids[valid], call["allowed_ids"]).all()
    assert np.all(np.diff(np.where(valid, dist, -np.inf), axis=1) <= 1e-6)


@SETTINGS
@given(ids=st.one_of(st.lists(st.integers(-5, 400), max_size=10), arrays()))
def test_delete_and_get_answer_or_raise_documented(ids):
    x = np.random.default_rng(1).normal(size=(100, 4)).astype(np.float32)
    index = Index(4, "L2", nlist=4).build(x)
    try:
        got = index.get_vectors(ids)
        np.testing.assert_allclose(got, x[np.asarray(ids, dtype=np.int64)], rtol=1e-6)
    except DOCUMENTED:
        pass
    try:
        index.delete(ids)
    except DOCUMENTED:
        assert len(index) == 100
        return
    assert len(index) == 100 - len(np.unique(np.asarray(ids)))
