"""Keeping each served field's node index equal to the upstream field: one export to build
it, then every write that passes through the front, in the order the upstream acknowledged.

Ordering: writes to a collection are serialized by the collection's lock, held from the
forwarded call until the write is applied to the index, so the index sees them in the
upstream's order. A build does not hold the lock while it exports: writes acknowledged
meanwhile are queued and replayed when the index is ready. Replaying one that the export
already saw is harmless, as every write is an upsert of absolute values or a delete of
keys, so the result is the export's state with every later write applied in order.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from ...node import IndexNode
from ...node.store import FAILED as NODE_FAILED
from ...node.store import IN_PROGRESS as NODE_IN_PROGRESS
from ...params import INDEX_TYPE, IndexParams
from ..conventions import vector_digest
from . import translate as t
from .errors import check
from .proxy import Metadata, Upstream
from .store import FAILED, FINISHED, FieldRecord, FrontStore

log = logging.getLogger(__name__)

EXPORT_BATCH = 2000  # rows per export query: 6 MiB of 768-d vectors, well under gRPC's message cap
FILTER_CACHE_ENTRIES = 64
_BUILD_POLL_S = 0.2
SETTLE_S = 30.0  # an index created before its data is trained this long after the last write, or at a Flush


@dataclass
class Write:
    """An acknowledged write: keys to delete, or keys to upsert with each served field's vectors."""

    keys: list[Any]
    vectors: dict[str, np.ndarray] | None = None  # None: a delete


@dataclass
class ServedField:
    record: FieldRecord
    exported: int = 0
    total: int = 0
    pending: list[Write] | None = None  # while building: writes to replay when the index is ready
    awaiting_rows: bool = False  # created on an empty collection: nothing to index yet, as Milvus reports it
    flushed: threading.Event = field(default_factory=threading.Event)  # a Flush through the front: data is in

    @functools.cached_property
    def nlist(self) -> int:
        rec = self.record
        return IndexParams.from_milvus(rec.dim, {"metric_type": rec.metric, "params": rec.params}).nlist


@dataclass
class CollectionState:
    db: str
    name: str
    fields: dict[str, ServedField] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)  # serializes writes
    upstream_load: threading.Lock = field(default_factory=threading.Lock)  # held while an export needs it loaded
    version: int = 0  # bumped by every write; filter results are cached per version
    loaded: bool = False  # known loaded upstream; a load or release through the front makes it unknown again
    loaded_by_front: bool = False  # the front loaded it for an export; no client has loaded or released it since


class WriteClock:
    """The upstream's timestamp of the newest write acknowledged through the front, to any
    collection. Milvus's timestamps are global, so a read at Session consistency after it
    sees every write the front acknowledged, without Strong's wait for the newest timestamp."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._newest = 0

    def saw(self, timestamp: int) -> None:
        with self._lock:
            self._newest = max(self._newest, timestamp)

    def session_ts(self) -> int | None:
        """What the front's reads must see; None (read Strong) until a write since start."""
        return self._newest or None


def query(upstream: Upstream, db: str, collection: str, expr: str, output_fields: Sequence[str],
          metadata: Metadata, partitions: Sequence[str] = (),
          template: milvus_pb2.SearchRequest | milvus_pb2.DeleteRequest | None = None,
          after: int | None = None) -> milvus_pb2.QueryResults:
    """A query that sees every write the upstream acknowledged before it (Strong), or, given
    `after` (an upstream timestamp), every write up to then (Session): Strong waits for the
    upstream's newest timestamp to become visible, about 200 ms on Milvus 2.3, where Session
    waits only for what it names, usually already visible."""
    level = common_pb2.ConsistencyLevel.Strong if after is None else common_pb2.ConsistencyLevel.Session
    request = milvus_pb2.QueryRequest(db_name=db, collection_name=collection, expr=expr,
                                      output_fields=list(output_fields), partition_names=list(partitions),
                                      consistency_level=level, use_default_consistency=False,
                                      guarantee_timestamp=after or 0)
    if template is not None:
        for key, value in template.expr_template_values.items():
            request.expr_template_values[key].CopyFrom(value)
    reply = upstream.call("Query", request, milvus_pb2.QueryResults, with_db(metadata, db))
    check(reply.status)
    return reply


def with_db(metadata: Metadata, db: str) -> Metadata:
    """The metadata naming the database: Milvus 2.3 reads it from the `dbname` header, not the request."""
    return tuple((k, v) for k, v in metadata if k != "dbname") + (("dbname", db),)


def primary_keys(upstream: Upstream, record: FieldRecord, expr: str, metadata: Metadata,
                 partitions: Sequence[str] = (), template: Any = None, after: int | None = None) -> list[Any]:
    reply = query(upstream, record.db, record.collection, expr or t.all_rows(record.pk_field), [record.pk_field],
                  metadata, partitions, template, after)
    column = next((c for c in reply.fields_data if c.field_name == record.pk_field), None)
    return t.column_values(column) if column is not None else []


class Stopping(Exception):
    """The front is stopping: a build in progress stays InProgress and starts again at the next start."""


