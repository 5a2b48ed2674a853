"""Attach an anisoscan index to a Milvus collection's vector field.

Milvus compiles its indexes in, so anisoscan runs beside it: `attach` exports the primary
keys and vectors, builds the index (in-process, or on a node through `Client`), and
`sync` keeps it in step with the collection. Searches take Milvus-shaped parameters and
filter expressions and return Milvus-shaped hits.

Primary keys (int64 or varchar) map to index ids through a stable 63-bit hash, so any key
works, negative integers included. Milvus has no change feed: `sync` compares the
collection with what the index holds (keys and a digest of each vector) and applies the
difference, so inserts, deletes and upserts made by any writer are picked up.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .. import _validation as v
from ..index import Index
from ..node.client import Client
from ..params import IndexParams
from .conventions import (
    FLOAT_VECTOR,
    PRIMARY_KEY_TYPES,
    SCANN_SEARCH_KEYS,
    check_metric,
    scann_search_options,
    vector_digest,
)

log = logging.getLogger(__name__)


def key_id(pk: Any) -> int:
    """The index id of a primary key: a stable 63-bit hash (non-negative, never -1)."""
    raw = (b"i" + int(pk).to_bytes(8, "little", signed=True)) if isinstance(pk, (int, np.integer)) \
        else b"s" + str(pk).encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little") >> 1


class Backend(Protocol):
    def add(self, vectors: np.ndarray, ids: np.ndarray, upsert: bool) -> None: ...
    def delete(self, ids: np.ndarray) -> None: ...
    def search(self, queries: np.ndarray, limit: int, options: dict[str, int],
               allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]: ...
    def __len__(self) -> int: ...


class LocalBackend:
    def __init__(self, index: Any) -> None:
        self.index = index

    def add(self, vectors, ids, upsert):
        (self.index.upsert if upsert else self.index.add)(vectors, ids)

    def delete(self, ids):
        self.index.delete(ids)

    def search(self, queries, limit, options, allowed):
        return self.index.search(queries, limit, allowed_ids=allowed, **options)

    def __len__(self):
        return len(self.index)


class RemoteBackend:
    def __init__(self, client: Client, name: str) -> None:
        self.client, self.name = client, name

    def add(self, vectors, ids, upsert):
        self.client.insert(self.name, vectors, ids, upsert=upsert)

    def delete(self, ids):
        self.client.delete(self.name, ids)

    def search(self, queries, limit, options, allowed):
        return self.client.search(self.name, queries, limit, options, allowed_ids=allowed)

    def __len__(self):
        return int(self.client.describe_index(self.name)["num_rows"])


@dataclass
class CollectionInfo:
    name: str
    pk_field: str
    pk_type: int
    anns_field: str
    dim: int
    fields: list[str]

    @classmethod
    def describe(cls, mc: Any, collection: str, anns_field: str) -> CollectionInfo:
        d = mc.describe_collection(collection)
        fields = {f["name"]: f for f in d["fields"]}
        pk = next(f for f in d["fields"] if f.get("is_primary"))
        if anns_field not in fields:
            raise ValueError(f"anns_field: collection {collection!r} has no field {anns_field!r}; "
                             f"fields are {sorted(fields)}")
        vec = fields[anns_field]
        if int(vec["type"]) != FLOAT_VECTOR:
            raise ValueError(f"anns_field: {anns_field!r} is not a FLOAT_VECTOR field")
        if int(pk["type"]) not in PRIMARY_KEY_TYPES:
            raise ValueError(f"primary key {pk['name']!r} must be INT64 or VARCHAR")
        return cls(collection, pk["name"], int(pk["type"]), anns_field, int(vec["params"]["dim"]), sorted(fields))


def _export(mc: Any, info: CollectionInfo, batch_size: int, progress: bool):
    """Yields (primary keys, vectors) batches of the whole collection, with a progress bar."""
    from tqdm import tqdm

    total = None
    try:
        total = int(mc.get_collection_stats(info.name).get("row_count", 0)) or None
    except Exception:  # noqa: BLE001 - the bar works without a total
        pass
    it = mc.query_iterator(info.name, batch_size=batch_size, output_fields=[info.pk_field, info.anns_field])
    with tqdm(total=total, desc=f"export {info.name}", unit="rows", disable=not progress, leave=False) as bar:
        try:
            while True:
                rows = it.next()
                if not rows:
                    break
                pks = [r[info.pk_field] for r in rows]
                vectors = np.asarray([r[info.anns_field] for r in rows], dtype=np.float32)
                bar.update(len(rows))
                yield pks, vectors
        finally:
            it.close()


class AttachedIndex:
    """An anisoscan index mirroring one vector field of a Milvus collection."""

    def __init__(self, mc: Any, info: CollectionInfo, params: IndexParams, backend: Backend,
                 keys: dict[int, Any], digests: dict[int, int], batch_size: int, progress: bool) -> None:
        self.mc, self.info, self.params, self.backend = mc, info, params, backend
        self._keys, self._digests = keys, digests
        self._batch_size, self._progress = batch_size, progress
        self._lock = threading.Lock()
        self._follower: threading.Thread | None = None
        self._stop = threading.Event()

    def __len__(self) -> int:
        return len(self._keys)

    # --- keeping in sync --------------------------------------------------------------
    def sync(self) -> dict[str, int]:
        """Applies what changed in the collection since the last sync: counts of each kind."""
        with self._lock:
            seen: set[int] = set()
            added = updated = 0
            for pks, vectors in _export(self.mc, self.info, self._batch_size, self._progress):
                ids = np.fromiter((key_id(pk) for pk in pks), np.int64, len(pks))
                new_rows, changed_rows = [], []
                for row, (pk, i) in enumerate(zip(pks, ids.tolist())):
                    seen.add(i)
                    digest = vector_digest(vectors[row])
                    old = self._digests.get(i)
                    if old is None:
                        new_rows.append(row)
                    elif old != digest:
                        changed_rows.append(row)
                    self._keys[i], self._digests[i] = pk, digest
                if new_rows:
                    self.backend.add(vectors[new_rows], ids[new_rows], upsert=False)
                if changed_rows:
                    self.backend.add(vectors[changed_rows], ids[changed_rows], upsert=True)
                added, updated = added + len(new_rows), updated + len(changed_rows)
            gone = np.fromiter((i for i in self._keys if i not in seen), np.int64)
            if gone.size:
                self.backend.delete(gone)
                for i in gone.tolist():
                    del self._keys[i], self._digests[i]
        counts = {"inserted": added, "updated": updated, "deleted": int(gone.size)}
        log.info("synced %s: %s", self.info.name, counts)
        return counts

    def follow(self, interval: float = 5.0) -> None:
        """Syncs in a background thread every `interval` seconds until stop()."""
        if self._follower and self._follower.is_alive():
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.sync()
                except Exception as e:  # noqa: BLE001 - keep following; the next round retries
                    log.warning("sync of %s failed: %s", self.info.name, e)

        self._follower = threading.Thread(target=loop, name=f"follow-{self.info.name}", daemon=True)
        self._follower.start()

    def stop(self) -> None:
        self._stop.set()
        if self._follower:
            self._follower.join()

    # --- searching --------------------------------------------------------------------
    def search(self, data: Any, limit: int = 10, search_params: dict[str, Any] | None = None, filter: str = "",
               output_fields: list[str] | None = None, anns_field: str | None = None) -> list[list[dict]]:
        """Milvus-shaped search: hits[i] is a list of {"id", "distance", "entity"}."""
        if anns_field not in (None, self.info.anns_field):
            raise ValueError(f"anns_field: this index serves {self.info.anns_field!r}, not {anns_field!r}")
        queries = v.as_vectors("data", data, self.info.dim)
        limit = v.positive_int("limit", limit, 1, 16384)
        options = self._search_options(search_params or {}, limit)
        unknown = sorted(set(output_fields or []) - set(self.info.fields) - {"*"})
        if unknown:
            raise ValueError(f"output_fields: field(s) {unknown} not in collection {self.info.name!r}; "
                             f"fields are {self.info.fields}")
        allowed = self._resolve_filter(filter) if filter else None
        ids, dist = self.backend.search(queries, limit, options, allowed)
        return self._hits(ids, dist, output_fields or [])

    def _search_options(self, search_params: dict[str, Any], limit: int) -> dict[str, int]:
        params = dict(search_params)
        check_metric(self.params.metric, params.pop("metric_type", None))
        nested = params.pop("params", {}) or {}
        merged = {**params, **nested}
        unknown = sorted(set(merged) - set(SCANN_SEARCH_KEYS))
        if unknown:
            raise ValueError(f"search_params: unknown key(s) {unknown}; SCANN takes nprobe and reorder_k")
        return scann_search_options(merged, limit, self.params.nlist)

    def _resolve_filter(self, expr: str) -> np.ndarray:
        """The index ids of the rows matching a Milvus boolean expression."""
        it = self.mc.query_iterator(self.info.name, batch_size=max(self._batch_size, 1000), filter=expr,
                                    output_fields=[self.info.pk_field])
        ids: list[int] = []
        try:
            while True:
                rows = it.next()
                if not rows:
                    break
                ids.extend(key_id(r[self.info.pk_field]) for r in rows)
        finally:
            it.close()
        return np.asarray(ids, dtype=np.int64)

    def _hits(self, ids: np.ndarray, dist: np.ndarray, output_fields: list[str]) -> list[list[dict]]:
        hits = [[{"id": self._keys.get(int(i)), "distance": float(d), "entity": {}}
                 for i, d in zip(row_ids, row_dist) if i >= 0 and int(i) in self._keys]
                for row_ids, row_dist in zip(ids, dist)]
        if output_fields:
            pks = list({h["id"] for row in hits for h in row})
            entities = {}
            for b in range(0, len(pks), 1000):
                for row in self.mc.get(self.info.name, ids=pks[b:b + 1000], output_fields=output_fields):
                    entities[row[self.info.pk_field]] = row
            for row in hits:
                for h in row:
                    e = entities.get(h["id"], {})
                    h["entity"] = {k: val for k, val in e.items() if k != self.info.pk_field or
                                   self.info.pk_field in output_fields}
        return hits


def attach(mc: Any, collection_name: str, anns_field: str = "vector", index_params: dict[str, Any] | None = None,
           node: Client | None = None, index_name: str | None = None, batch_size: int = 1000,
           progress: bool = True) -> AttachedIndex:
    """Exports the collection, builds the index on `node` (None: in this process) and returns it."""
    info = CollectionInfo.describe(mc, collection_name, anns_field)
    index_params = dict(index_params or {"index_type": "SCANN", "metric_type": "COSINE"})
    params = IndexParams.from_milvus(info.dim, index_params)
    keys: dict[int, Any] = {}
    digests: dict[int, int] = {}
    id_parts, vector_parts = [], []
    for pks, vectors in _export(mc, info, batch_size, progress):
        ids = np.fromiter((key_id(pk) for pk in pks), np.int64, len(pks))
        for pk, i, vec in zip(pks, ids.tolist(), vectors):
            keys[i], digests[i] = pk, vector_digest(vec)
        id_parts.append(ids)
        vector_parts.append(vectors)
    if not vector_parts:
        raise ValueError(f"collection {collection_name!r} is empty: insert data before attaching")
    ids = np.concatenate(id_parts)
    if len(keys) != len(ids):
        raise ValueError("primary keys: two keys hash to the same id or a key repeats; cannot attach")
    vectors = np.concatenate(vector_parts)
    if node is None:
        backend: Backend = LocalBackend(Index.from_params(params).build(vectors, ids))
    else:
        name = index_name or f"{collection_name}__{anns_field}"
        if name in node.list_indexes():
            node.drop_index(name)
        node.create_index(name, info.dim, index_params, vectors=vectors, ids=ids, wait=True)
        backend = RemoteBackend(node, name)
    log.info("attached %s.%s: %d rows", collection_name, anns_field, len(ids))
    return AttachedIndex(mc, info, params, backend, keys, digests, batch_size, progress)

