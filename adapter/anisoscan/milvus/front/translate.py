"""Milvus protobuf messages <-> numpy arrays and Python values, for the RPCs the front owns.

Parsing never trusts the request: every malformed part raises MilvusError (invalid
parameter) naming the field and the fix.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

from .. import conventions as mc
from .errors import invalid

# CreateIndex keys that describe the request rather than the index (pymilvus 3 sends the
# index's own params as top-level pairs beside them).
_INDEX_REQUEST_KEYS = frozenset({"index_type", "metric_type", "params", "index_name", "field_name"})
# Search features the front does not serve; a request using one goes to the upstream whole.
UPSTREAM_SEARCH_KEYS = frozenset({"radius", "range_filter", "group_by_field", "group_by_fields", "iterator",
                                  "search_iter_v2", "order_by_fields", "search_aggregation"})
# HybridSearch rank_params the front does not serve (grouping): such a request goes upstream whole.
UPSTREAM_RANK_KEYS = frozenset({"group_by_field", "group_size", "strict_group_size", "rank_group_scorer"})
MAX_SUB_REQUESTS = 1024  # Milvus's bound on a HybridSearch's searches
RRF_MAX_K = 16384


def pairs(kvs: Iterable[common_pb2.KeyValuePair]) -> dict[str, str]:
    return {kv.key: kv.value for kv in kvs}


def _json_object(name: str, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError as e:
        raise invalid(f"{name}: not valid JSON ({e}); send a JSON object") from e
    if not isinstance(value, dict):
        raise invalid(f"{name}: expected a JSON object, got {text[:100]!r}")
    return value


@dataclass(frozen=True)
class IndexRequest:
    index_type: str
    metric: str | None
    params: dict[str, Any]


def index_request(extra_params: Iterable[common_pb2.KeyValuePair]) -> IndexRequest:
    """A CreateIndex request's index type, metric and build params (nested JSON and top-level pairs)."""
    kv = pairs(extra_params)
    nested = _json_object("params", kv.get("params", ""))
    top = {k: v for k, v in kv.items() if k not in _INDEX_REQUEST_KEYS}
    metric = kv.get("metric_type") or nested.pop("metric_type", None)
    return IndexRequest(kv.get("index_type", nested.pop("index_type", "")).upper(),
                        str(metric).upper() if metric else None, {**top, **nested})


@dataclass(frozen=True)
class SearchSpec:
    """A Search request's parameters, as Milvus reads them from its key/value pairs."""

    anns_field: str
    limit: int
    offset: int
    round_decimal: int
    metric: str | None
    params: dict[str, Any] = field(default_factory=dict)
    upstream_only: tuple[str, ...] = ()  # features that send the search to the upstream


def _int(name: str, text: str | None, default: int) -> int:
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError as e:
        raise invalid(f"{name}: {text!r} is not an integer; send a whole number") from e


def search_spec(request: milvus_pb2.SearchRequest) -> SearchSpec:
    kv = pairs(request.search_params)
    params = _json_object("search_params.params", kv.get("params", ""))
    limit = _int("limit (topk)", kv.get("topk"), 0)
    offset = _int("offset", kv.get("offset"), 0)
    if not 1 <= limit <= mc.MAX_TOPK:
        raise invalid(f"limit: {limit} is invalid; top k should be in range [1, {mc.MAX_TOPK}]")
    if offset < 0 or offset + limit > mc.MAX_TOPK:
        raise invalid(f"offset: {offset} is invalid; offset + limit should be in range [1, {mc.MAX_TOPK}]")
    upstream = {k for k in UPSTREAM_SEARCH_KEYS if k in kv or k in params}
    if request.HasField("search_aggregation"):
        upstream.add("search_aggregation")
    metric = kv.get("metric_type") or params.get("metric_type")
    return SearchSpec(kv.get("anns_field", ""), limit, offset, _int("round_decimal", kv.get("round_decimal"), -1),
                      str(metric).upper() if metric else None, params, tuple(sorted(upstream)))


