"""anisoscan attached to Milvus collections, on every Milvus tier (see conftest.py)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from anisoscan.datasets import make_clustered
from anisoscan.milvus import attach
from milvus_collections import make_collection, milvus_search, pk_values, rows

N, DIM = 2000, 16


def data(metric: str):
    return make_clustered(N, DIM, n_queries=20, n_clusters=20, metric=metric, seed=4)


def exact_params(metric: str) -> dict:
    return {"index_type": "SCANN", "metric_type": metric, "params": {"nlist": "8", "with_raw_data": "true"}}


EXACT_SEARCH = {"params": {"nprobe": 8, "reorder_k": N}}


@pytest.mark.parametrize("pk_type", ["int64", "varchar"])
def test_export_has_every_key_once(milvus, pk_type):
    d = data("COSINE")
    name = make_collection(milvus, "COSINE", pk_type, d.base)
    index = attach(milvus, name, "vector", exact_params("COSINE"), progress=False)
    assert len(index) == N and len(index.backend) == N
    assert sorted(map(str, index._keys.values())) == sorted(map(str, pk_values(pk_type, 0, N)))


@pytest.mark.parametrize("metric", ["IP", "L2", "COSINE"])
@pytest.mark.parametrize("pk_type", ["int64", "varchar"])
def test_filtered_search_equals_milvus_exact(milvus, metric, pk_type):
    d = data(metric)
    name = make_collection(milvus, metric, pk_type, d.base)
    index = attach(milvus, name, "vector", exact_params(metric), progress=False)
    expr = "category == 'news'"
    hits = index.search(d.queries, limit=10, search_params=EXACT_SEARCH, filter=expr, output_fields=["category"])
    want_ids, want_dist = milvus_search(milvus, name, metric, d.queries, 10, expr)
    for got, ids, dist in zip(hits, want_ids, want_dist):
        assert [h["id"] for h in got] == ids
        np.testing.assert_allclose([h["distance"] for h in got], dist, rtol=1e-4, atol=1e-4)
        assert all(h["entity"] == {"category": "news"} for h in got)
    plain = index.search(d.queries, limit=10, search_params=EXACT_SEARCH)
    assert [[h["id"] for h in row] for row in plain] == milvus_search(milvus, name, metric, d.queries, 10)[0]


def test_sync_picks_up_inserts_deletes_and_upserts(milvus):
    d = data("IP")
    name = make_collection(milvus, "IP", "int64", d.base)
    index = attach(milvus, name, "vector", exact_params("IP"), progress=False)
    extra = make_clustered(100, DIM, n_queries=1, metric="IP", seed=9).base
    milvus.insert(name, rows("int64", extra, N))
    deleted = pk_values("int64", 0, 50)
    milvus.delete(name, ids=deleted)
    moved = rows("int64", -d.base[100:110], 100)  # same keys, new vectors
    milvus.upsert(name, moved)
    counts = index.sync()
    assert counts == {"inserted": 100, "updated": 10, "deleted": 50}
    assert len(index) == len(index.backend) == N + 100 - 50
    hits = index.search(-d.base[100:110], limit=1, search_params=EXACT_SEARCH)
    assert [h[0]["id"] for h in hits] == [r["pk"] for r in moved]
    everything = index.search(d.base[:50], limit=20, search_params=EXACT_SEARCH)
    assert not {h["id"] for row in everything for h in row} & set(deleted)
    assert index.sync() == {"inserted": 0, "updated": 0, "deleted": 0}


def test_deletes_made_while_a_sync_runs(milvus, monkeypatch):
    d = data("L2")
    name = make_collection(milvus, "L2", "varchar", d.base)
    index = attach(milvus, name, "vector", exact_params("L2"), progress=False, batch_size=200)
    victims = pk_values("varchar", 0, 30) + pk_values("varchar", N - 30, 30)
    real_iterator = milvus.query_iterator
    fired = threading.Event()

    def iterator_that_deletes_midway(*args, **kwargs):
        it = real_iterator(*args, **kwargs)
        real_next = it.next

        def next_batch():
            batch = real_next()
            if batch and not fired.is_set():
                fired.set()
                milvus.delete(name, ids=victims)  # lands while the export is under way
            return batch

        it.next = next_batch
        return it

    monkeypatch.setattr(milvus, "query_iterator", iterator_that_deletes_midway)
    index.sync()
    monkeypatch.undo()
    index.sync()
    assert fired.is_set()
    assert len(index) == len(index.backend) == N - len(victims)
    hits = index.search(d.base[:30], limit=5, search_params=EXACT_SEARCH)
    assert not {h["id"] for row in hits for h in row} & set(victims)


def test_search_errors_are_milvus_like(milvus_lite):
    milvus = milvus_lite
    d = data("COSINE")
    name = make_collection(milvus, "COSINE", "int64", d.base)
    index = attach(milvus, name, "vector", exact_params("COSINE"), progress=False)
    with pytest.raises(ValueError, match=r"metric type not match: invalid parameter\[expected=COSINE\]\[actual=L2\]"):
        index.search(d.queries, search_params={"metric_type": "L2"})
    with pytest.raises(ValueError, match="reorder_k: 5 is smaller than k=10"):
        index.search(d.queries, limit=10, search_params={"params": {"reorder_k": 5}})
    with pytest.raises(ValueError, match=r"output_fields: field\(s\) \['nope'\]"):
        index.search(d.queries, output_fields=["nope"])
    with pytest.raises(ValueError, match="anns_field"):
        attach(milvus, name, "missing", exact_params("COSINE"), progress=False)
    with pytest.raises(ValueError, match="anns_field"):
        index.search(d.queries, anns_field="title")


def test_attached_to_a_remote_node(milvus_lite, tmp_path):
    milvus = milvus_lite
    from anisoscan import Client
    from server_process import ServerProcess

    d = data("IP")
    name = make_collection(milvus, "IP", "varchar", d.base)
    local = attach(milvus, name, "vector", exact_params("IP"), progress=False)
    proc = ServerProcess(tmp_path / "node")
    proc.start()
    try:
        with Client(proc.address) as node:
            remote = attach(milvus, name, "vector", exact_params("IP"), node=node, progress=False)
            params = {"params": {"nprobe": 2, "reorder_k": 30}}
            assert remote.search(d.queries, 10, params, filter="category != 'wiki'") == \
                local.search(d.queries, 10, params, filter="category != 'wiki'")
            milvus.delete(name, ids=pk_values("varchar", 0, 10))
            assert remote.sync()["deleted"] == 10
            assert node.describe_index(f"{name}__vector")["num_rows"] == N - 10
    finally:
        proc.stop()
