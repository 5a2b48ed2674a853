"""SOAR spilling (soar_lambda > 0): each vector's codes also kept in a second partition.

The choice of that partition is checked against a float64 numpy reference of the SOAR loss;
searches are checked against exact ground truth, and the second copies must follow every
change (deletes, upserts, filters, files)."""

from __future__ import annotations

import numpy as np
import pytest
from anisoscan import Index, _core, datasets, exact_search, recall_at_k
from anisoscan.datasets import make_clustered


def soar_losses(x: np.ndarray, primary: np.ndarray, centers: np.ndarray, lam: float) -> np.ndarray:
    """[n, nlist] ||x - c'||^2 + lam <r, x - c'>^2 / ||r||^2 with r = x - c_primary, in float64;
    +inf at each row's own partition."""
    x, c = x.astype(np.float64), centers.astype(np.float64)
    r = x - c[primary]
    diff = x[:, None, :] - c[None, :, :]
    rr = (r * r).sum(1)
    parallel = np.einsum("nd,nkd->nk", r, diff)
    weight = np.divide(lam, rr, out=np.zeros_like(rr), where=rr > 0)
    loss = (diff * diff).sum(-1) + weight[:, None] * parallel**2
    loss[np.arange(len(x)), primary] = np.inf
    return loss


@pytest.mark.parametrize("lam", [0.0, 1.0, 4.0])
def test_the_spilled_partition_minimizes_the_soar_loss(lam):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(700, 37)).astype(np.float32)  # 37: a dimension that is no multiple of the panels'
    centers = rng.normal(size=(70, 37)).astype(np.float32)  # 70: two panels, the second part padding
    primary = rng.integers(0, 70, size=700).astype(np.int32)
    primary[:5] = np.argmin(((x[:5, None, :] - centers[None]) ** 2).sum(-1), axis=1)  # some with r small
    spill = _core.testing.soar_assign(x, primary, centers, lam, threads=2)
    loss = soar_losses(x, primary, centers, lam)
    assert (spill != primary).all()
    best = loss.min(1)
    chosen = loss[np.arange(len(x)), spill]
    # float32 products against the float64 reference: the same choice, or a tie within rounding.
    np.testing.assert_allclose(chosen, best, rtol=1e-5, atol=1e-4)
    assert (spill == loss.argmin(1)).mean() > 0.98
    # Thread count and block boundaries do not change the choice.
    assert (_core.testing.soar_assign(x, primary, centers, lam, threads=1) == spill).all()
    # A row whose every loss is NaN still gets a partition, never an index out of range.
    nan = np.full((2, 37), np.nan, np.float32)
    picked = _core.testing.soar_assign(nan, np.array([0, 5], np.int32), centers, lam)
    assert ((picked >= 0) & (picked < 70) & (picked != [0, 5])).all()


def test_a_larger_lambda_picks_residuals_more_orthogonal_to_the_first():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(500, 16)).astype(np.float32)
    centers = rng.normal(size=(40, 16)).astype(np.float32)
    primary = np.argmin(((x[:, None, :] - centers[None]) ** 2).sum(-1), axis=1).astype(np.int32)

    def mean_cosine(spill: np.ndarray) -> float:
        r, r2 = x - centers[primary], x - centers[spill]
        cos = (r * r2).sum(1) / np.linalg.norm(r, axis=1) / np.linalg.norm(r2, axis=1)
        return float(np.abs(cos).mean())

    plain = _core.testing.soar_assign(x, primary, centers, 0.0)
    soar = _core.testing.soar_assign(x, primary, centers, 10.0)
    assert mean_cosine(soar) < mean_cosine(plain) - 0.1


def test_one_center_has_no_second_partition():
    x = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="two centers"):
        _core.testing.soar_assign(x, np.zeros(3, np.int32), np.ones((1, 4), np.float32), 1.0)
    # The index then simply does not spill.
    index = Index(4, "L2", nlist=1, soar_lambda=1.0).build(np.random.default_rng(0).normal(size=(50, 4)))
    assert len(index) == 50 and index.search(np.zeros((1, 4)), 5, nprobe=1)[0].shape == (1, 5)


@pytest.mark.parametrize("metric", ["IP", "L2", "COSINE"])
def test_spilled_search_is_exact_when_every_partition_is_visited(clustered, metric):
    data = clustered[metric]
    index = Index(24, metric, nlist=20, soar_lambda=1.0).build(data.base)
    assert len(index) == len(data.base)
    truth, truth_dist = exact_search(data.base, data.queries, 10, metric)
    ids, dist = index.search(data.queries, 10, nprobe=20, reorder_k=400)
    for row in ids:
        assert len(set(row.tolist())) == 10  # a vector and its second copy count once
    assert recall_at_k(ids, truth, 10) >= 0.999
    np.testing.assert_allclose(dist, truth_dist, rtol=1e-4, atol=1e-4)


def test_spilling_raises_recall_at_equal_partitions_and_keeps_no_second_raw_copy():
    ds = datasets.load_shipped()  # real GloVe vectors
    truth, _ = exact_search(ds.base, ds.queries, 10, "IP")
    # Re-ranked, the partitions limit recall (+0.12 measured); codes alone, the codes do too (+0.04).
    for with_raw, margin in ((True, 0.05), (False, 0.02)):
        plain = Index(50, "IP", nlist=100, with_raw_data=with_raw).build(ds.base)
        soar = Index(50, "IP", nlist=100, with_raw_data=with_raw, soar_lambda=1.0).build(ds.base)
        for nprobe in (2, 4):
            r_plain = recall_at_k(plain.search(ds.queries, 10, nprobe=nprobe, reorder_k=100)[0], truth, 10)
            r_soar = recall_at_k(soar.search(ds.queries, 10, nprobe=nprobe, reorder_k=100)[0], truth, 10)
            assert r_soar > r_plain + margin, (with_raw, nprobe, r_plain, r_soar)
        # The second copy is 25 code bytes and an 8-byte id per vector, never a re-rank row.
        extra = soar.memory_bytes - plain.memory_bytes
        assert 0 < extra < len(ds.base) * (25 + 8) * 1.6


