"""Filtered search: allow-lists and deny-lists applied inside the scan."""

from __future__ import annotations

import numpy as np
import pytest
from anisoscan import Index, exact_search


@pytest.mark.parametrize("metric", ["IP", "L2", "COSINE"])
def test_filtered_search_is_the_exact_topk_of_the_allowed(clustered, metric):
    data = clustered[metric]
    ids = np.arange(len(data.base), dtype=np.int64) * 2 + 1
    index = Index(data.dim, metric, nlist=16).build(data.base, ids)
    allowed_rows = np.random.default_rng(0).choice(len(data.base), 600, replace=False)
    got, dist = index.search(data.queries, 10, nprobe=16, reorder_k=len(data.base), allowed_ids=ids[allowed_rows])
    truth_rows, truth_dist = exact_search(data.base[allowed_rows], data.queries, 10, metric)
    np.testing.assert_array_equal(got, ids[allowed_rows][truth_rows])
    np.testing.assert_allclose(dist, truth_dist, rtol=1e-5, atol=1e-5)


def test_one_percent_selectivity_still_returns_k(clustered):
    data = clustered["IP"]
    index = Index(data.dim, "IP", nlist=64).build(data.base)
    allowed = np.random.default_rng(1).choice(len(data.base), len(data.base) // 100, replace=False)
    got, _ = index.search(data.queries, 10, nprobe=1, reorder_k=10, allowed_ids=allowed)
    assert (got >= 0).all(), "every query must get k results when k ids pass"
    assert np.isin(got, allowed).all()
    few, _ = index.search(data.queries[:3], 10, nprobe=1, allowed_ids=allowed[:4])
    assert sorted(few[0][:4]) == sorted(allowed[:4]) and (few[:, 4:] == -1).all()


@pytest.mark.parametrize("with_raw", [True, False])
def test_excluded_ids_are_skipped(clustered, with_raw):
    data = clustered["L2"]
    index = Index(data.dim, "L2", nlist=16, with_raw_data=with_raw).build(data.base)
    first, _ = index.search(data.queries, 5, nprobe=16, reorder_k=100)
    denied = np.unique(first[:, :2])
    got, _ = index.search(data.queries, 5, nprobe=16, reorder_k=100, excluded_ids=denied)
    assert not np.isin(got, denied).any()
    assert (got >= 0).all()


def test_filter_validation(clustered):
    data = clustered["IP"]
    index = Index(data.dim, "IP", nlist=8).build(data.base)
    with pytest.raises(TypeError, match="allowed_ids: expected integer ids"):
        index.search(data.queries[:1], allowed_ids=[0.5])
    empty, _ = index.search(data.queries[:2], 3, allowed_ids=[])
    assert (empty == -1).all()


@pytest.mark.parametrize("with_raw", [True, False])
def test_a_mask_indexed_by_id_equals_the_same_allow_list(clustered, with_raw):
    data = clustered["COSINE"]
    index = Index(data.dim, "COSINE", nlist=32, with_raw_data=with_raw).build(data.base)
    mask = np.random.default_rng(5).random(len(data.base)) < 0.05
    by_mask = index.search(data.queries, 10, nprobe=2, reorder_k=40, allowed_mask=mask)
    by_ids = index.search(data.queries, 10, nprobe=2, reorder_k=40, allowed_ids=np.flatnonzero(mask))
    np.testing.assert_array_equal(by_mask[0], by_ids[0])
    np.testing.assert_array_equal(by_mask[1], by_ids[1])
    assert mask[by_mask[0]].all() and (by_mask[0] >= 0).all()
    short = index.search(data.queries[:5], 10, nprobe=32, reorder_k=40, allowed_mask=mask[:100])
    assert (short[0] < 100).all(), "ids beyond the mask's length never pass"
    lims, ids, _ = index.range_search(data.queries[:5], radius=-1.0, nprobe=32, allowed_mask=mask)
    assert mask[ids].all() and lims[-1] == 5 * mask.sum()


def test_mask_validation(clustered):
    data = clustered["IP"]
    index = Index(data.dim, "IP", nlist=8).build(data.base)
    with pytest.raises(TypeError, match="allowed_mask: expected a boolean array"):
        index.search(data.queries[:1], allowed_mask=np.ones(10, np.int32))
    with pytest.raises(ValueError, match="allowed_mask: expected a 1-D"):
        index.search(data.queries[:1], allowed_mask=np.ones((2, 10), bool))
