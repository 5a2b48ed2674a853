"""The Milvus-protocol front in front of a real Milvus, driven by pymilvus MilvusClient: the 2.3.5
server started here; Milvus Lite 3.2 served over gRPC (`anisoscan lite`), which speaks the
newer protocol (2.6's messages and conventions) here too; and a Docker Milvus 2.6 where
MILVUS_URI names one.

The clients talk to the front only; the tests reach behind it (the front's node and key
map) solely to prove who answered: a search served by anisoscan has exactly the ids and
scores of the node queried directly.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from dataclasses import dataclass

import grpc
import numpy as np
import pytest
from anisoscan.datasets import make_clustered
from anisoscan.metrics import recall_at_k
from anisoscan.milvus.front import FrontServer, Settings
from anisoscan.milvus.front import translate as t
from anisoscan.milvus.front.reconcile import DIGEST_RANGES_PER_ROUND, RANGE_ROWS, Repair
from lite_server import LiteServer
from pymilvus import AnnSearchRequest, DataType, MilvusClient, RRFRanker, WeightedRanker
from pymilvus.client.prepare import Prepare
from pymilvus.exceptions import MilvusException
from pymilvus.grpc_gen import milvus_pb2
from server_process import free_port

DIM, N_INT, N_STR, BATCH = 16, 100_000, 20_000, 10_000
CATEGORIES = ("news", "blog", "wiki")
BUCKETS = 50  # `bucket == b` passes 2% of the rows: above the hand-off threshold
APPROX = {"params": {"nprobe": 2, "reorder_k": 10}}  # few partitions: results differ from exact search


def keys_of(pk_type: str, rows: range) -> list:
    return [f"doc-{i}" for i in rows] if pk_type == "varchar" else [i - 50_000 for i in rows]  # negatives too


def make_rows(pk_type: str, vectors: np.ndarray, start: int) -> list[dict]:
    keys = keys_of(pk_type, range(start, start + len(vectors)))
    return [{"pk": k, "vector": v.tolist(), "category": CATEGORIES[(start + i) % 3], "bucket": (start + i) % BUCKETS,
             "title": f"title {start + i}"} for i, (k, v) in enumerate(zip(keys, vectors))]


def create_collection(client: MilvusClient, pk_type: str, vectors: np.ndarray) -> str:
    name = f"front_test_{uuid.uuid4().hex[:8]}"
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    if pk_type == "varchar":
        schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=32)
    else:
        schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("category", DataType.VARCHAR, max_length=16)
    schema.add_field("bucket", DataType.INT64)
    schema.add_field("title", DataType.VARCHAR, max_length=32)
    client.create_collection(name, schema=schema, consistency_level="Strong")
    for b in range(0, len(vectors), BATCH):
        client.insert(name, make_rows(pk_type, vectors[b:b + BATCH], b))
    return name


def scann(metric: str, nlist: int) -> dict:
    return {"index_type": "SCANN", "metric_type": metric, "params": {"nlist": nlist, "with_raw_data": True}}


def create_scann(client: MilvusClient, name: str, metric: str, nlist: int, **kwargs) -> None:
    params = client.prepare_index_params()
    params.add_index("vector", **scann(metric, nlist))
    client.create_index(name, params, **kwargs)


@dataclass(frozen=True)
class Upstream:
    tier: str  # "server": the PyPI Milvus 2.3.5 this suite starts; "lite": Milvus Lite 3.2; "docker": MILVUS_URI
    uri: str


@pytest.fixture(scope="module", params=["server", "lite", "docker"])
def upstream(request, tmp_path_factory) -> Upstream:
    """The Milvus behind the front; every test of this module runs against each."""
    if request.param == "lite":
        pytest.importorskip("milvus_lite", reason="milvus-lite is not installed (pip install '.[test]')")
        lite = LiteServer(tmp_path_factory.mktemp("lite-upstream") / "upstream.db").start()
        request.addfinalizer(lite.stop)
        return Upstream("lite", lite.uri)
    uri = request.getfixturevalue("milvus_server_uri" if request.param == "server" else "docker_milvus_uri")
    return Upstream(request.param, uri)


@pytest.fixture(scope="module")
def front(upstream, tmp_path_factory):
    # Reconciliation rounds run when a test calls them, so that what each round repairs is known.
    server = FrontServer.start(Settings(upstream.uri, tmp_path_factory.mktemp("front"), port=0,
                                        reconcile_interval_s=0))
    yield server
    server.stop()


def connect(server: FrontServer) -> MilvusClient:
    return MilvusClient(f"http://127.0.0.1:{server.port}")


class Served:
    """A collection behind the front, with what the tests need to check its answers."""

    def __init__(self, front: FrontServer, pk_type: str, n: int, metric: str, seed: int, insert: bool = True) -> None:
        self.front, self.pk_type, self.metric = front, pk_type, metric
        self.data = make_clustered(n, DIM, n_queries=20, n_clusters=64, metric=metric, seed=seed)
        self.client = connect(front)
        self.name = create_collection(self.client, pk_type, self.data.base if insert else self.data.base[:0])

    @property
    def node_name(self) -> str:
        return next(r.node_name for r in self.front.front.records() if r.collection == self.name)

    def node_search(self, queries: np.ndarray, limit: int, params: dict, allowed_keys: list | None = None):
        """The node queried directly, its ids mapped back to primary keys."""
        front = self.front.front
        allowed = None if allowed_keys is None else front.store.ids(self.node_name, allowed_keys, assign=False)
        ids, scores = front.node.search(self.node_name, queries, limit, params, allowed_ids=allowed)
        keys = front.store.keys(self.node_name, ids[ids >= 0].tolist())
        return [[keys[i] for i in row if i >= 0] for row in ids.tolist()], \
            [[s for i, s in zip(r_ids, r_s) if i >= 0] for r_ids, r_s in zip(ids.tolist(), scores.tolist())]

    def count(self) -> int:
        return self.client.query(self.name, filter="", output_fields=["count(*)"])[0]["count(*)"]


@pytest.fixture(scope="module")
def int_served(front):
    served = Served(front, "int64", N_INT, "IP", seed=1)
    progress = []
    create_scann(served.client, served.name, "IP", 256, sync=False)
    while (d := served.client.describe_index(served.name, "vector"))["state"] != "Finished":
        assert d["state"] == "InProgress", d
        progress.append((d["indexed_rows"], d["total_rows"]))
        time.sleep(0.2)
    served.progress, served.final = progress, d
    served.client.load_collection(served.name)
    return served


@pytest.fixture(scope="module")
def str_served(front):
    served = Served(front, "varchar", N_STR, "L2", seed=2)
    create_scann(served.client, served.name, "L2", 64)
    served.client.load_collection(served.name)
    return served


def hits_of(result) -> tuple[list, list]:
    return [[h.id for h in row] for row in result], [[h["distance"] for h in row] for row in result]


def test_build_reports_progress_then_scann(int_served):
    d = int_served.final
    assert (d["index_type"], d["metric_type"], d["state"]) == ("SCANN", "IP", "Finished")
    assert {k: str(v).lower() for k, v in d["params"].items()} == {"nlist": "256", "with_raw_data": "true"}
    assert d["indexed_rows"] == d["total_rows"] == N_INT
    assert int_served.progress, "the build finished before DescribeIndex could see it running"
    assert all(0 <= done <= total <= N_INT for done, total in int_served.progress)
    assert [done for done, _ in int_served.progress] == sorted(done for done, _ in int_served.progress)


@pytest.mark.parametrize("which", ["int", "str"])
def test_search_is_served_by_anisoscan(which, int_served, str_served):
    served = int_served if which == "int" else str_served
    q = served.data.queries
    res = served.client.search(served.name, data=q.tolist(), limit=10, search_params=APPROX)
    ids, scores = hits_of(res)
    want_ids, want_scores = served.node_search(q, 10, APPROX["params"])
    assert ids == want_ids
    np.testing.assert_allclose(np.array(scores), np.array(want_scores), rtol=1e-6)
    assert all(isinstance(k, str if which == "str" else int) for row in ids for k in row)
    exact, _ = served.node_search(q, 10, {"nprobe": 256 if which == "int" else 64, "reorder_k": 10_000})
    assert ids != exact, "nprobe=2 should be approximate; equal results would not show who answered"


def test_an_index_created_before_its_data_is_trained_at_the_flush(front, upstream, monkeypatch):
    """VectorDBBench's order: collection, index, load, then inserts and a flush."""
    if upstream.tier == "lite":
        pytest.skip("Milvus Lite keeps every collection loaded and has no STL_SORT: the load order this test "
                    "follows is a Milvus server's (the 2.3.5 server covers it here)")
    calls = []  # (method, collection) of the front's own calls to the upstream
    forward = front.upstream.call

    def recorded(method, request, *args, **kwargs):
        calls.append((method, getattr(request, "collection_name", "")))
        return forward(method, request, *args, **kwargs)

    monkeypatch.setattr(front.upstream, "call", recorded)
    s = Served(front, "int64", 4000, "IP", seed=7, insert=False)
    create_scann(s.client, s.name, "IP", 32)  # returns at once: nothing to index yet
    state = next(c for c in front.front.collections() if c.name == s.name)
    deadline = time.monotonic() + 30
    while not state.loaded_by_front:  # the waiting index loads the collection to look for rows
        assert time.monotonic() < deadline
        time.sleep(0.1)
    d = s.client.describe_index(s.name, "vector")
    assert (d["state"], d["indexed_rows"], d["total_rows"]) == ("Finished", 0, 0)  # as Milvus reports it
    scalar = s.client.prepare_index_params()
    scalar.add_index("bucket", index_type="STL_SORT")
    s.client.create_index(s.name, scalar)  # another index before the load, which Milvus 2.3 then checks
    calls.clear()
    s.client.load_collection(s.name)
    # Milvus 2.3 refused the client's load (its index set changed under the front's load): loaded again.
    assert [m for m, c in calls if c == s.name][:3] == ["LoadCollection", "ReleaseCollection", "LoadCollection"]
    calls.clear()
    for b in range(0, 4000, 1000):
        s.client.insert(s.name, make_rows("int64", s.data.base[b:b + 1000], b))
    q = s.data.queries
    # Not trained yet: the upstream answers, exactly.
    got = np.array(hits_of(s.client.search(s.name, data=q.tolist(), limit=10, search_params=APPROX))[0])
    truth = np.argsort(-(q @ s.data.base.T), axis=1)[:, :10]
    assert recall_at_k(got + 50_000, truth, 10) >= 0.99  # int64 keys are row - 50,000
    assert s.node_name not in front.node.names()
    s.client.flush(s.name)
    deadline = time.monotonic() + 60
    while (d := s.client.describe_index(s.name, "vector"))["state"] != "Finished" or d["indexed_rows"] < 4000:
        assert d["state"] == "InProgress" and time.monotonic() < deadline, d
        time.sleep(0.2)
    assert (d["indexed_rows"], d["total_rows"]) == (4000, 4000)
    assert ("LoadCollection", s.name) not in calls  # the waiting index found it loaded: asked, not loaded again
    ids, scores = hits_of(s.client.search(s.name, data=q.tolist(), limit=10, search_params=APPROX))
    want_ids, want_scores = s.node_search(q, 10, APPROX["params"])
    assert ids == want_ids  # now served by anisoscan
    np.testing.assert_allclose(np.array(scores), np.array(want_scores), rtol=1e-6)
    s.client.drop_collection(s.name)