def queries(placeholder_group: bytes, dim: int, nq: int) -> np.ndarray:
    """The float32 query vectors of a search's placeholder group, checked for shape and finiteness."""
    group = common_pb2.PlaceholderGroup()
    try:
        group.ParseFromString(placeholder_group)
    except Exception as e:  # noqa: BLE001 - any decoding failure is the client's malformed input
        raise invalid(f"placeholder_group: cannot be decoded ({e}); send query vectors") from e
    if len(group.placeholders) != 1:
        raise invalid(f"placeholder_group: expected one placeholder, got {len(group.placeholders)}; "
                      "send query vectors through data=")
    holder = group.placeholders[0]
    if holder.type != common_pb2.PlaceholderType.FloatVector:
        raise invalid(f"data: the field is a FLOAT_VECTOR of dim {dim}; got "
                      f"{common_pb2.PlaceholderType.Name(holder.type)} queries")
    if nq and len(holder.values) != nq:
        raise invalid(f"nq: the request says {nq} queries but holds {len(holder.values)}")
    bad = next((i for i, value in enumerate(holder.values) if len(value) != dim * 4), None)
    if bad is not None:
        raise invalid(f"the dimension of query {bad} ({len(holder.values[bad]) / 4:g}) is not equal to the "
                      f"field's dim {dim}; send {dim}-dimensional vectors")
    x = np.frombuffer(b"".join(holder.values), dtype="<f4").reshape(len(holder.values), dim)
    if not np.isfinite(x).all():
        raise invalid("data: a query holds NaN or infinity; send finite numbers")
    return x


def vector_column(fields_data: Sequence[schema_pb2.FieldData], name: str, dim: int, rows: int) -> np.ndarray | None:
    """The float vectors of field `name` in an insert's columns, or None when it has none."""
    column = next((f for f in fields_data if f.field_name == name), None)
    if column is None or not column.vectors.HasField("float_vector"):
        return None
    x = np.asarray(column.vectors.float_vector.data, dtype=np.float32)
    return x.reshape(rows, dim) if x.size == rows * dim else None


def keys_of(ids: schema_pb2.IDs) -> list[Any]:
    if ids.HasField("str_id"):
        return list(ids.str_id.data)
    return list(ids.int_id.data)


def ids_proto(keys: Sequence[Any], pk_type: int) -> schema_pb2.IDs:
    if pk_type == mc.VARCHAR:
        return schema_pb2.IDs(str_id=schema_pb2.StringArray(data=[str(k) for k in keys]))
    return schema_pb2.IDs(int_id=schema_pb2.LongArray(data=[int(k) for k in keys]))


def column_values(column: schema_pb2.FieldData) -> list[Any]:
    """The values of a primary-key column (int64 or varchar)."""
    if column.scalars.HasField("string_data"):
        return list(column.scalars.string_data.data)
    return list(column.scalars.long_data.data)


def literal(key: Any) -> str:
    # JSON's string escapes are a subset of Milvus's (Go's strconv.Unquote); raw UTF-8 is kept.
    return json.dumps(key, ensure_ascii=False) if isinstance(key, str) else str(int(key))


def pk_in(pk_field: str, keys: Iterable[Any]) -> str:
    """A Milvus expression matching exactly these primary keys."""
    return f"{pk_field} in [{', '.join(literal(k) for k in keys)}]"


def all_rows(pk_field: str) -> str:
    """An expression every row matches (Milvus refuses an empty one without a limit)."""
    return f"{pk_field} not in []"


def _vector_row_bytes(vectors: schema_pb2.VectorField, kind: str) -> int:
    return {"binary_vector": vectors.dim // 8, "float16_vector": 2 * vectors.dim,
            "bfloat16_vector": 2 * vectors.dim, "int8_vector": vectors.dim}[kind]