@pytest.mark.parametrize("with_raw", [True, False])
def test_deletes_and_upserts_take_both_copies(clustered, with_raw):
    data = clustered["L2"]
    base, n = data.base, len(data.base)
    index = Index(24, "L2", nlist=16, soar_lambda=1.0, with_raw_data=with_raw).build(base)
    gone = np.arange(0, n, 2)
    index.delete(gone)
    assert len(index) == n - len(gone)
    ids, _ = index.search(base[gone[:50]], 10, nprobe=16, reorder_k=200)
    assert not np.isin(ids, gone).any()
    with pytest.raises(ValueError, match="not in the index"):
        index.delete(gone[:3])  # already gone, with both copies
    # An upsert moves both copies: the new vector is found as itself, exactly once.
    moved = np.array([1, 3, 5], dtype=np.int64)
    new = base[[10, 12, 14]] + np.float32(0.001)
    index.upsert(new, moved)
    assert len(index) == n - len(gone)
    ids, _ = index.search(new, 10, nprobe=16, reorder_k=200)
    assert (ids[:, 0] == moved).all()
    for row in ids:
        assert len(set(row[row >= 0].tolist())) == len(row[row >= 0])
    if with_raw:
        remaining = np.setdiff1d(np.arange(n), gone)
        vectors = base.copy()
        vectors[moved] = new
        truth_rows, _ = exact_search(vectors[remaining], data.queries, 10, "L2")
        ids, _ = index.search(data.queries, 10, nprobe=16, reorder_k=400)
        assert recall_at_k(ids, remaining[truth_rows], 10) >= 0.999


@pytest.mark.parametrize("with_raw", [True, False])
def test_filters_apply_to_both_copies(clustered, with_raw):
    data = clustered["IP"]
    index = Index(24, "IP", nlist=16, soar_lambda=1.0, with_raw_data=with_raw).build(data.base)
    allowed = np.arange(0, len(data.base), 7)
    mask = np.zeros(len(data.base), dtype=bool)
    mask[allowed] = True
    for kwargs in ({"allowed_ids": allowed}, {"allowed_mask": mask},
                   {"excluded_ids": np.setdiff1d(np.arange(len(data.base)), allowed)}):
        ids, _ = index.search(data.queries, 10, nprobe=2, reorder_k=100, **kwargs)
        assert np.isin(ids, allowed).all(), kwargs  # k hits, every one allowed
        for row in ids:
            assert len(set(row.tolist())) == 10
        if with_raw:
            truth, _ = exact_search(data.base[allowed], data.queries, 10, "IP")
            full, _ = index.search(data.queries, 10, nprobe=16, reorder_k=400, **kwargs)
            assert recall_at_k(full, allowed[truth], 10) >= 0.999


@pytest.mark.parametrize("mmap", [False, True])
def test_a_spilled_index_survives_its_file(tmp_path, clustered, mmap):
    data = clustered["COSINE"]
    index = Index(24, "COSINE", nlist=16, soar_lambda=1.5).build(data.base)
    path = tmp_path / "soar.idx"
    index.save(path)
    loaded = Index.load(path, mmap=mmap)
    assert loaded.params.soar_lambda == 1.5 and len(loaded) == len(index)
    for nprobe, reorder_k in ((2, 10), (4, 50)):
        a = index.search(data.queries, 10, nprobe=nprobe, reorder_k=reorder_k)
        b = loaded.search(data.queries, 10, nprobe=nprobe, reorder_k=reorder_k)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    loaded.delete(np.arange(100))  # a mapped file's slots are copied on this first change
    ids, _ = loaded.search(data.base[:100], 10, nprobe=16, reorder_k=100)
    assert not np.isin(ids, np.arange(100)).any()


@pytest.mark.parametrize("with_raw", [True, False])
def test_range_search_lists_each_vector_once(clustered, with_raw):
    data = make_clustered(2000, 16, n_queries=20, n_clusters=10, metric="L2", seed=9)
    index = Index(16, "L2", nlist=10, soar_lambda=1.0, with_raw_data=with_raw).build(data.base)
    d2 = ((data.queries[:, None, :].astype(np.float64) - data.base[None].astype(np.float64)) ** 2).sum(-1)
    radius = float(np.quantile(d2, 0.02))
    lims, ids, dist = index.range_search(data.queries, radius, nprobe=10)
    for i in range(len(data.queries)):
        got = ids[lims[i]:lims[i + 1]]
        assert len(np.unique(got)) == len(got)
        if with_raw:  # exact: the same set as brute force
            assert set(got.tolist()) == set(np.flatnonzero(d2[i] < radius).tolist())


def test_an_untrained_core_index_finds_no_ids():
    core = _core.IvfIndex(8, "L2", {"nlist": 4, "soar_lambda": 1.0})  # below the Python API's guard
    assert not core.contains(np.array([1, 2], np.int64)).any()
    with pytest.raises(ValueError, match="not in the index"):
        core.get_vectors(np.array([1], np.int64))


def test_soar_lambda_is_validated():
    with pytest.raises(ValueError, match="soar_lambda"):
        Index(8, "L2", nlist=4, soar_lambda=-1.0)