def test_recall_against_numpy_exact(int_served):
    s = int_served
    q, base = s.data.queries, s.data.base
    res = s.client.search(s.name, data=q.tolist(), limit=10,
                          search_params={"params": {"nprobe": 32, "reorder_k": 1000}})
    truth = np.argsort(-(q @ base.T), axis=1)[:, :10]
    keys = np.array(keys_of("int64", range(N_INT)))
    got = np.array([[h.id for h in row] for row in res])
    assert recall_at_k(np.searchsorted(keys, got), truth, 10) >= 0.95
    np.testing.assert_allclose([row[0]["distance"] for row in res], np.sort(q @ base.T, axis=1)[:, -1], rtol=1e-4)


def test_filters_offset_and_output_fields(int_served):
    s = int_served
    q = s.data.queries
    s.client.search(s.name, data=q[:1].tolist(), limit=10, filter="bucket == 7", search_params=APPROX)  # a new filter
    res = s.client.search(s.name, data=q.tolist(), limit=10, filter="bucket == 7", search_params=APPROX,
                          output_fields=["bucket", "title", "category"])  # repeated: resolved, in the scan
    for row in res:
        assert len(row) == 10
        for h in row:
            i = h.id + 50_000
            assert h["entity"] == {"bucket": 7, "title": f"title {i}", "category": CATEGORIES[i % 3]}
    allowed = keys_of("int64", range(7, N_INT, BUCKETS))
    assert hits_of(res)[0] == s.node_search(q, 10, APPROX["params"], allowed)[0]
    paged = s.client.search(s.name, data=q.tolist(), limit=5, offset=5, filter="bucket == 7",
                            search_params={"params": {"nprobe": 2, "reorder_k": 10}})
    assert hits_of(paged)[0] == [row[5:] for row in hits_of(res)[0]]


