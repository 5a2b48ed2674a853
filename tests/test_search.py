"""End-to-end search quality against exact ground truth, for every metric."""

from __future__ import annotations

import anisoscan
import numpy as np
import pytest
from anisoscan import Index, exact_search, recall_at_k

METRICS = ["IP", "L2", "COSINE"]


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("by_residual", [True, False])
def test_full_probe_with_large_reorder_is_exact(clustered, metric, by_residual):
    data = clustered[metric]
    index = Index(data.dim, metric, nlist=16, with_raw_data=True, by_residual=by_residual).build(data.base)
    n = len(data.base)
    ids, dist = index.search(data.queries, k=10, nprobe=16, reorder_k=n)
    truth_ids, truth_dist = exact_search(data.base, data.queries, 10, metric)
    assert recall_at_k(ids, truth_ids, 10) == 1.0
    np.testing.assert_array_equal(ids, truth_ids)
    np.testing.assert_allclose(dist, truth_dist, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("with_raw", [True, False])
def test_recall_grows_with_nprobe(clustered, metric, with_raw):
    data = clustered[metric]
    index = Index(data.dim, metric, nlist=64, with_raw_data=with_raw).build(data.base)
    truth, _ = exact_search(data.base, data.queries, 10, metric)
    recalls = [recall_at_k(index.search(data.queries, 10, nprobe=p, reorder_k=50)[0], truth, 10)
               for p in (1, 4, 16, 64)]
    assert all(b >= a - 0.02 for a, b in zip(recalls, recalls[1:])), recalls
    assert recalls[-1] > recalls[0]
    assert recalls[-1] >= (0.9 if with_raw else 0.4), recalls


@pytest.mark.parametrize("metric", METRICS)
def test_distance_semantics_follow_milvus(clustered, metric):
    data = clustered[metric]
    index = Index(data.dim, metric, nlist=8).build(data.base)
    ids, dist = index.search(data.queries, k=5, nprobe=8, reorder_k=200)
    if metric == "L2":
        assert np.all(np.diff(dist, axis=1) >= 0), "L2: ascending squared distances"
        expect = ((data.queries[:, None, :] - data.base[ids]) ** 2).sum(-1)
    else:
        assert np.all(np.diff(dist, axis=1) <= 0), "IP/COSINE: descending similarity"
        base = data.base / np.linalg.norm(data.base, axis=1, keepdims=True) if metric == "COSINE" else data.base
        q = data.queries / np.linalg.norm(data.queries, axis=1, keepdims=True) if metric == "COSINE" else data.queries
        expect = np.einsum("qd,qkd->qk", q, base[ids])
    np.testing.assert_allclose(dist, expect, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("by_residual", [True, False])
def test_codes_only_distances_approximate_the_exact_ones(clustered, by_residual):
    data = clustered["IP"]
    index = Index(data.dim, "IP", nlist=8, with_raw_data=False, by_residual=by_residual).build(data.base)
    ids, dist = index.search(data.queries, k=10, nprobe=8)
    exact = np.einsum("qd,qkd->qk", data.queries, data.base[ids])
    assert np.abs(dist - exact).mean() < 0.1



def test_inner_product_residuals_start_from_each_partitions_mean(rng):
    """IP partitions are chosen by direction, but a partition's center is its members' mean.
    Tight clusters whose means have lengths 0.3-3 then leave the codes only the noise around
    each mean, so a score from the codes errs by less than the noise's own largest score. (Unit
    centers left every partition an offset of its own, more offsets than 16 codewords can
    hold: the error was 1.6x that bound.) More partitions than clusters, so that k-means finds
    every cluster."""
    clusters, d, per = 24, 32, 50
    directions = rng.standard_normal((clusters, d))
    means = directions / np.linalg.norm(directions, axis=1, keepdims=True) * rng.uniform(0.3, 3.0, (clusters, 1))
    noise = rng.standard_normal((clusters, per, d)) * 0.01
    base = (means[:, None, :] + noise).reshape(-1, d).astype(np.float32)
    queries = rng.standard_normal((50, d)).astype(np.float32)
    nlist = 8 * clusters
    index = Index(d, "IP", nlist=nlist, with_raw_data=False).build(base)
    ids, dist = index.search(queries, k=10, nprobe=nlist)
    exact = np.einsum("qd,qkd->qk", queries, base[ids])
    assert np.abs(dist - exact).max() < np.abs(queries @ noise.reshape(-1, d).T).max()

@pytest.mark.parametrize("by_residual", [True, False])
def test_codes_only_l2_distances_approximate_the_exact_ones(clustered, by_residual):
    """Residual codes score ||q - c - r||^2 with a table per partition, direct codes ||q - x||^2
    with one table per query: both estimate the true squared distance."""
    data = clustered["L2"]
    index = Index(data.dim, "L2", nlist=8, with_raw_data=False, by_residual=by_residual).build(data.base)
    ids, dist = index.search(data.queries, k=10, nprobe=8)
    exact = ((data.queries[:, None, :] - data.base[ids]) ** 2).sum(-1)
    assert np.abs(dist - exact).mean() < 0.3 * exact.mean()
    assert np.corrcoef(dist.ravel(), exact.ravel())[0, 1] > 0.4


@pytest.mark.parametrize("metric", METRICS)
def test_direct_codes_trade_code_accuracy_for_one_table_per_query(clustered, metric):
    """by_residual=False: codes of the vectors themselves. On clustered data they rank worse
    than residual codes, far better than chance (0.0025 here), and re-ranking recovers the truth."""
    data = clustered[metric]
    truth, _ = exact_search(data.base, data.queries, 10, metric)

    def recall(by_residual: bool, with_raw: bool) -> float:
        index = Index(data.dim, metric, nlist=64, with_raw_data=with_raw, by_residual=by_residual).build(data.base)
        return recall_at_k(index.search(data.queries, 10, nprobe=64, reorder_k=200)[0], truth, 10)

    direct_codes = recall(False, with_raw=False)
    assert 0.25 <= direct_codes <= recall(True, with_raw=False)
    assert recall(False, with_raw=True) >= 0.95


def test_tiny_index_pads_with_minus_one(rng):
    x = rng.normal(size=(5, 8)).astype(np.float32)
    index = Index(8, "L2", nlist=2).build(x)
    ids, dist = index.search(x[:2], k=10, nprobe=2, reorder_k=10)
    assert ids.shape == (2, 10)
    assert (ids[:, 5:] == -1).all() and np.isinf(dist[:, 5:]).all()
    assert sorted(ids[0, :5]) == list(range(5))
    assert ids[0, 0] == 0 and ids[1, 0] == 1  # each query finds itself first


def test_custom_ids_are_returned(clustered):
    data = clustered["IP"]
    custom = np.arange(len(data.base), dtype=np.int64) * 7 + 1000
    index = Index(data.dim, "IP", nlist=8).build(data.base, ids=custom)
    ids, _ = index.search(data.queries, 10, nprobe=8, reorder_k=len(data.base))
    truth, _ = exact_search(data.base, data.queries, 10, "IP")
    np.testing.assert_array_equal(ids, custom[truth])


def test_add_after_build_is_searchable(clustered):
    data = clustered["L2"]
    half = len(data.base) // 2
    index = Index(data.dim, "L2", nlist=16).build(data.base[:half])
    index.add(data.base[half:], np.arange(half, len(data.base)))
    assert len(index) == len(data.base)
    ids, _ = index.search(data.queries, 10, nprobe=16, reorder_k=len(data.base))
    truth, _ = exact_search(data.base, data.queries, 10, "L2")
    assert recall_at_k(ids, truth, 10) == 1.0


def test_dimension_not_divisible_by_sub_dim(rng):
    x = rng.normal(size=(600, 13)).astype(np.float32)
    for sub_dim in (2, 3, 4, 13):
        index = Index(13, "L2", nlist=4, sub_dim=sub_dim).build(x)
        ids, _ = index.search(x[:20], 1, nprobe=4, reorder_k=50)
        assert (ids[:, 0] == np.arange(20)).all()


def test_from_milvus_params_reads_knowhere_style_values():
    index = Index.from_milvus_params(
        16, {"index_type": "SCANN", "metric_type": "COSINE",
             "params": {"nlist": "32", "with_raw_data": "False", "sub_dim": 4, "by_residual": "false"}})
    p = index.params
    assert (p.metric, p.nlist, p.with_raw_data, p.sub_dim, p.by_residual) == ("COSINE", 32, False, 4, False)
    assert p.anisotropic_threshold is None  # measured on the data by build
    assert Index.from_milvus_params(16, {"metric_type": "L2"}).params.nlist == 128


def test_threads_give_identical_results(clustered):
    data = clustered["IP"]
    index = Index(data.dim, "IP", nlist=32).build(data.base)
    a = index.search(data.queries, 10, nprobe=8, reorder_k=40, threads=1)
    b = index.search(data.queries, 10, nprobe=8, reorder_k=40, threads=4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("with_raw", [True, False])
@pytest.mark.parametrize("filtered", [False, True])
@pytest.mark.parametrize("by_residual", [True, False])
def test_queries_searched_together_equal_each_alone(metric, with_raw, filtered, by_residual):
    """Batches share passes over partitions (blocks of queries, 4 per kernel pass); every
    query must still get exactly what it gets searched alone."""
    data = anisoscan.datasets.make_clustered(3000, 20, n_queries=150, n_clusters=30, metric=metric, seed=11)
    index = Index(data.dim, metric, nlist=40, with_raw_data=with_raw, by_residual=by_residual).build(data.base)
    # A filter that starves some queries forces the visit-further fallback inside a batch.
    filt = {"allowed_ids": np.arange(0, 3000, 97)} if filtered else {}
    batched = [index.search(data.queries, 7, nprobe=5, reorder_k=20, threads=t, **filt) for t in (1, 2)]
    for i in range(len(data.queries)):
        alone = index.search(data.queries[i:i + 1], 7, nprobe=5, reorder_k=20, **filt)
        for ids, dist in batched:
            np.testing.assert_array_equal(ids[i], alone[0][0])
            np.testing.assert_array_equal(dist[i], alone[1][0])
    if filtered:
        assert (batched[0][0] >= 0).all() and np.isin(batched[0][0], filt["allowed_ids"]).all()


@pytest.mark.parametrize("split", ["blocks", "ranking_chunks"])
def test_batches_split_into_blocks_and_ranking_chunks_equal_each_alone(split):
    """A thread searches its queries in blocks whose tables and candidate reservoirs stay
    within 8 MiB, and ranks a block's partitions 128K center products at a time. reorder_k
    20,000 (640 KB of candidates per query) makes blocks of a dozen queries; 2,048
    partitions make ranking chunks of 64 queries. Each query must get what it gets alone."""
    if split == "blocks":
        data = anisoscan.datasets.make_clustered(3000, 16, n_queries=50, n_clusters=30, metric="IP", seed=12)
        index = Index(16, "IP", nlist=30, soar_lambda=1.0).build(data.base)
        knobs = {"nprobe": 4, "reorder_k": 20000}
    else:
        data = anisoscan.datasets.make_clustered(6000, 8, n_queries=300, n_clusters=60, metric="L2", seed=13)
        index = Index(8, "L2", nlist=2048, with_raw_data=True).build(data.base)
        knobs = {"nprobe": 64, "reorder_k": 20}
    batched = index.search(data.queries, 5, threads=1, **knobs)
    for i in range(len(data.queries)):
        alone = index.search(data.queries[i:i + 1], 5, **knobs)
        np.testing.assert_array_equal(batched[0][i], alone[0][0])
        np.testing.assert_array_equal(batched[1][i], alone[1][0])
    truth, _ = exact_search(data.base, data.queries, 5, data.metric)
    assert recall_at_k(batched[0], truth, 5) > 0.8


def test_buffers_kept_between_searches_carry_nothing_over():
    """Each thread keeps its tables and candidate reservoirs between calls. Searching indexes of
    other shapes in between (fewer sub-spaces, another k and reorder_k, more or fewer
    queries, L2 tables per partition) must leave every result as it was."""
    a = anisoscan.datasets.make_clustered(3000, 48, n_queries=300, n_clusters=30, metric="IP", seed=4)
    b = anisoscan.datasets.make_clustered(2000, 10, n_queries=20, n_clusters=10, metric="L2", seed=5)
    index_a = Index(48, "IP", nlist=30).build(a.base)
    index_b = Index(10, "L2", nlist=20, by_residual=True).build(b.base)

    def search_a():
        return index_a.search(a.queries, 10, nprobe=6, reorder_k=40, threads=1)

    def search_b():
        return index_b.search(b.queries, 3, nprobe=4, reorder_k=5, threads=1)

    first_a, first_b = search_a(), search_b()
    for got, want in ((search_a(), first_a), (search_b(), first_b), (search_a(), first_a)):
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    few = index_a.search(a.queries[:3], 2, nprobe=6, reorder_k=40, threads=1)  # fewer queries, another k
    np.testing.assert_array_equal(few[0], first_a[0][:3, :2])
    assert recall_at_k(first_a[0], exact_search(a.base, a.queries, 10, "IP")[0], 10) > 0.8


def test_partition_ranking_finds_the_best_center_in_batches_and_alone():
    """One unit vector per partition (nlist = n): the single partition visited at nprobe 1
    must hold the exact nearest vector. d = 150 and 200 centers span several panels and
    dimension slices of the blocked center products; a batch must rank as each query alone."""
    rng = np.random.default_rng(8)
    base = rng.standard_normal((200, 150)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries = rng.standard_normal((37, 150)).astype(np.float32)
    index = Index(150, "IP", nlist=200).build(base)
    truth, _ = exact_search(base, queries, 1, "IP")
    ids, dist = index.search(queries, 1, nprobe=1, reorder_k=1)
    np.testing.assert_array_equal(ids[:, 0], truth[:, 0])
    for i in range(len(queries)):
        alone = index.search(queries[i:i + 1], 1, nprobe=1, reorder_k=1)
        assert alone[0][0, 0] == ids[i, 0] and alone[1][0, 0] == dist[i, 0]


def test_inner_product_partitions_are_ranked_by_direction():
    """One vector per partition, of lengths 0.2 to 5: at nprobe 1 an IP query visits the
    partition whose center points its way (largest cosine), the rule rows are assigned by, not
    the one of largest inner product; the score it returns is still the inner product."""
    rng = np.random.default_rng(9)
    base = rng.standard_normal((200, 24)) * rng.uniform(0.2, 5.0, (200, 1))
    base = base.astype(np.float32)
    queries = rng.standard_normal((60, 24)).astype(np.float32)
    index = Index(24, "IP", nlist=200).build(base)
    ids, dist = index.search(queries, 1, nprobe=1, reorder_k=1)
    cosine = queries @ (base / np.linalg.norm(base, axis=1, keepdims=True)).T
    np.testing.assert_array_equal(ids[:, 0], cosine.argmax(axis=1))
    assert np.mean(ids[:, 0] != (queries @ base.T).argmax(axis=1)) > 0.3  # the rules differ here
    np.testing.assert_allclose(dist[:, 0], np.einsum("qd,qd->q", queries, base[ids[:, 0]]), rtol=1e-5)

@pytest.mark.parametrize("metric", METRICS)
def test_the_callers_vectors_are_read_in_place_and_never_changed(metric):
    """Searches and adds view the caller's rows (COSINE normalizes a copy): whatever the
    metric, the caller's arrays come back as they went in, and COSINE ranks like IP on
    normalized input."""
    data = anisoscan.datasets.make_clustered(2000, 24, n_queries=40, n_clusters=10, metric="L2", seed=3)
    base, queries = data.base * 3.0, data.queries * 2.0
    base_before, queries_before = base.copy(), queries.copy()
    index = Index(24, metric, nlist=8).build(base)
    index.add(base[:100], ids=np.arange(5000, 5100))
    ids, _ = index.search(queries, 5, nprobe=8, reorder_k=50)
    lims, _, _ = index.range_search(queries[:5], radius=1e9 if metric == "L2" else -1e9)
    assert lims[-1] > 0
    np.testing.assert_array_equal(base, base_before)
    np.testing.assert_array_equal(queries, queries_before)
    if metric == "COSINE":
        unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
        ip = Index(24, "IP", nlist=8).build(unit(base))
        ip.add(unit(base[:100]), ids=np.arange(5000, 5100))
        np.testing.assert_array_equal(ids, ip.search(unit(queries), 5, nprobe=8, reorder_k=50)[0])


def test_memory_bytes_reflects_raw_data(clustered):
    data = clustered["IP"]
    with_raw = Index(data.dim, "IP", nlist=16, with_raw_data=True).build(data.base)
    codes_only = Index(data.dim, "IP", nlist=16, with_raw_data=False).build(data.base)
    raw_bytes = data.base.nbytes
    assert with_raw.memory_bytes >= raw_bytes
    assert codes_only.memory_bytes < raw_bytes / 2
    assert anisoscan.simd_level() in ("scalar", "avx2", "avx512")


def test_concurrent_callers_share_the_worker_pool_and_agree_with_one_caller(clustered):
    """Many threads searching and building at once (as gRPC or Milvus Lite threads do) get
    exactly what one caller gets; the pool is shared, never oversubscribed, never deadlocked."""
    from concurrent.futures import ThreadPoolExecutor

    data = clustered["IP"]
    index = Index(data.dim, "IP", nlist=32).build(data.base)
    alone = [index.search(data.queries, 10, nprobe=8, threads=4) for _ in range(3)]

    def one(i: int):
        if i % 4 == 3:  # a build running beside the searches
            return Index(data.dim, "IP", nlist=8).build(data.base[:2000]).search(data.queries, 5, threads=3)
        return index.search(data.queries, 10, nprobe=8, threads=4)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(16)))
    for i, (ids, dist) in enumerate(results):
        if i % 4 != 3:
            np.testing.assert_array_equal(ids, alone[0][0])
            np.testing.assert_array_equal(dist, alone[0][1])
    with pytest.raises(ValueError):
        index.search(np.full((300, data.dim), np.nan, np.float32), 10, threads=4)
