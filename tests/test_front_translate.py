"""The front's translation between Milvus messages and arrays, its key map and its filter cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("pymilvus", reason="the front needs pymilvus (pip install '.[milvus]')")

from anisoscan.milvus.front import translate as t  # noqa: E402
from anisoscan.milvus.front.errors import PARAMETER_INVALID, MilvusError  # noqa: E402
from anisoscan.milvus.front.store import FieldRecord, FrontStore  # noqa: E402
from anisoscan.milvus.front.sync import CollectionState, FilterCache  # noqa: E402
from pymilvus.client.prepare import Prepare  # noqa: E402
from pymilvus.client.search_result import SearchResult  # noqa: E402
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2  # noqa: E402


def search_request(queries, limit=10, params=None, **kwargs) -> milvus_pb2.SearchRequest:
    """The request pymilvus itself builds for MilvusClient.search."""
    return Prepare.search_requests_with_expr("docs", "vector", params or {}, limit, data=queries, **kwargs)


def test_index_request_reads_nested_and_top_level_params():
    pairs = [common_pb2.KeyValuePair(key="index_type", value="scann"),
             common_pb2.KeyValuePair(key="metric_type", value="cosine"),
             common_pb2.KeyValuePair(key="nlist", value="64"),
             common_pb2.KeyValuePair(key="params", value=json.dumps({"with_raw_data": False}))]
    spec = t.index_request(pairs)
    assert (spec.index_type, spec.metric, spec.params) == ("SCANN", "COSINE", {"nlist": "64", "with_raw_data": False})
    with pytest.raises(MilvusError, match="params: not valid JSON"):
        t.index_request([common_pb2.KeyValuePair(key="params", value="{nlist")])


def test_search_spec_from_what_pymilvus_sends():
    q = np.ones((2, 4), np.float32)
    spec = t.search_spec(search_request(q, 7, {"metric_type": "L2", "params": {"nprobe": 3, "reorder_k": 20}},
                                        offset=2, round_decimal=3))
    assert (spec.anns_field, spec.limit, spec.offset, spec.round_decimal, spec.metric) == ("vector", 7, 2, 3, "L2")
    assert spec.params["nprobe"] == 3 and spec.params["reorder_k"] == 20 and not spec.upstream_only
    ranged = t.search_spec(search_request(q, 5, {"params": {"radius": 0.5}}))
    assert ranged.upstream_only == ("radius",)
    for limit, offset in ((0, 0), (16385, 0), (10, 16380)):
        with pytest.raises(MilvusError) as caught:
            t.search_spec(search_request(q, limit, offset=offset))
        assert caught.value.code == PARAMETER_INVALID


def test_queries_decode_and_check_the_placeholder_group():
    q = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    request = search_request(q)
    np.testing.assert_array_equal(t.queries(request.placeholder_group, 8, request.nq), q)
    with pytest.raises(MilvusError, match="dimension of query 0 .8. is not equal to the field's dim 6"):
        t.queries(request.placeholder_group, 6, request.nq)
    with pytest.raises(MilvusError, match="nq: the request says 5 queries but holds 3"):
        t.queries(request.placeholder_group, 8, 5)
    bad = q.copy()
    bad[1, 2] = np.nan
    with pytest.raises(MilvusError, match="NaN or infinity"):
        t.queries(search_request(bad).placeholder_group, 8, 3)
    with pytest.raises(MilvusError, match="placeholder_group: cannot be decoded"):
        t.queries(b"\xff\xff", 8, 1)


def test_pk_expressions_quote_any_key():
    assert t.pk_in("pk", [-3, 5]) == "pk in [-3, 5]"
    keys = ['plain', 'with "quotes"', "back\\slash", "naïve"]
    expr = t.pk_in("pk", keys)
    assert json.loads(expr[len("pk in "):]) == keys
    assert "naïve" in expr  # raw UTF-8: Milvus's parser reads it as written


def test_take_rows_reorders_every_column_kind():
    rows = [2, 0, 2]
    long_col = schema_pb2.FieldData(type=schema_pb2.Int64, field_name="n",
                                    scalars=schema_pb2.ScalarField(long_data=schema_pb2.LongArray(data=[10, 11, 12])))
    json_col = schema_pb2.FieldData(type=schema_pb2.JSON, field_name="j", scalars=schema_pb2.ScalarField(
        json_data=schema_pb2.JSONArray(data=[b'{"a":0}', b'{"a":1}', b'{"a":2}'])))
    vec = np.arange(12, dtype=np.float32).reshape(3, 4)
    vec_col = schema_pb2.FieldData(type=schema_pb2.FloatVector, field_name="v", vectors=schema_pb2.VectorField(
        dim=4, float_vector=schema_pb2.FloatArray(data=vec.ravel().tolist())))
    bin_col = schema_pb2.FieldData(type=schema_pb2.BinaryVector, field_name="b",
                                   vectors=schema_pb2.VectorField(dim=16, binary_vector=b"aabbcc"))
    assert list(t.take_rows(long_col, rows).scalars.long_data.data) == [12, 10, 12]
    assert list(t.take_rows(json_col, rows).scalars.json_data.data) == [b'{"a":2}', b'{"a":0}', b'{"a":2}']
    taken = np.asarray(t.take_rows(vec_col, rows).vectors.float_vector.data).reshape(3, 4)
    np.testing.assert_array_equal(taken, vec[rows])
    assert t.take_rows(bin_col, rows).vectors.binary_vector == b"ccaacc"


def test_search_results_parse_in_pymilvus():
    hits = t.Hits(keys=[["a", "b"], [], ["c"]], scores=[[0.9, 0.5], [], [0.1]])
    title = schema_pb2.FieldData(type=schema_pb2.VarChar, field_name="title", scalars=schema_pb2.ScalarField(
        string_data=schema_pb2.StringArray(data=["ta", "tb", "tc"])))
    reply = t.search_results("docs", hits, 2, 21, "", [title])
    parsed = SearchResult(reply.results)
    assert [[h["id"] for h in row] for row in parsed] == hits.keys
    assert [h["distance"] for row in parsed for h in row] == pytest.approx([0.9, 0.5, 0.1])
    assert [h["entity"]["title"] for row in parsed for h in row] == ["ta", "tb", "tc"]
    ints = SearchResult(t.search_results("docs", t.Hits([[-5, 7]], [[1.0, 2.0]]), 2, 5, "").results)
    assert [h["id"] for h in ints[0]] == [-5, 7]
    named = SearchResult(t.search_results("docs", t.Hits([[-5, 7]], [[1.0, 2.0]]), 2, 5, "doc_id").results)
    assert [h["doc_id"] for h in named[0]] == [-5, 7]  # as a Milvus 2.4+ upstream names it


@pytest.mark.parametrize("version,named", [("v2.3.5", False), ("2.3.21", False), ("v2.2.16", False),
                                           ("v2.4.0", True), ("v2.6.3", True), ("v3.0.0", True),
                                           ("milvus_lite-3.2.2", True), ("", True)])
def test_results_name_the_primary_key_as_the_upstream_version_does(version, named):
    assert t.names_primary_key(version) is named


def record(name: str) -> FieldRecord:
    return FieldRecord(name, "default", "docs", "vector", "vector", "IP", 4, {"nlist": "8"}, "pk", 21)


def test_key_map_is_stable_across_restarts(tmp_path):
    store = FrontStore(tmp_path)
    store.add(record("front_a"))
    store.add(record("front_b"))
    ids = store.ids("front_a", ["x", "y", "x", "z"], assign=True)
    assert ids.tolist() == [0, 1, 0, 2]
    assert store.ids("front_b", [-1, 2**62], assign=True).tolist() == [0, 1]  # one map per field
    store.close()
    store = FrontStore(tmp_path)
    assert store.ids("front_a", ["z", "new", "x"], assign=False).tolist() == [2, -1, 0]
    assert store.ids("front_a", ["new"], assign=True).tolist() == [3]
    assert store.keys("front_a", [2, 0, 3, 99]) == {2: "z", 0: "x", 3: "new"}
    assert {r.node_name: r.params for r in store.records()} == {"front_a": {"nlist": "8"}, "front_b": {"nlist": "8"}}
    store.remove("front_a")
    assert store.ids("front_a", ["x"], assign=False).tolist() == [-1]
    store.close()


def test_filter_cache_resolves_repeated_filters_and_is_invalidated_by_writes():
    cache, collection = FilterCache(entries=2), CollectionState("default", "docs")
    calls = []

    def resolve() -> np.ndarray:
        calls.append(1)
        return np.arange(len(calls), dtype=np.int64)

    assert cache.allowed(collection, ("e",), resolve) is None and not calls  # new: the upstream searches
    assert cache.allowed(collection, ("e",), resolve).tolist() == [0]  # repeated: resolved
    assert cache.allowed(collection, ("e",), resolve).tolist() == [0] and len(calls) == 1  # cached
    collection.version += 1  # a write
    assert cache.allowed(collection, ("e",), resolve) is None  # new again at this version
    assert cache.allowed(collection, ("e",), resolve).tolist() == [0, 1]
    cache.allowed(collection, ("f",), resolve)
    cache.allowed(collection, ("g",), resolve)  # evicts ("e",), the least recently used
    assert cache.allowed(collection, ("e",), resolve) is None and len(calls) == 2


def test_key_ranges_and_digests(tmp_path):
    store = FrontStore(tmp_path)
    store.add(record("front_r"))
    keys = list(range(-50, 50))
    ids = store.ids("front_r", keys, assign=True)
    store.set_digests("front_r", ids[:90].tolist(), [k * 7 for k in keys[:90]])  # the last 10 not indexed
    assert store.range_starts("front_r", 30) == [-20, 10]  # indexed keys -50..39 in runs of 30
    assert store.range_rows("front_r", None, -20) == {k: k * 7 for k in range(-50, -20)}
    assert store.range_rows("front_r", 10, None) == {k: k * 7 for k in range(10, 40)}  # 40.. are not indexed
    store.set_digests("front_r", ids[:5].tolist(), [None] * 5)  # deleted from the index
    assert min(store.range_rows("front_r", None, None)) == -45
    store.close()


def rank_params(ranker, limit: int, searches: int = 2, **kwargs) -> list[common_pb2.KeyValuePair]:
    """The rank_params pymilvus itself sends for MilvusClient.hybrid_search."""
    return list(Prepare.hybrid_search_request_with_ranker("docs", [], ranker, limit, **kwargs).rank_params)


def test_rankers_are_read_from_what_pymilvus_sends():
    from pymilvus import RRFRanker, WeightedRanker

    rrf = t.ranker(rank_params(RRFRanker(30), 7, offset=2, round_decimal=3), 2)
    assert (rrf.strategy, rrf.k, rrf.limit, rrf.offset, rrf.round_decimal) == ("rrf", 30.0, 7, 2, 3)
    weighted = t.ranker(rank_params(WeightedRanker(0.7, 0.3), 5), 2)
    assert (weighted.strategy, weighted.weights, weighted.norm_score) == ("weighted", (0.7, 0.3), True)
    assert not t.ranker(rank_params(WeightedRanker(1, 0.5, norm_score=False), 5), 2).norm_score
    for params, searches, message in (
            (rank_params(WeightedRanker(0.7, 0.3), 5), 3, "length of weights param mismatch"),
            (rank_params(WeightedRanker(1.5, 0.3), 5), 2, "each weight should be in range"),
            (rank_params(RRFRanker(20000), 5), 2, "RRF k"),
            (rank_params(RRFRanker(), 5, round_decimal=9), 2, "round_decimal"),
            ([common_pb2.KeyValuePair(key="strategy", value="rrf")], 2, "limit not found in rank_params"),
            ([common_pb2.KeyValuePair(key="limit", value="5")], 2, "params not found in rank_params"),
            ([common_pb2.KeyValuePair(key="limit", value="5"), common_pb2.KeyValuePair(key="strategy", value="max"),
              common_pb2.KeyValuePair(key="params", value="{}")], 2, "unsupported rank type")):
        with pytest.raises(MilvusError, match=message) as caught:
            t.ranker(params, searches)
        assert caught.value.code == PARAMETER_INVALID


def test_fusion_follows_milvus_formulas():
    first = t.Hits([[5, 3, 9]], [[0.9, 0.5, 0.1]])
    second = t.Hits([[3, 7]], [[0.8, 0.4]])
    rrf = t.fuse(t.Ranker("rrf", limit=3, k=60.0), [(first, "IP"), (second, "IP")])
    # 3: 1/62 + 1/61 first; 5 and 7 tie at 1/61 and 1/62 -> 5: 1/61, 7: 1/62; 9: 1/63.
    assert rrf.keys == [[3, 5, 7]]
    np.testing.assert_allclose(rrf.scores[0], [1 / 62 + 1 / 61, 1 / 61, 1 / 62])
    tie = t.fuse(t.Ranker("rrf", limit=2), [(t.Hits([[8]], [[1.0]]), "IP"), (t.Hits([[2]], [[1.0]]), "IP")])
    assert tie.keys == [[2, 8]]  # equal scores: the smaller key first
    weighted = t.fuse(t.Ranker("weighted", limit=2, offset=1, round_decimal=4, weights=(0.6, 0.4), norm_score=True),
                      [(first, "IP"), (second, "COSINE")])
    score = {5: 0.6 * (0.5 + np.arctan(0.9) / np.pi),
             3: 0.6 * (0.5 + np.arctan(0.5) / np.pi) + 0.4 * (1 + 0.8) / 2,
             9: 0.6 * (0.5 + np.arctan(0.1) / np.pi), 7: 0.4 * (1 + 0.4) / 2}
    order = sorted(score, key=lambda key: -score[key])
    assert weighted.keys == [order[1:3]]
    np.testing.assert_allclose(weighted.scores[0], [round(score[key], 4) for key in order[1:3]], atol=1e-12)
    # L2 without normalization: distances summed, smallest first.
    near = t.fuse(t.Ranker("weighted", limit=3, weights=(1.0, 1.0)),
                  [(t.Hits([[1, 2]], [[0.5, 2.0]]), "L2"), (t.Hits([[2, 3]], [[0.1, 0.3]]), "L2")])
    assert near.keys == [[3, 1, 2]] and near.scores == [[0.3, 0.5, 2.1]]
    assert t.round_score(0.125, 2) == 0.13 and t.round_score(-0.125, 2) == -0.12 and t.round_score(0.3, -1) == 0.3


def test_upstream_results_split_per_query():
    data = schema_pb2.SearchResultData(num_queries=2, top_k=3, topks=[2, 1], scores=[0.5, 0.4, 0.9],
                                       ids=schema_pb2.IDs(str_id=schema_pb2.StringArray(data=["a", "b", "c"])))
    hits = t.hits_of(data)
    assert hits.keys == [["a", "b"], ["c"]]
    np.testing.assert_allclose(np.concatenate(hits.scores), [0.5, 0.4, 0.9], rtol=1e-6)
    assert [len(row) for row in hits.scores] == [2, 1]


def test_the_upstream_version_is_asked_until_one_answer_succeeds_then_kept():
    from anisoscan.milvus.front.errors import UpstreamStatus
    from anisoscan.milvus.front.proxy import Upstream
    from pymilvus.grpc_gen import common_pb2, milvus_pb2

    replies = [milvus_pb2.GetVersionResponse(status=common_pb2.Status(code=2, reason="not ready")),
               milvus_pb2.GetVersionResponse(version="v2.3.5")]
    asked = []
    upstream = Upstream("127.0.0.1:1", None, 1.0)
    upstream.call = lambda method, *args, **kwargs: asked.append(method) or replies[len(asked) - 1]
    with pytest.raises(UpstreamStatus, match="not ready"):  # an error reply is not read as a version
        upstream.names_primary_key()
    assert upstream.names_primary_key() is False and upstream.names_primary_key() is False
    assert asked == ["GetVersion", "GetVersion"]