def test_hybrid_search_fuses_searches_served_by_anisoscan(int_served, str_served):
    """Milvus 2.3.5 has no HybridSearch: the front answers it whole. Each search is the node's
    own answer, fused by the front's rankers (their formulas: tests/test_front_translate.py)."""
    s = int_served
    q = s.data.queries[:5]
    s.client.search(s.name, data=q[:1].tolist(), limit=10, filter="bucket == 7", search_params=APPROX)  # resolved
    searches = [AnnSearchRequest(q.tolist(), "vector", APPROX, limit=10),
                AnnSearchRequest(q.tolist(), "vector", APPROX, limit=8, expr="bucket == 7")]
    node = [(t.Hits(*s.node_search(q, 10, APPROX["params"])), "IP"),
            (t.Hits(*s.node_search(q, 8, APPROX["params"], keys_of("int64", range(7, N_INT, BUCKETS)))), "IP")]
    for ranker, rank in ((RRFRanker(20), t.Ranker("rrf", limit=6, offset=2, k=20.0)),
                         (WeightedRanker(0.8, 0.2), t.Ranker("weighted", 6, 2, weights=(0.8, 0.2), norm_score=True))):
        res = s.client.hybrid_search(s.name, searches, ranker, limit=6, offset=2, output_fields=["bucket", "title"])
        want = t.fuse(rank, node)
        ids, scores = hits_of(res)
        assert ids == want.keys and all(len(row) == 6 for row in ids)
        np.testing.assert_allclose(np.array(scores), np.array(want.scores), rtol=1e-5)
        for row in res:
            for h in row:
                i = h.id + 50_000
                assert h["entity"] == {"bucket": i % BUCKETS, "title": f"title {i}"}
    expect_status(1100, "length of weights param mismatch", s.client.hybrid_search, s.name, searches,
                  WeightedRanker(1.0), limit=5)
    expect_status(1100, "nq should be the same", s.client.hybrid_search, s.name,
                  [searches[0], AnnSearchRequest(q[:2].tolist(), "vector", APPROX, limit=5)], RRFRanker(), limit=5)
    # varchar keys, L2: ties in the fused order go to the smaller key.
    v, q = str_served, str_served.data.queries[:3]
    res = v.client.hybrid_search(v.name, [AnnSearchRequest(q.tolist(), "vector", APPROX, limit=5)] * 2, RRFRanker(),
                                 limit=5)
    want = t.fuse(t.Ranker("rrf", limit=5), [(t.Hits(*v.node_search(q, 5, APPROX["params"])), "L2")] * 2)
    assert hits_of(res)[0] == want.keys

