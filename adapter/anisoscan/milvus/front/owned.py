"""The RPCs the front answers itself for SCANN fields; for any other field each is forwarded.

Index management (CreateIndex, DescribeIndex, GetIndexState, GetIndexBuildProgress,
DropIndex), Search and HybridSearch, and the writes (Insert, Upsert, Delete,
DropCollection), which are forwarded and then applied to the served fields. Every answer
is a Milvus status: bad input is code 1100 (IllegalArgument) naming the field and the fix,
a dead upstream code 2.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
import threading
from collections.abc import Callable
from typing import Any

import grpc
import numpy as np
from google.protobuf.message import Message
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

from ...node import IndexNode
from ...params import INDEX_TYPE, METRICS, IndexParams
from .. import conventions as mc
from . import translate as t
from .errors import (
    COLLECTION_NOT_LOADED,
    SERVICE_INTERNAL,
    MilvusError,
    UpstreamStatus,
    check,
    invalid,
    is_ok,
    reply_with,
)
from .proxy import Metadata, OwnedMethod, Upstream, clean_metadata
from .store import FAILED, FINISHED, IN_PROGRESS, FieldRecord, FrontStore
from .sync import (
    EXPORT_BATCH,
    CollectionState,
    FilterCache,
    ServedField,
    Syncer,
    Write,
    WriteClock,
    primary_keys,
    query,
    with_db,
)

log = logging.getLogger(__name__)

UPSTREAM_INDEX_TYPE = "FLAT"  # what the front creates upstream so the collection can load (README)
DELETE_BATCH = EXPORT_BATCH  # primary keys per forwarded delete expression

_STATES = {IN_PROGRESS: common_pb2.IndexState.InProgress, FINISHED: common_pb2.IndexState.Finished,
           FAILED: common_pb2.IndexState.Failed}


def _state(served: ServedField) -> int:
    """An index still waiting for its first rows has nothing to index: Finished, as Milvus reports it."""
    return common_pb2.IndexState.Finished if served.awaiting_rows else _STATES[served.record.state]


def _db(request: Any, metadata: Metadata) -> str:
    return request.db_name or next((str(v) for k, v in metadata if k == "dbname"), "") or "default"


def _part_of(request: milvus_pb2.HybridSearchRequest, sub: milvus_pb2.SearchRequest,
             db: str) -> milvus_pb2.SearchRequest:
    """One search of a HybridSearch as a Search of its own: the request's collection, partitions
    and consistency; no output fields, offset or rounding (those apply to the fused page)."""
    part = milvus_pb2.SearchRequest()
    part.CopyFrom(sub)
    part.db_name = part.db_name or db
    part.collection_name = part.collection_name or request.collection_name
    if not part.partition_names:
        part.partition_names.extend(request.partition_names)
    part.guarantee_timestamp = part.guarantee_timestamp or request.guarantee_timestamp
    part.consistency_level, part.use_default_consistency = request.consistency_level, request.use_default_consistency
    del part.output_fields[:]
    kept = [kv for kv in part.search_params if kv.key not in ("offset", "round_decimal")]
    del part.search_params[:]
    part.search_params.extend(kept)
    return part


class Front:
    """The owned RPC handlers, and the served fields by (db, collection)."""

    def __init__(self, upstream: Upstream, node: IndexNode, store: FrontStore,
                 index_types: tuple[str, ...] = (INDEX_TYPE,)) -> None:
        self.upstream, self.node, self.store = upstream, node, store
        self.index_types = tuple(name.upper() for name in index_types)
        self.syncer = Syncer(upstream, node, store)
        self.filters = FilterCache()
        self.writes = WriteClock()
        self._collections: dict[tuple[str, str], CollectionState] = {}
        self._lock = threading.Lock()
        self._restore()

    def _restore(self) -> None:
        """Served fields from the store: finished ones are on the node; interrupted builds start again."""
        for rec in self.store.records():
            collection = self._collection(rec.db, rec.collection, create=True)
            served = ServedField(rec)
            collection.fields[rec.field] = served
            if rec.state == IN_PROGRESS:
                log.info("%s.%s: the build was interrupted; exporting again", rec.collection, rec.field)
                self.syncer.start_build(collection, served, ())
            elif rec.state == FINISHED and rec.node_name not in self.node.names():
                self.syncer.fail(served, f"node index {rec.node_name} is missing from the data dir; "
                                         "drop the index and create it again")

    def methods(self) -> dict[str, OwnedMethod]:
        m, status = milvus_pb2, common_pb2.Status
        table: dict[str, tuple[type[Message], type[Message], Callable[..., Message]]] = {
            "CreateIndex": (m.CreateIndexRequest, status, self.create_index),
            "DescribeIndex": (m.DescribeIndexRequest, m.DescribeIndexResponse, self.describe_index),
            "GetIndexState": (m.GetIndexStateRequest, m.GetIndexStateResponse, self.get_index_state),
            "GetIndexBuildProgress": (m.GetIndexBuildProgressRequest, m.GetIndexBuildProgressResponse,
                                      self.get_index_build_progress),
            "DropIndex": (m.DropIndexRequest, status, self.drop_index),
            "DropCollection": (m.DropCollectionRequest, status, self.drop_collection),
            "Flush": (m.FlushRequest, m.FlushResponse, self.flush),
            "Insert": (m.InsertRequest, m.MutationResult, self.insert),
            "Upsert": (m.UpsertRequest, m.MutationResult, self.upsert),
            "Delete": (m.DeleteRequest, m.MutationResult, self.delete),
            "Search": (m.SearchRequest, m.SearchResults, self.search),
            "HybridSearch": (m.HybridSearchRequest, m.SearchResults, self.hybrid_search),
            **{name: (getattr(m, f"{name}Request"), status, self._load_state_changer(name))
               for name in ("LoadCollection", "ReleaseCollection", "LoadPartitions", "ReleasePartitions")},
        }
        return {name: OwnedMethod(req, rep, self._answering(name, rep, fn)) for name, (req, rep, fn) in table.items()}

    def _answering(self, name: str, reply_type: type[Message], fn: Callable[..., Message]) -> Callable[..., Message]:
        """Every failure becomes a Milvus status in the reply: the front never dies on a request."""
        def handler(request: Any, context: grpc.ServicerContext) -> Message:
            try:
                return fn(request, clean_metadata(context.invocation_metadata()))
            except MilvusError as e:
                status = e.status()
            except UpstreamStatus as e:
                status = e.status
            except Exception as e:  # noqa: BLE001 - a bug answers its request, the server keeps serving
                log.exception("%s failed", name)
                status = MilvusError(SERVICE_INTERNAL, f"anisoscan front: {name}: {type(e).__name__}: {e}").status()
            return reply_with(reply_type, status)
        return handler

    # --- served fields ----------------------------------------------------------------
    def _collection(self, db: str, name: str, create: bool = False) -> CollectionState | None:
        with self._lock:
            state = self._collections.get((db, name))
            if state is None and create:
                state = self._collections[(db, name)] = CollectionState(db, name)
            return state

    def collections(self) -> list[CollectionState]:
        with self._lock:
            return list(self._collections.values())

    def records(self) -> list[FieldRecord]:
        with self._lock:
            return [s.record for c in self._collections.values() for s in c.fields.values()]

    @staticmethod
    def _matching(collection: CollectionState | None, field_name: str, index_name: str) -> list[ServedField]:
        if collection is None:
            return []
        return [s for s in collection.fields.values()
                if (not field_name or s.record.field == field_name)
                and (not index_name or s.record.index_name == index_name)]

    def _drop_served(self, collection: CollectionState, served: list[ServedField]) -> None:
        for s in served:
            if s.record.node_name in self.node.names():
                self.node.drop(s.record.node_name)
            self.store.remove(s.record.node_name)
            collection.fields.pop(s.record.field, None)
            log.info("%s.%s: SCANN index dropped", s.record.collection, s.record.field)
        collection.version += 1

    # --- index management -------------------------------------------------------------
    def create_index(self, request: milvus_pb2.CreateIndexRequest, md: Metadata) -> common_pb2.Status:
        spec = t.index_request(request.extra_params)
        if spec.index_type not in self.index_types:
            return self.upstream.call("CreateIndex", request, common_pb2.Status, md)
        db, name, field_name = _db(request, md), request.collection_name, request.field_name
        described = self.upstream.call("DescribeCollection", milvus_pb2.DescribeCollectionRequest(
            db_name=db, collection_name=name), milvus_pb2.DescribeCollectionResponse, md)
        check(described.status)
        fields = {f.name: f for f in described.schema.fields}
        if field_name not in fields:
            raise invalid(f"field_name: collection {name!r} has no field {field_name!r}; fields are {sorted(fields)}")
        vector_field = fields[field_name]
        if vector_field.data_type != mc.FLOAT_VECTOR:
            raise invalid(f"index_type {spec.index_type}: field {field_name!r} is "
                          f"{schema_pb2.DataType.Name(vector_field.data_type)}; SCANN indexes FLOAT_VECTOR fields")
        if spec.metric is None:
            raise invalid(f"metric_type: missing for field {field_name!r}; SCANN needs one of {', '.join(METRICS)}")
        dim = int(t.pairs(vector_field.type_params).get("dim", 0))
        try:
            IndexParams.from_milvus(dim, {"index_type": INDEX_TYPE, "metric_type": spec.metric, "params": spec.params})
        except (ValueError, TypeError) as e:
            raise invalid(f"invalid SCANN index params for field {field_name!r}: {e}") from e
        pk = next(f for f in described.schema.fields if f.is_primary_key)
        if pk.data_type not in mc.PRIMARY_KEY_TYPES:
            raise invalid(f"primary key {pk.name!r} must be INT64 or VARCHAR for SCANN")
        collection = self._collection(db, name, create=True)
        assert collection is not None
        with collection.lock:
            existing = collection.fields.get(field_name)
            if existing is not None:
                if (existing.record.metric, existing.record.params) == (spec.metric, spec.params):
                    return common_pb2.Status()  # Milvus answers a repeated identical create with success
                raise invalid(f"at most one distinct index is allowed per field: {field_name!r} already has SCANN "
                              f"{existing.record.metric} {existing.record.params}; drop it first")
            upstream_index = milvus_pb2.CreateIndexRequest(
                db_name=db, collection_name=name, field_name=field_name, index_name=request.index_name,
                extra_params=[common_pb2.KeyValuePair(key="index_type", value=UPSTREAM_INDEX_TYPE),
                              common_pb2.KeyValuePair(key="metric_type", value=spec.metric),
                              common_pb2.KeyValuePair(key="params", value="{}")])
            check(self.upstream.call("CreateIndex", upstream_index, common_pb2.Status, md))
            index_name = request.index_name or self._upstream_index_name(db, name, field_name, md)
            rec = FieldRecord(f"front_{secrets.token_hex(8)}", db, name, field_name, index_name, spec.metric, dim,
                              spec.params, pk.name, pk.data_type)
            self.store.add(rec)
            served = ServedField(rec)
            collection.fields[field_name] = served
            self.syncer.start_build(collection, served, md)
        log.info("%s.%s: SCANN %s %s; building", name, field_name, spec.metric, spec.params)
        return common_pb2.Status()

    def _upstream_index_name(self, db: str, collection: str, field_name: str, md: Metadata) -> str:
        reply = self.upstream.call("DescribeIndex", milvus_pb2.DescribeIndexRequest(
            db_name=db, collection_name=collection, field_name=field_name), milvus_pb2.DescribeIndexResponse, md)
        check(reply.status)
        return next((d.index_name for d in reply.index_descriptions if d.field_name == field_name), field_name)

    def _rows(self, served: ServedField) -> tuple[int, int]:
        """(indexed, total) rows, as Milvus reports its own builds."""
        if served.record.state == FINISHED:
            n = self.node.describe(served.record.node_name).num_rows
            return n, n
        return served.exported, served.total

    def describe_index(self, request: milvus_pb2.DescribeIndexRequest, md: Metadata) -> Message:
        reply = self.upstream.call("DescribeIndex", request, milvus_pb2.DescribeIndexResponse, md)
        collection = self._collection(_db(request, md), request.collection_name)
        if not is_ok(reply.status) or collection is None:
            return reply
        for d in reply.index_descriptions:
            served = collection.fields.get(d.field_name)
            if served is None:
                continue
            rec = served.record
            del d.params[:]
            d.params.extend([common_pb2.KeyValuePair(key="index_type", value=INDEX_TYPE),
                             common_pb2.KeyValuePair(key="metric_type", value=rec.metric),
                             common_pb2.KeyValuePair(key="params", value=json.dumps(rec.params))])
            d.indexed_rows, d.total_rows = self._rows(served)
            d.pending_index_rows = d.total_rows - d.indexed_rows
            d.state, d.index_state_fail_reason = _state(served), rec.error
        return reply

    def get_index_state(self, request: milvus_pb2.GetIndexStateRequest, md: Metadata) -> Message:
        reply = self.upstream.call("GetIndexState", request, milvus_pb2.GetIndexStateResponse, md)
        served = self._the_served_index(reply, request, md)
        if served is not None:
            reply.state, reply.fail_reason = _state(served), served.record.error
        return reply

    def get_index_build_progress(self, request: milvus_pb2.GetIndexBuildProgressRequest, md: Metadata) -> Message:
        reply = self.upstream.call("GetIndexBuildProgress", request, milvus_pb2.GetIndexBuildProgressResponse, md)
        served = self._the_served_index(reply, request, md)
        if served is not None:
            reply.indexed_rows, reply.total_rows = self._rows(served)
        return reply

    def _the_served_index(self, reply: Message, request: Message, md: Metadata) -> Any:
        """The one served index a state or progress request names, when the upstream answered it."""
        served = self._matching(self._collection(_db(request, md), request.collection_name), request.field_name,
                                request.index_name)
        return served[0] if is_ok(reply.status) and len(served) == 1 else None

    def drop_index(self, request: milvus_pb2.DropIndexRequest, md: Metadata) -> common_pb2.Status:
        collection = self._collection(_db(request, md), request.collection_name)
        status = self.upstream.call("DropIndex", request, common_pb2.Status, md)
        served = self._matching(collection, request.field_name, request.index_name)
        if is_ok(status) and collection is not None and served:
            with collection.lock:
                self._drop_served(collection, served)
        return status

    def drop_collection(self, request: milvus_pb2.DropCollectionRequest, md: Metadata) -> common_pb2.Status:
        collection = self._collection(_db(request, md), request.collection_name)
        status = self.upstream.call("DropCollection", request, common_pb2.Status, md)
        if is_ok(status) and collection is not None:
            with collection.lock:
                self._drop_served(collection, list(collection.fields.values()))
            with self._lock:
                self._collections.pop((collection.db, collection.name), None)
        return status

    def flush(self, request: milvus_pb2.FlushRequest, md: Metadata) -> Message:
        """Forwarded; then an index waiting for its collection's data is trained (see Syncer._export)."""
        reply = self.upstream.call("Flush", request, milvus_pb2.FlushResponse, md)
        if is_ok(reply.status):
            for name in request.collection_names:
                collection = self._collection(_db(request, md), name)
                for served in collection.fields.values() if collection is not None else ():
                    served.awaiting_rows = False  # InProgress until trained: the data is in
                    served.flushed.set()
        return reply

    def _load_state_changer(self, method: str) -> Callable[..., Message]:
        def forward(request: Any, md: Metadata) -> common_pb2.Status:
            status = self.upstream.call(method, request, common_pb2.Status, md)
            collection = self._collection(_db(request, md), request.collection_name)
            if method == "LoadCollection" and not is_ok(status) and collection is not None \
                    and collection.loaded_by_front:
                status = self._load_again(collection, request, md)
            if collection is not None:
                collection.loaded = False  # asked again (GetLoadState) at the next search
                collection.loaded_by_front = False  # the client's load state from here on
            return status
        return forward

    def _load_again(self, collection: CollectionState, request: milvus_pb2.LoadCollectionRequest,
                    md: Metadata) -> common_pb2.Status:
        """The front loaded the collection itself to export a SCANN field, before the client
        created its other indexes; Milvus 2.3 then refuses the client's load ("can't change the
        index for loaded collection"). Once no export needs the collection, it is released and
        loaded again with every index. Keyed on the front's own load, not on Milvus's words; a
        load refused again for its own reasons gets that refusal, and the front's load back."""
        md_db = with_db(md, collection.db)
        with collection.upstream_load:
            check(self.upstream.call("ReleaseCollection", milvus_pb2.ReleaseCollectionRequest(
                db_name=collection.db, collection_name=collection.name), common_pb2.Status, md_db))
            status = self.upstream.call("LoadCollection", request, common_pb2.Status, md)
            if not is_ok(status):  # refused for its own reasons: the front's load comes back
                self.upstream.call("LoadCollection", milvus_pb2.LoadCollectionRequest(
                    db_name=collection.db, collection_name=collection.name), common_pb2.Status, md_db)
            return status

    def _require_loaded(self, collection: CollectionState, md: Metadata) -> None:
        """Milvus refuses to search a released collection; so does the front, though the index could answer."""
        if collection.loaded:
            return
        reply = self.upstream.call("GetLoadState", milvus_pb2.GetLoadStateRequest(
            db_name=collection.db, collection_name=collection.name), milvus_pb2.GetLoadStateResponse,
            with_db(md, collection.db))
        check(reply.status)
        # Only "loaded" is remembered: a collection still loading is asked again next time.
        collection.loaded = reply.state == common_pb2.LoadState.LoadStateLoaded
        if not collection.loaded:
            raise MilvusError(COLLECTION_NOT_LOADED, f"collection not loaded[collection={collection.name}]; "
                                                     "call load_collection first")

    # --- writes -----------------------------------------------------------------------
    def insert(self, request: milvus_pb2.InsertRequest, md: Metadata) -> Message:
        return self._write("Insert", request, md)

    def upsert(self, request: milvus_pb2.UpsertRequest, md: Metadata) -> Message:
        return self._write("Upsert", request, md)

    def _write(self, method: str, request: Any, md: Metadata) -> Message:
        collection = self._collection(_db(request, md), request.collection_name)
        if collection is None or not collection.fields:
            return self._forward_write(method, request, md)
        with collection.lock:  # held until applied: the index sees writes in the upstream's order
            reply = self.upstream.call(method, request, milvus_pb2.MutationResult, md)
            if is_ok(reply.status):
                self.writes.saw(reply.timestamp)
                keys = t.keys_of(reply.IDs)
                vectors = {}
                for served in collection.fields.values():
                    x = t.vector_column(request.fields_data, served.record.field, served.record.dim, len(keys))
                    if x is not None:
                        vectors[served.record.field] = x
                self.syncer.apply(collection, Write(keys, vectors))
        return reply

    def _forward_write(self, method: str, request: Any, md: Metadata) -> Message:
        """A write to a collection the front serves nothing of: forwarded, and its time kept."""
        reply = self.upstream.call(method, request, milvus_pb2.MutationResult, md)
        if is_ok(reply.status):
            self.writes.saw(reply.timestamp)
        return reply

    def delete(self, request: milvus_pb2.DeleteRequest, md: Metadata) -> Message:
        """Resolved to primary keys first, then those keys are deleted upstream and from the index.

        Under the collection's lock no write through the front interleaves, and the upstream
        deletes exactly the resolved keys: a row inserted meanwhile by anyone, even matching
        the expression, is neither deleted upstream nor from the index, so both agree.
        """
        collection = self._collection(_db(request, md), request.collection_name)
        if collection is None or not collection.fields:
            return self._forward_write("Delete", request, md)
        rec = next(iter(collection.fields.values())).record
        partitions = [request.partition_name] if request.partition_name else []
        with collection.lock:
            keys = primary_keys(self.upstream, rec, request.expr, md, partitions, request, self.writes.session_ts())
            result = milvus_pb2.MutationResult(status=common_pb2.Status(), IDs=t.ids_proto(keys, rec.pk_type))
            for start in range(0, len(keys), DELETE_BATCH):
                forwarded = milvus_pb2.DeleteRequest()
                forwarded.CopyFrom(request)
                forwarded.expr = t.pk_in(rec.pk_field, keys[start:start + DELETE_BATCH])
                forwarded.expr_template_values.clear()
                reply = self.upstream.call("Delete", forwarded, milvus_pb2.MutationResult, md)
                if not is_ok(reply.status):
                    # Earlier batches are deleted upstream: apply them so that the index agrees.
                    self.syncer.apply(collection, Write(keys[:start]))
                    return reply
                result.delete_cnt += reply.delete_cnt
                result.timestamp = max(result.timestamp, reply.timestamp)
                self.writes.saw(reply.timestamp)
            if keys:
                self.syncer.apply(collection, Write(keys))
        return result

    # --- search -----------------------------------------------------------------------
    def _searched_field(self, request: milvus_pb2.SearchRequest, spec: t.SearchSpec,
                        collection: CollectionState | None) -> ServedField | None:
        """The served field this search is for, or None to hand the search to the upstream."""
        if collection is None or spec.upstream_only or request.HasField("ids") or request.sub_reqs \
                or request.search_by_primary_keys or request.HasField("function_score") or request.function_chains:
            return None
        if spec.anns_field:
            served = collection.fields.get(spec.anns_field)
        else:
            served = next(iter(collection.fields.values())) if len(collection.fields) == 1 else None
        # An index still building (or failed) is searched upstream meanwhile: exact, on its FLAT index.
        return served if served is not None and served.record.state == FINISHED else None

    def search(self, request: milvus_pb2.SearchRequest, md: Metadata) -> Message:
        if not (request.placeholder_group or request.HasField("ids") or request.sub_reqs):
            # Milvus 2.3.5's process dies on such a request (seen here): it is never forwarded.
            raise invalid("placeholder_group: the search holds no query vectors; send them through data=")
        collection = self._collection(_db(request, md), request.collection_name)
        if collection is None or not collection.fields:
            return self.upstream.call("Search", request, milvus_pb2.SearchResults, md)
        spec = t.search_spec(request)
        served = self._searched_field(request, spec, collection)
        hits = None if served is None else self._served_hits(collection, served, request, spec, md)
        if served is None or hits is None:
            return self.upstream.call("Search", request, milvus_pb2.SearchResults, md)
        rec = served.record
        columns = self._output_columns(rec, request, hits, md) if request.output_fields else []
        return t.search_results(rec.collection, hits, spec.limit, rec.pk_type, self._pk_name(rec, md), columns)

    def _served_hits(self, collection: CollectionState, served: ServedField, request: milvus_pb2.SearchRequest,
                     spec: t.SearchSpec, md: Metadata) -> t.Hits | None:
        """A search of a served field answered by the node; None when the upstream should answer
        it (a filter new at this version of the collection)."""
        rec = served.record
        self._require_loaded(collection, md)
        try:
            mc.check_metric(rec.metric, spec.metric)
            options = mc.scann_search_options(spec.params, spec.limit, served.nlist)
        except (ValueError, TypeError) as e:
            raise invalid(f"search on SCANN field {rec.field!r}: {e}") from e
        k = spec.limit + spec.offset
        if "reorder_k" in options:
            options["reorder_k"] = max(options["reorder_k"], k)  # the offset's rows are re-ranked too
        x = t.queries(request.placeholder_group, rec.dim, request.nq)
        allowed = None
        if request.dsl or request.partition_names:
            allowed = self._allowed(collection, served, request, md)
            if allowed is None:  # a filter new at this version: the upstream's exact search is cheaper
                return None
        if allowed is not None and not allowed.size:
            ids, scores = np.full((len(x), k), -1, np.int64), np.zeros((len(x), k), np.float32)
        else:
            ids, scores = self.node.search(rec.node_name, x, k, options, allowed_ids=allowed)
        return self._hits(rec, ids[:, spec.offset:], scores[:, spec.offset:], spec.round_decimal)

    def hybrid_search(self, request: milvus_pb2.HybridSearchRequest, md: Metadata) -> Message:
        """Each search served by the node or (other fields) by the upstream, then fused here
        with the request's ranker, as Milvus 2.6 fuses them; output fields fetched after."""
        db = _db(request, md)
        collection = self._collection(db, request.collection_name)
        if collection is None or not collection.fields or request.HasField("function_score") \
                or request.function_chains or t.UPSTREAM_RANK_KEYS & t.pairs(request.rank_params).keys():
            return self.upstream.call("HybridSearch", request, milvus_pb2.SearchResults, md)
        searches = [_part_of(request, sub, db) for sub in request.requests]
        specs = [dataclasses.replace(t.search_spec(s), offset=0, round_decimal=-1) for s in searches]
        fields = [self._searched_field(s, spec, collection) for s, spec in zip(searches, specs)]
        if not any(fields):
            return self.upstream.call("HybridSearch", request, milvus_pb2.SearchResults, md)
        if len(searches) > t.MAX_SUB_REQUESTS:
            raise invalid(f"requests: {len(searches)} searches; at most {t.MAX_SUB_REQUESTS} are allowed")
        if len({s.nq for s in searches}) > 1:
            raise invalid("sub search request nq should be the same; send the same number of query vectors to each")
        rank = t.ranker(request.rank_params, len(searches))
        parts = []
        for search, spec, served in zip(searches, specs, fields):
            hits = None if served is None else self._served_hits(collection, served, search, spec, md)
            if hits is None:
                reply = self.upstream.call("Search", search, milvus_pb2.SearchResults, md)
                check(reply.status)
                hits = t.hits_of(reply.results)
            metric = served.record.metric if served is not None else spec.metric
            if metric is None and rank.strategy == "weighted":
                metric = self._index_metric(db, request.collection_name, spec.anns_field, md)
            parts.append((hits, metric or ""))
        rec = next(f.record for f in fields if f is not None)
        fused = t.fuse(rank, parts)
        columns = self._output_columns(rec, request, fused, md) if request.output_fields else []
        return t.search_results(rec.collection, fused, rank.limit, rec.pk_type, self._pk_name(rec, md), columns)

    def _pk_name(self, rec: FieldRecord, md: Metadata) -> str:
        """The primary key's name for search results, where the upstream's own results carry it."""
        return rec.pk_field if self.upstream.names_primary_key(md) else ""

    def _index_metric(self, db: str, collection: str, field_name: str, md: Metadata) -> str:
        """The metric of a field's upstream index (a search that names none is scored by it)."""
        reply = self.upstream.call("DescribeIndex", milvus_pb2.DescribeIndexRequest(
            db_name=db, collection_name=collection, field_name=field_name), milvus_pb2.DescribeIndexResponse, md)
        check(reply.status)
        for d in reply.index_descriptions:
            if d.field_name == field_name or not field_name:
                return t.pairs(d.params).get("metric_type", "").upper()
        raise invalid(f"anns_field: no index on field {field_name!r} of {collection!r}; create one first")

    def _allowed(self, collection: CollectionState, served: ServedField, request: milvus_pb2.SearchRequest,
                 md: Metadata) -> np.ndarray | None:
        rec = served.record
        template = tuple(sorted((k, v.SerializeToString(deterministic=True))
                                for k, v in request.expr_template_values.items()))

        def resolve() -> np.ndarray:
            keys = primary_keys(self.upstream, rec, request.dsl, md, request.partition_names, request,
                                self.writes.session_ts())
            ids = self.store.ids(rec.node_name, keys, assign=False)
            return np.unique(ids[ids >= 0])

        key = (rec.node_name, request.dsl, tuple(request.partition_names), template)
        return self.filters.allowed(collection, key, resolve)

    def _hits(self, rec: FieldRecord, ids: np.ndarray, scores: np.ndarray, round_decimal: int) -> t.Hits:
        keys_of = self.store.keys(rec.node_name, ids[ids >= 0].tolist())
        hits = t.Hits([], [])
        for row_ids, row_scores in zip(ids.tolist(), scores.tolist()):
            row = [(keys_of[i], s) for i, s in zip(row_ids, row_scores) if i >= 0 and i in keys_of]
            hits.keys.append([key for key, _ in row])
            hits.scores.append([t.round_score(s, round_decimal) for _, s in row])
        return hits

    def _output_columns(self, rec: FieldRecord, request: milvus_pb2.SearchRequest | milvus_pb2.HybridSearchRequest,
                        hits: t.Hits, md: Metadata) -> list[schema_pb2.FieldData]:
        """The output fields of every hit, fetched from the upstream by primary key, in hit order.

        A hit whose row is gone upstream (deleted by a writer that bypassed the front) is dropped.
        """
        unique = list(dict.fromkeys(k for row in hits.keys for k in row))
        if not unique:
            return []
        reply = query(self.upstream, rec.db, rec.collection, t.pk_in(rec.pk_field, unique),
                      list(request.output_fields), md, after=self.writes.session_ts())
        pk_column = next(c for c in reply.fields_data if c.field_name == rec.pk_field)
        position = {k: i for i, k in enumerate(t.column_values(pk_column))}
        for r, row in enumerate(hits.keys):
            kept = [i for i, k in enumerate(row) if k in position]
            hits.keys[r] = [row[i] for i in kept]
            hits.scores[r] = [hits.scores[r][i] for i in kept]
        rows = [position[k] for row in hits.keys for k in row]
        wanted = set(request.output_fields)
        return [t.take_rows(c, rows) for c in reply.fields_data
                if c.field_name != rec.pk_field or rec.pk_field in wanted or "*" in wanted]

