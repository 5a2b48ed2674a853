"""Milvus protobuf messages <-> numpy arrays and Python values, for the RPCs the front owns.

Parsing never trusts the request: every malformed part raises MilvusError (invalid
parameter) naming the field and the fix.
"""

from __future__ import annotations

import json
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


def search_results(collection: str, hits: Hits, limit: int, pk_type: int,
                   columns: Sequence[schema_pb2.FieldData] = ()) -> milvus_pb2.SearchResults:
    """A SearchResults message; `columns` hold the output fields, one row per hit in order.

    primary_field_name stays unset, as Milvus 2.3 leaves it: pymilvus then names the key "id".
    """
    flat_keys = [k for row in hits.keys for k in row]
    data = schema_pb2.SearchResultData(
        num_queries=len(hits.keys), top_k=limit, ids=ids_proto(flat_keys, pk_type),
        scores=[s for row in hits.scores for s in row], topks=[len(row) for row in hits.keys],
        fields_data=list(columns), output_fields=[c.field_name for c in columns])
    return milvus_pb2.SearchResults(status=common_pb2.Status(), results=data, collection_name=collection)