def raw_search(front: FrontServer):
    """The Search RPC without pymilvus in between."""
    return grpc.insecure_channel(f"127.0.0.1:{front.port}").unary_unary(
        "/milvus.proto.milvus.MilvusService/Search", request_serializer=milvus_pb2.SearchRequest.SerializeToString,
        response_deserializer=milvus_pb2.SearchResults.FromString)


def test_round_decimal_is_applied_by_the_front(front, int_served):
    """Read off the wire: pymilvus rounds again on its side, which would hide a front that did not."""
    s = int_served
    search = raw_search(front)
    request = Prepare.search_requests_with_expr(s.name, "vector", APPROX, 5, data=s.data.queries[:3].tolist(),
                                                round_decimal=2)
    scores = np.array(search(request, timeout=30).results.scores)
    assert scores.size == 15 and np.allclose(scores, np.round(scores, 2), rtol=0, atol=1e-6)
    exact = np.array(hits_of(s.client.search(s.name, data=s.data.queries[:3].tolist(), limit=5,
                                             search_params=APPROX))[1]).ravel()
    np.testing.assert_allclose(scores, np.round(exact, 2), atol=1e-6)


def test_a_new_filter_is_searched_upstream_exactly_then_in_the_scan(int_served):
    s = int_served
    rows = 500
    expr = f"pk < {keys_of('int64', range(rows))[-1] + 1}"
    q = s.data.queries
    first = s.client.search(s.name, data=q.tolist(), limit=10, filter=expr, search_params=APPROX)
    scores = q @ s.data.base[:rows].T
    want = np.array(keys_of("int64", range(rows)))[np.argsort(-scores, axis=1)[:, :10]]
    assert hits_of(first)[0] == want.tolist()  # the upstream's FLAT: exact
    again = s.client.search(s.name, data=q.tolist(), limit=10, filter=expr, search_params=APPROX)
    assert hits_of(again)[0] == s.node_search(q, 10, APPROX["params"], keys_of("int64", range(rows)))[0]
    # The index's hits name their key as the upstream's do: "id" from Milvus 2.3, "pk" from 2.4 on.
    assert {tuple(h) for row in first for h in row} == {tuple(h) for row in again for h in row}