class Syncer:
    """Builds served fields on the node and applies writes to them."""

    def __init__(self, upstream: Upstream, node: IndexNode, store: FrontStore) -> None:
        self.upstream, self.node, self.store = upstream, node, store
        self._stopping = threading.Event()
        self._builds: list[threading.Thread] = []

    # --- build ------------------------------------------------------------------------
    def start_build(self, collection: CollectionState, served: ServedField, metadata: Metadata) -> None:
        served.pending, served.exported, served.total = [], 0, 0
        thread = threading.Thread(target=self._build, args=(collection, served, metadata), daemon=True,
                                  name=f"build-{served.record.node_name}")
        self._builds.append(thread)
        thread.start()

    def stop(self) -> None:
        """Stops the builds between two steps and waits for them."""
        self._stopping.set()
        for thread in self._builds:
            thread.join()

    def _step(self) -> None:
        if self._stopping.is_set():
            raise Stopping

    def _build(self, collection: CollectionState, served: ServedField, metadata: Metadata) -> None:
        rec = served.record
        try:
            vectors, ids = self._export(collection, served, metadata)
            if rec.node_name in self.node.names():  # an interrupted build's leftover
                self.node.drop(rec.node_name)
            self.node.create(rec.node_name, INDEX_TYPE, rec.metric, rec.dim,
                             {k: str(v) for k, v in rec.params.items()}, vectors, ids)
            while (state := self.node.describe(rec.node_name)).state == NODE_IN_PROGRESS:
                self._step()
                time.sleep(_BUILD_POLL_S)
            if state.state == NODE_FAILED:
                raise RuntimeError(state.error)
            self._step()
            self.node.load(rec.node_name)
            self.store.set_digests(rec.node_name, ids.tolist(), [vector_digest(v) for v in vectors])
            with collection.lock:
                for write in served.pending or ():
                    self.apply_to(served, write)
                served.pending = None
                self.store.set_state(rec.node_name, FINISHED)
                rec.state = FINISHED
                collection.version += 1
            log.info("%s.%s: SCANN index built, %d rows", rec.collection, rec.field, len(ids))
        except Stopping:
            log.info("%s.%s: build stopped with the front; it starts again at the next start", rec.collection,
                     rec.field)
        except Exception as e:  # noqa: BLE001 - the build's failure is the index's state, reported by DescribeIndex
            log.exception("%s.%s: SCANN build failed", rec.collection, rec.field)
            with collection.lock:
                served.pending = None
                self.fail(served, f"SCANN build failed: {e}")

    def _load_upstream(self, collection: CollectionState, rec: FieldRecord, metadata: Metadata) -> None:
        """The export reads through Query, which needs the collection loaded; it stays loaded.
        A collection already loaded is left as it is: a waiting index asks at every check."""
        metadata = with_db(metadata, rec.db)
        state = self.upstream.call("GetLoadState", milvus_pb2.GetLoadStateRequest(
            db_name=rec.db, collection_name=rec.collection), milvus_pb2.GetLoadStateResponse, metadata)
        check(state.status)
        if state.state == common_pb2.LoadState.LoadStateLoaded:
            return
        if state.state != common_pb2.LoadState.LoadStateLoading:  # a client's load is awaited, not redone
            check(self.upstream.call("LoadCollection", milvus_pb2.LoadCollectionRequest(
                db_name=rec.db, collection_name=rec.collection), common_pb2.Status, metadata))
            collection.loaded_by_front = True
        while True:
            reply = self.upstream.call("GetLoadingProgress", milvus_pb2.GetLoadingProgressRequest(
                db_name=rec.db, collection_name=rec.collection), milvus_pb2.GetLoadingProgressResponse, metadata)
            check(reply.status)
            if reply.progress >= 100:
                return
            self._step()
            time.sleep(_BUILD_POLL_S)

    def _export(self, collection: CollectionState, served: ServedField,
                metadata: Metadata) -> tuple[np.ndarray, np.ndarray]:
        """Every row's vector, read once (Strong) in batches of primary keys; progress in served.exported.

        Milvus lets an index be created before the data (VectorDBBench does so); SCANN trains on
        the data, so such an index waits: it is trained at the first Flush through the front, or
        SETTLE_S after the last write (writes that bypass the front are seen at that check).
        Meanwhile searches go to the upstream, and writes are not kept: the export reads them.
        """
        rec = served.record
        while True:
            served.flushed.clear()
            with collection.upstream_load:  # Query needs the collection loaded until the export ends
                self._load_upstream(collection, rec, metadata)
                with collection.lock:
                    served.pending = []  # a write acknowledged from here on is replayed after the build
                    version = collection.version
                keys = sorted(primary_keys(self.upstream, rec, "", metadata))
                served.awaiting_rows = not keys
                if keys:
                    return self._read_rows(served, keys, metadata)
            with collection.lock:
                served.pending = None
            log.debug("%s.%s: no rows yet; the index is trained at a Flush or %.0f s after the last write",
                      rec.collection, rec.field, SETTLE_S)
            quiet_since = time.monotonic()
            while not served.flushed.wait(_BUILD_POLL_S):
                self._step()
                if collection.version != version:
                    version, quiet_since = collection.version, time.monotonic()
                elif time.monotonic() - quiet_since > SETTLE_S:
                    break

    def _read_rows(self, served: ServedField, keys: list[Any], metadata: Metadata) -> tuple[np.ndarray, np.ndarray]:
        rec = served.record
        served.total = len(keys)
        vectors = np.empty((len(keys), rec.dim), np.float32)
        found = np.zeros(len(keys), bool)
        for start in range(0, len(keys), EXPORT_BATCH):
            self._step()
            batch = keys[start:start + EXPORT_BATCH]
            reply = query(self.upstream, rec.db, rec.collection, t.pk_in(rec.pk_field, batch),
                          [rec.pk_field, rec.field], metadata)
            pks = t.column_values(next(c for c in reply.fields_data if c.field_name == rec.pk_field))
            x = t.vector_column(reply.fields_data, rec.field, rec.dim, len(pks))
            if x is None:
                raise ValueError(f"the upstream returned no {rec.dim}-d vectors for field {rec.field!r}")
            position = {k: start + i for i, k in enumerate(batch)}
            rows = np.fromiter((position[k] for k in pks), np.int64, len(pks))
            vectors[rows], found[rows] = x, True
            served.exported += len(pks)
        kept = [k for k, f in zip(keys, found) if f]  # rows deleted during the export are gone
        return vectors[found], self.store.ids(rec.node_name, kept, assign=True)

    # --- writes -----------------------------------------------------------------------
    def apply(self, collection: CollectionState, write: Write) -> None:
        """Applies an acknowledged write to every served field; the caller holds collection.lock."""
        collection.version += 1
        for served in collection.fields.values():
            if served.pending is not None:
                served.pending.append(write)
            elif served.record.state == FINISHED:
                try:
                    self.apply_to(served, write)
                except Exception as e:  # noqa: BLE001 - the upstream has the write; the index cannot follow
                    log.exception("%s.%s: write not applied", served.record.collection, served.record.field)
                    self.fail(served, f"a write could not be applied to the SCANN index ({e}); "
                                      "drop the index and create it again")

    def apply_to(self, served: ServedField, write: Write) -> None:
        """One field's part of a write: the node first, then the digests that record what it holds."""
        rec = served.record
        if write.vectors is None:
            ids = self.store.ids(rec.node_name, write.keys, assign=False)
            ids = np.unique(ids[ids >= 0])
            if ids.size:
                ids = ids[self.node.contains(rec.node_name, ids)]
            if ids.size:
                self.node.delete(rec.node_name, ids)
                self.store.set_digests(rec.node_name, ids.tolist(), [None] * ids.size)
            return
        x = write.vectors.get(rec.field)
        if x is None:  # a partial upsert that leaves this field's vectors as they are
            return
        ids = self.store.ids(rec.node_name, write.keys, assign=True)
        # A key repeated in one write: the last row wins, as in Milvus.
        last = len(ids) - 1 - np.unique(ids[::-1], return_index=True)[1]
        step = self.node.limits.max_insert_rows
        for b in range(0, len(last), step):
            rows = last[b:b + step]
            self.node.insert(rec.node_name, x[rows], ids[rows], upsert=True)
            self.store.set_digests(rec.node_name, ids[rows].tolist(), [vector_digest(v) for v in x[rows]])

    def fail(self, served: ServedField, reason: str) -> None:
        served.record.state, served.record.error = FAILED, reason
        self.store.set_state(served.record.node_name, FAILED, reason)