def take_rows(column: schema_pb2.FieldData, rows: Sequence[int]) -> schema_pb2.FieldData:
    """The column's values at `rows` (repeats allowed), as Milvus lays out each type."""
    out = schema_pb2.FieldData(type=column.type, field_name=column.field_name, field_id=column.field_id,
                               is_dynamic=column.is_dynamic)
    if column.valid_data:
        out.valid_data.extend(column.valid_data[r] for r in rows)
    if column.HasField("scalars"):
        kind = column.scalars.WhichOneof("data")
        if kind is not None:
            src, dst = getattr(column.scalars, kind), getattr(out.scalars, kind)
            dst.CopyFrom(src)
            del dst.data[:]
            dst.data.extend(src.data[r] for r in rows)
        return out
    vectors = column.vectors
    kind = vectors.WhichOneof("data")
    out.vectors.dim = vectors.dim
    if kind == "float_vector":
        x = np.asarray(vectors.float_vector.data, dtype=np.float32).reshape(-1, vectors.dim)
        out.vectors.float_vector.data.extend(x[list(rows)].ravel().tolist())
    elif kind == "sparse_float_vector":
        out.vectors.sparse_float_vector.dim = vectors.sparse_float_vector.dim
        out.vectors.sparse_float_vector.contents.extend(vectors.sparse_float_vector.contents[r] for r in rows)
    elif kind is not None:
        width = _vector_row_bytes(vectors, kind)
        raw = getattr(vectors, kind)
        setattr(out.vectors, kind, b"".join(raw[r * width:(r + 1) * width] for r in rows))
    return out


@dataclass
class Hits:
    """One search's results: per query, primary keys and scores, best first."""

    keys: list[list[Any]]
    scores: list[list[float]]


def round_score(score: float, decimals: int) -> float:
    """Milvus's round_decimal: half away from zero at `decimals` places; -1 keeps the score."""
    if decimals < 0:
        return score
    scale = 10.0**decimals
    return math.floor(score * scale + 0.5) / scale


def hits_of(results: schema_pb2.SearchResultData) -> Hits:
    """The hits of an upstream SearchResults, split per query."""
    keys, scores = keys_of(results.ids), list(results.scores)
    hits, start = Hits([], []), 0
    for n in results.topks:
        hits.keys.append(keys[start:start + n])
        hits.scores.append(scores[start:start + n])
        start += n
    return hits


# --- HybridSearch: several searches fused into one ranking (Milvus's rerankers) ------------


@dataclass(frozen=True)
class Ranker:
    """A HybridSearch's rank_params: how the searches' hits are fused, and the page returned."""

    strategy: str  # "rrf" or "weighted"
    limit: int
    offset: int = 0
    round_decimal: int = -1
    k: float = 60.0  # rrf: each hit adds 1 / (k + its rank), ranks from 1
    weights: tuple[float, ...] = ()  # weighted: one per search, in [0, 1]
    norm_score: bool = False  # weighted: scores mapped into [0, 1] by metric first


def ranker(rank_params: Iterable[common_pb2.KeyValuePair], searches: int) -> Ranker:
    """Reads rank_params as Milvus 2.6 does (pymilvus sends strategy, params, limit, offset, round_decimal)."""
    kv = pairs(rank_params)
    if "limit" not in kv:
        raise invalid("limit not found in rank_params; pass limit= to hybrid_search")
    limit, offset = _int("limit", kv["limit"], 0), _int("offset", kv.get("offset"), 0)
    if not 1 <= limit <= mc.MAX_TOPK:
        raise invalid(f"limit: {limit} is invalid; top k should be in range [1, {mc.MAX_TOPK}]")
    if offset < 0 or offset + limit > mc.MAX_TOPK:
        raise invalid(f"offset: {offset} is invalid; offset + limit should be in range [1, {mc.MAX_TOPK}]")
    round_decimal = _int("round_decimal", kv.get("round_decimal"), -1)
    if not (round_decimal == -1 or 0 <= round_decimal <= 6):
        raise invalid(f"round_decimal: {round_decimal} is invalid; should be -1 or an integer in range [0, 6]")
    strategy = kv.get("strategy", "rrf").lower()
    if strategy not in ("rrf", "weighted"):
        raise invalid(f"unsupported rank type {strategy!r}; use RRFRanker or WeightedRanker")
    if "params" not in kv:
        raise invalid("params not found in rank_params; pass a ranker")
    params = _json_object("rank_params.params", kv["params"])
    if strategy == "rrf":
        k = params.get("k", 60)
        if isinstance(k, bool) or not isinstance(k, (int, float)) or not 0 < k < RRF_MAX_K:
            raise invalid(f"RRF k: {k!r} is invalid; it should be in range (0, {RRF_MAX_K})")
        return Ranker("rrf", limit, offset, round_decimal, k=float(k))
    weights = params.get("weights")
    if not isinstance(weights, list) or any(isinstance(w, bool) or not isinstance(w, (int, float)) for w in weights):
        raise invalid(f"weights: expected a list of numbers, got {weights!r}")
    if len(weights) != searches:
        raise invalid(f"the length of weights param mismatch with ann search requests: {len(weights)} weights "
                      f"for {searches} searches; give one weight per search")
    if any(not 0 <= w <= 1 for w in weights):
        raise invalid(f"weights: {weights} is invalid; each weight should be in range [0, 1]")
    norm = params.get("norm_score", False)
    if not isinstance(norm, bool):
        raise invalid(f"norm_score: {norm!r} is invalid; it should be true or false")
    return Ranker("weighted", limit, offset, round_decimal, weights=tuple(float(w) for w in weights),
                  norm_score=norm)