def test_writes_are_read_back_at_once(int_served):
    s = int_served
    c, name = s.client, s.name
    new = make_clustered(30, DIM, n_queries=1, metric="IP", seed=11).base
    c.insert(name, make_rows("int64", new, N_INT))  # keys N_INT-50000 ...
    first = hits_of(c.search(name, data=new[:5].tolist(), limit=1, search_params=APPROX))[0]
    assert first == [[k] for k in keys_of("int64", range(N_INT, N_INT + 5))]
    moved = make_rows("int64", -s.data.base[100:103], 100)  # same keys, new vectors
    c.upsert(name, moved)
    assert hits_of(c.search(name, data=(-s.data.base[100:103]).tolist(), limit=1,
                            search_params=APPROX))[0] == [[r["pk"]] for r in moved]
    gone = keys_of("int64", range(N_INT, N_INT + 10))
    c.delete(name, ids=gone)
    c.delete(name, filter="bucket == 3 and pk < 0")
    res = c.search(name, data=new.tolist(), limit=20, search_params={"params": {"nprobe": 2}})
    assert not {h.id for row in res for h in row} & set(gone)
    res = c.search(name, data=s.data.queries.tolist(), limit=10, filter="bucket == 3", search_params=APPROX)
    assert all(h.id >= 0 for row in res for h in row)
    assert s.front.node.describe(s.node_name).num_rows == s.count() == N_INT + 30 - 10 - 1000


def test_varchar_keys_writes_and_filters(str_served):
    s = str_served
    c, name = s.client, s.name
    victims = keys_of("varchar", range(0, 300))
    c.delete(name, ids=victims[:100])
    c.delete(name, filter='pk in ["doc-100", "doc-101"] or (category == "wiki" and bucket == 4)')
    res = c.search(name, data=s.data.base[:300].tolist(), limit=5, search_params=APPROX, output_fields=["pk"])
    seen = {h.id for row in res for h in row}
    assert not seen & (set(victims[:102]) | {f"doc-{i}" for i in range(N_STR) if i % 3 == 2 and i % BUCKETS == 4})
    assert all(h["entity"]["pk"] == h.id for row in res for h in row)
    quote = [{"pk": 'doc-"q"\\', "vector": s.data.base[5].tolist(), "category": "news", "bucket": 1, "title": "t"}]
    c.upsert(name, quote)
    hits = c.search(name, data=s.data.base[5:6].tolist(), limit=2, filter="category == 'news'", search_params=APPROX)
    assert 'doc-"q"\\' in hits_of(hits)[0][0]
    # pymilvus's delete(ids=...) does not escape the backslash in its expression; a filter does.
    c.delete(name, filter=f"pk in [{json.dumps(quote[0]['pk'])}]")
    assert s.front.node.describe(s.node_name).num_rows == s.count()