class FilterCache:
    """Filter expressions resolved to sorted index ids, per collection version (any write invalidates).

    A filter is resolved (one upstream query of its primary keys) only when it repeats at the
    same version; the first time, the search goes to the upstream. Measured on
    debian-mpnet-768 (`python -m anisoscan.bench front`, bench/results/front): resolving a new
    filter costs more than the upstream's own exact search (8.5 against 7.8 ms per search with
    0.1% of the rows passing, 50 against 8.6 ms with 20%), while a resolved one makes the scan
    faster than the upstream at every selectivity measured (2.2 to 6.6 ms against 5.8 to 8.6).
    """

    def __init__(self, entries: int = FILTER_CACHE_ENTRIES) -> None:
        self._entries: OrderedDict[tuple, tuple[int, np.ndarray | None]] = OrderedDict()  # None: seen once
        self._size = entries
        self._lock = threading.Lock()

    def allowed(self, collection: CollectionState, key: tuple,
                resolve: Callable[[], np.ndarray]) -> np.ndarray | None:
        """The ids passing filter `key`, or None: search upstream (the filter is new at this version)."""
        version = collection.version  # read before resolving: a write meanwhile makes the entry stale
        with self._lock:
            hit = self._entries.get(key)
            if hit is None or hit[0] != version:
                self._remember(key, (version, None))
                return None
            if hit[1] is not None:
                self._entries.move_to_end(key)
                return hit[1]
        ids = resolve()
        with self._lock:
            self._remember(key, (version, ids))
        return ids

    def _remember(self, key: tuple, entry: tuple[int, np.ndarray | None]) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