def normalized_score(metric: str, score: float) -> float:
    """A search score mapped into [0, 1], larger is better, as Milvus's weighted ranker maps it."""
    if metric == "COSINE":
        return (1.0 + score) / 2.0
    if metric == "IP":
        return 0.5 + math.atan(score) / math.pi
    return 1.0 - 2.0 * math.atan(score) / math.pi  # a distance (L2)


def fuse(rank: Ranker, searches: Sequence[tuple[Hits, str]]) -> Hits:
    """The fused page of each query over the searches' (hits, metric): scores summed per key,
    best first, ties to the smaller key; then [offset, offset + limit), rounded."""
    metrics = {metric for _, metric in searches}
    mixed = "L2" in metrics and len(metrics) > 1  # distances are mapped even without norm_score
    descending = rank.strategy == "rrf" or rank.norm_score or mixed or "L2" not in metrics
    fused = Hits([], [])
    for q in range(len(searches[0][0].keys)):
        total: dict[Any, float] = {}
        for i, (hits, metric) in enumerate(searches):
            for place, (key, score) in enumerate(zip(hits.keys[q], hits.scores[q])):
                if rank.strategy == "rrf":
                    value = 1.0 / (rank.k + place + 1)
                else:
                    norm = rank.norm_score or (mixed and metric == "L2")
                    value = rank.weights[i] * (normalized_score(metric, score) if norm else score)
                total[key] = total.get(key, 0.0) + value
        ordered = sorted(total.items(), key=lambda item: (-item[1] if descending else item[1], item[0]))
        page = ordered[rank.offset:rank.offset + rank.limit]
        fused.keys.append([key for key, _ in page])
        fused.scores.append([round_score(score, rank.round_decimal) for _, score in page])
    return fused


def names_primary_key(server_version: str) -> bool:
    """Whether a Milvus of this GetVersion names the primary key field in its search results
    (primary_field_name; pymilvus keys each hit by it, else by "id"): 2.3 and older leave it
    unset (2.3.5 checked), newer ones set it; a version not read as "vMAJOR.MINOR" is taken as
    new (Milvus Lite 3's "milvus_lite-3.2.2" sets it)."""
    m = re.match(r"v?(\d+)\.(\d+)", server_version)
    return m is None or (int(m[1]), int(m[2])) >= (2, 4)


def search_results(collection: str, hits: Hits, limit: int, pk_type: int, pk_name: str,
                   columns: Sequence[schema_pb2.FieldData] = ()) -> milvus_pb2.SearchResults:
    """A SearchResults message; `columns` hold the output fields, one row per hit in order;
    `pk_name` is the primary key's name where the upstream names it (names_primary_key), else ""."""
    flat_keys = [k for row in hits.keys for k in row]
    data = schema_pb2.SearchResultData(
        num_queries=len(hits.keys), top_k=limit, ids=ids_proto(flat_keys, pk_type),
        scores=[s for row in hits.scores for s in row], topks=[len(row) for row in hits.keys],
        fields_data=list(columns), output_fields=[c.field_name for c in columns], primary_field_name=pk_name)
    return milvus_pb2.SearchResults(status=common_pb2.Status(), results=data, collection_name=collection)