def expect_status(code: int, match: str, fn, *args, **kwargs) -> None:
    with pytest.raises(MilvusException, match=match) as caught:
        fn(*args, **kwargs)
    assert caught.value.code == code, caught.value


def test_bad_requests_get_milvus_statuses(front, str_served):
    s = str_served
    c, name, q = s.client, s.name, s.data.queries[:2].tolist()
    expect_status(1100, r"metric type not match: invalid parameter\[expected=L2\]\[actual=IP\]",
                  c.search, name, data=q, search_params={"metric_type": "IP"})
    expect_status(1100, "dimension of query 0 .4. is not equal to the field's dim 16", c.search, name,
                  data=[[1.0, 2.0, 3.0, 4.0]])
    expect_status(1100, "reorder_k: 3 is smaller than k=10", c.search, name, data=q,
                  search_params={"params": {"reorder_k": 3}})
    expect_status(1100, "nprobe: 500 exceeds nlist=64", c.search, name, data=q,
                  search_params={"params": {"nprobe": 500}})
    other = create_collection(c, "int64", s.data.base[:50])
    bad = c.prepare_index_params()
    bad.add_index("vector", index_type="SCANN", metric_type="IP", params={"nlist": 0})
    expect_status(1100, "invalid SCANN index params for field 'vector': nlist", c.create_index, other, bad)
    bad = c.prepare_index_params()
    bad.add_index("vector", index_type="SCANN", metric_type="IP", params={"nlits": 8})
    expect_status(1100, r"unknown key\(s\) \['nlits'\]", c.create_index, other, bad)
    bad = c.prepare_index_params()
    bad.add_index("title", index_type="SCANN", metric_type="IP")
    expect_status(1100, "field 'title' is VarChar; SCANN indexes FLOAT_VECTOR", c.create_index, other, bad)
    bad = c.prepare_index_params()
    bad.add_index("vector", index_type="SCANN", metric_type="COSINE")
    expect_status(100, "collection not found|does not exist", c.create_index, "no_such_collection", bad)
    empty = raw_search(front)(milvus_pb2.SearchRequest(collection_name=other, nq=1), timeout=30)
    assert empty.status.code == 1100 and "holds no query vectors" in empty.status.reason
    c.drop_collection(other)  # the upstream still runs: Milvus 2.3.5 dies on that request
    assert name in c.list_collections()  # still serving


def test_dead_upstream_is_reported_quickly(tmp_path):
    dead = FrontServer.start(Settings(f"http://127.0.0.1:{free_port()}", tmp_path, port=0, upstream_timeout_s=2))
    try:
        start = time.monotonic()
        expect_status(2, "upstream Milvus at 127.0.0.1:[0-9]+ is unavailable", connect, dead)
        assert time.monotonic() - start < 10
    finally:
        dead.stop()


