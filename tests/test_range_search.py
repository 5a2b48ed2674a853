"""Range search with Milvus's radius / range_filter semantics."""

from __future__ import annotations

import numpy as np
import pytest
from anisoscan import Index


def exact_range(base, queries, metric, radius, range_filter):
    if metric == "COSINE":
        base = base / np.linalg.norm(base, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    if metric == "L2":
        dist = ((queries[:, None, :] - base[None]) ** 2).sum(-1)
        keep = (dist < radius) & (dist >= (range_filter if range_filter is not None else -np.inf))
    else:
        dist = queries @ base.T
        keep = (dist > radius) & (dist <= (range_filter if range_filter is not None else np.inf))
    return [set(np.nonzero(row)[0]) for row in keep], dist


@pytest.mark.parametrize("metric, radius, range_filter", [
    ("IP", 0.8, None), ("IP", 0.7, 0.9), ("COSINE", 0.75, 0.95), ("L2", 12.0, None), ("L2", 14.0, 6.0)])
def test_range_search_equals_exact_with_raw_data(clustered, metric, radius, range_filter):
    data = clustered[metric]
    index = Index(data.dim, metric, nlist=16).build(data.base)
    lims, ids, dist = index.range_search(data.queries, radius, range_filter, nprobe=16)
    truth, exact = exact_range(data.base, data.queries, metric, radius, range_filter)
    assert sum(len(t) for t in truth) > 50, "the test needs non-trivial ranges"
    for i, t in enumerate(truth):
        got = ids[lims[i]: lims[i + 1]]
        assert set(got.tolist()) == t
        np.testing.assert_allclose(dist[lims[i]: lims[i + 1]], exact[i, got], rtol=1e-4, atol=1e-4)
        d = dist[lims[i]: lims[i + 1]]
        assert np.all(np.diff(d) <= 0) if metric != "L2" else np.all(np.diff(d) >= 0)


def test_range_search_without_raw_data_is_close(clustered):
    data = clustered["IP"]
    index = Index(data.dim, "IP", nlist=16, with_raw_data=False).build(data.base)
    lims, ids, dist = index.range_search(data.queries, 0.8, nprobe=16)
    truth, _ = exact_range(data.base, data.queries, "IP", 0.8, None)
    found = sum(len(set(ids[lims[i]: lims[i + 1]].tolist()) & t) for i, t in enumerate(truth))
    assert found / sum(len(t) for t in truth) > 0.6
    assert (dist > 0.8).all()


@pytest.mark.parametrize("metric", ["L2", "IP"])
@pytest.mark.parametrize("by_residual", [True, False])
def test_range_search_without_raw_data_scores_like_search(clustered, metric, by_residual):
    """Both paths score with the same tables and offsets: what search ranks by codes,
    range search returns with the same approximate distances."""
    data = clustered[metric]
    index = Index(data.dim, metric, nlist=16, with_raw_data=False, by_residual=by_residual).build(data.base)
    ids, dist = index.search(data.queries[:20], 10, nprobe=16)
    for i in range(20):
        toward_worse = np.float32(np.inf if metric == "L2" else -np.inf)
        radius = float(np.nextafter(dist[i, -1], toward_worse))
        _, got_ids, got_dist = index.range_search(data.queries[i:i + 1], radius, nprobe=16)
        got = dict(zip(got_ids.tolist(), got_dist.tolist()))
        assert set(ids[i].tolist()) <= set(got)
        np.testing.assert_array_equal([got[j] for j in ids[i].tolist()], dist[i])


def test_range_search_bad_bounds(clustered):
    data = clustered["L2"]
    index = Index(data.dim, "L2", nlist=8).build(data.base)
    with pytest.raises(ValueError, match="range_filter: must be smaller than radius for L2"):
        index.range_search(data.queries, 5.0, range_filter=6.0)
    ip = Index(data.dim, "IP", nlist=8).build(data.base)
    with pytest.raises(ValueError, match="range_filter: must be larger than radius"):
        ip.range_search(data.queries, 0.5, range_filter=0.2)
    with pytest.raises(ValueError, match="radius"):
        ip.range_search(data.queries, float("nan"))