def test_writes_that_bypass_the_front_are_reconciled(front, upstream, str_served):
    s = str_served
    direct = MilvusClient(upstream.uri)  # a second writer, straight to the upstream
    new = make_clustered(20, DIM, n_queries=1, metric="L2", seed=31).base
    direct.insert(s.name, make_rows("varchar", new, 3 * N_STR))
    gone = keys_of("varchar", range(1010, 1020))  # all present: none was deleted by an earlier test
    direct.delete(s.name, ids=gone)
    moved = make_rows("varchar", s.data.base[2000:2003] + 5, 2000)  # same keys, new vectors: counts unchanged
    direct.upsert(s.name, moved)
    ranges = len(front.store.range_starts(s.node_name, RANGE_ROWS)) + 1
    repaired = [front.reconciler.round() for _ in range(math.ceil(ranges / DIGEST_RANGES_PER_ROUND) + 1)]
    assert sum(r.deleted for r in repaired) == len(gone)
    assert sum(r.upserted for r in repaired) == len(new) + len(moved)
    assert front.reconciler.round() == Repair(0, 0)
    found = hits_of(s.client.search(s.name, data=np.concatenate([new, s.data.base[2000:2003] + 5]).tolist(),
                                    limit=1, search_params=APPROX))[0]
    assert found == [[k] for k in keys_of("varchar", range(3 * N_STR, 3 * N_STR + 20))] + [[r["pk"]] for r in moved]
    res = s.client.search(s.name, data=s.data.base[1010:1020].tolist(), limit=3, search_params=APPROX)
    assert not {h.id for row in res for h in row} & set(gone)
    assert front.node.describe(s.node_name).num_rows == s.count()


def restart(front: FrontServer, milvus_uri: str) -> None:
    """Stops the front and starts it again on its data dir and port; the module's fixture keeps the new one."""
    front.stop()
    again = FrontServer.start(Settings(milvus_uri, front.settings.data_dir, port=front.port, reconcile_interval_s=0))
    front.__dict__.update(again.__dict__)


def test_front_restart_keeps_index_and_writes(front, str_served):
    s = str_served
    q = s.data.queries.tolist()
    before = hits_of(s.client.search(s.name, data=q, limit=10, search_params=APPROX))
    restart(front, front.settings.milvus)
    client = connect(front)
    assert client.describe_index(s.name, "vector")["state"] == "Finished"
    assert hits_of(client.search(s.name, data=q, limit=10, search_params=APPROX)) == before
    assert front.node.describe(s.node_name).num_rows == s.count()


def test_a_build_interrupted_by_a_restart_starts_again(front):
    s = Served(front, "int64", 30_000, "IP", seed=8)
    create_scann(s.client, s.name, "IP", 64, sync=False)
    assert s.client.describe_index(s.name, "vector")["state"] == "InProgress"
    restart(front, front.settings.milvus)  # stops the export between two batches
    client = connect(front)
    deadline = time.monotonic() + 120
    while (d := client.describe_index(s.name, "vector"))["state"] == "InProgress" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (d["state"], d["indexed_rows"], d["total_rows"]) == ("Finished", 30_000, 30_000)
    ids, _ = hits_of(client.search(s.name, data=s.data.queries.tolist(), limit=10, search_params=APPROX))
    assert ids == s.node_search(s.data.queries, 10, APPROX["params"])[0]
    client.drop_collection(s.name)


def test_deletes_by_expression_race_no_insert(front):
    """Writers insert rows matching the expression while it is deleted: index and upstream still agree."""
    s = Served(front, "int64", 5000, "IP", seed=12)
    create_scann(s.client, s.name, "IP", 32)
    s.client.load_collection(s.name)
    stop, errors = threading.Event(), []

    def writer(first: int) -> None:
        client, start = connect(front), first
        try:
            while not stop.is_set():
                client.insert(s.name, make_rows("int64", s.data.base[:30] + 0.01, start))
                start += 30 * 8
        except Exception as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(10_000 + 30 * i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for _ in range(5):
        s.client.delete(s.name, filter="category == 'news'")
    stop.set()
    for thread in threads:
        thread.join()
    assert not errors
    upstream = s.client.query(s.name, filter="pk not in []", output_fields=["pk"])
    ids = front.store.ids(s.node_name, [r["pk"] for r in upstream], assign=False)
    assert (ids >= 0).all() and front.node.contains(s.node_name, ids).all()
    assert front.node.describe(s.node_name).num_rows == len(upstream)
    s.client.drop_collection(s.name)


def test_another_database(front, int_served):
    """The database travels in the `dbname` header: the same collection name in two databases stays apart."""
    admin = connect(front)
    admin.create_database("front_db")
    client = MilvusClient(f"http://127.0.0.1:{front.port}", db_name="front_db")
    data = make_clustered(3000, DIM, n_queries=5, metric="L2", seed=6)
    name = create_collection(client, "varchar", data.base)
    create_scann(client, name, "L2", 16)
    client.load_collection(name)
    rec = next(r for r in front.front.records() if r.collection == name)
    assert rec.db == "front_db" and name not in admin.list_collections()
    for _ in range(2):  # a filter's first use goes upstream; the repeat is resolved and scanned
        ids, _ = hits_of(client.search(name, data=data.queries.tolist(), limit=5, search_params=APPROX,
                                       filter="category == 'blog'", output_fields=["category"]))
    allowed = [k for i, k in enumerate(keys_of("varchar", range(3000))) if CATEGORIES[i % 3] == "blog"]
    node_ids, _ = front.node.search(rec.node_name, data.queries, 5, APPROX["params"],
                                              allowed_ids=front.store.ids(rec.node_name, allowed, assign=False))
    keys = front.store.keys(rec.node_name, node_ids.ravel().tolist())
    assert ids == [[keys[i] for i in row] for row in node_ids.tolist()]
    client.drop_collection(name)
    admin.drop_database("front_db")


def test_drop_index_and_collection(front):
    s = Served(front, "int64", 3000, "COSINE", seed=5)
    create_scann(s.client, s.name, "COSINE", 16)
    node_name = s.node_name
    s.client.load_collection(s.name)
    assert len(s.client.search(s.name, data=s.data.queries[:1].tolist(), limit=3)[0]) == 3
    s.client.release_collection(s.name)
    expect_status(101, r"collection not loaded\[collection=front_test_", s.client.search, s.name,
                  data=s.data.queries[:1].tolist(), limit=3)  # as Milvus answers, though the index could
    s.client.drop_index(s.name, "vector")
    assert node_name not in front.node.names()
    assert not [r for r in front.front.records() if r.collection == s.name]
    create_scann(s.client, s.name, "COSINE", 16)
    node_name = s.node_name
    s.client.drop_collection(s.name)
    assert node_name not in front.node.names() and s.name not in s.client.list_collections()


def test_upstream_restart_loses_nothing(front, upstream, int_served, request):
    """Milvus killed and started again on its data: the front reconnects and serves the same answers."""
    if upstream.tier != "server":
        pytest.skip(f"restarts only the Milvus 2.3.5 server this suite starts, not the {upstream.tier} upstream "
                    "(the server tier covers it)")
    milvus_server = request.getfixturevalue("milvus_server")
    s = int_served
    q = s.data.queries.tolist()
    before, rows = hits_of(s.client.search(s.name, data=q, limit=10, search_params=APPROX)), s.count()
    milvus_server.stop()  # terminate, then kill after 1 s
    try:
        # The index alone answers a plain search; anything needing the upstream says it is down.
        assert hits_of(s.client.search(s.name, data=q, limit=10, search_params=APPROX)) == before
        start = time.monotonic()
        expect_status(2, "upstream Milvus at .* is unavailable", s.client.search, s.name, data=q, limit=10,
                      search_params=APPROX, filter="bucket == 9")
        assert time.monotonic() - start < 10
    finally:
        milvus_server.start()
    # The PyPI server comes back on a new port (its old one is in TIME_WAIT): point the front at it.
    restart(front, f"http://127.0.0.1:{milvus_server.listen_port}")
    client = connect(front)
    client.load_collection(s.name)
    assert hits_of(client.search(s.name, data=q, limit=10, search_params=APPROX)) == before
    assert client.query(s.name, filter="", output_fields=["count(*)"])[0]["count(*)"] == rows
    extra = make_clustered(3, DIM, n_queries=1, metric="IP", seed=21).base
    client.insert(s.name, make_rows("int64", extra, 2 * N_INT))
    assert hits_of(client.search(s.name, data=extra.tolist(), limit=1, search_params=APPROX))[0] == \
        [[k] for k in keys_of("int64", range(2 * N_INT, 2 * N_INT + 3))]
