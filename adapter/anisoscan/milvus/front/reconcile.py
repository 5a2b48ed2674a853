"""Catching writes that bypass the front, without re-reading the whole collection each round.

Milvus 2.3 has no change stream, so each served field is compared with the upstream per
key range. The ranges cut the indexed keys into runs of RANGE_ROWS (recomputed each round,
the first and last open-ended, so new keys anywhere fall in one). Each round:
- counts every range upstream (`count(*)` over a key-range expression: Milvus counts, no
  rows move) and in the key map; a range whose counts differ is re-read and repaired;
- re-reads DIGEST_RANGES_PER_ROUND more ranges, sweeping the key space in order, and compares
  the digests of their vectors, which catches what keeps counts equal (an upsert, or an
  insert and a delete in one range).
So inserts and deletes are caught within one interval, any change within one sweep:
ceil(ranges / DIGEST_RANGES_PER_ROUND) + 1 intervals (+1: repairs may move the boundaries).
A repair holds the collection's write lock while it re-reads its range, so no write through
the front interleaves with it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..conventions import vector_digest
from . import translate as t
from .store import FINISHED
from .sync import CollectionState, ServedField, Syncer, Write, query

log = logging.getLogger(__name__)

RANGE_ROWS = 5000
DIGEST_RANGES_PER_ROUND = 2


@dataclass
class Repair:
    deleted: int = 0
    upserted: int = 0


def range_expr(pk_field: str, low: Any, high: Any) -> str:
    parts = ([f"{pk_field} >= {t.literal(low)}"] if low is not None else []) + \
            ([f"{pk_field} < {t.literal(high)}"] if high is not None else [])
    return " and ".join(parts) or t.all_rows(pk_field)


class Reconciler:
    """Rounds over every finished served field; `round()` once, or `start(interval)` in the background."""

    def __init__(self, syncer: Syncer, collections: Callable[[], list[CollectionState]]) -> None:
        self.syncer = syncer
        self._collections = collections
        self._cursor: dict[str, Any] = {}  # per field: where the next digest checks start
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def round(self) -> Repair:
        total = Repair()
        for collection in self._collections():
            for served in list(collection.fields.values()):
                if served.record.state == FINISHED and served.pending is None:
                    repair = self._field(collection, served)
                    total.deleted, total.upserted = total.deleted + repair.deleted, total.upserted + repair.upserted
        return total

    def _field(self, collection: CollectionState, served: ServedField) -> Repair:
        rec, store, upstream = served.record, self.syncer.store, self.syncer.upstream
        starts = store.range_starts(rec.node_name, RANGE_ROWS)
        bounds = list(zip([None, *starts], [*starts, None]))
        due = self._due(rec.node_name, bounds)
        total = Repair()
        for i, (low, high) in enumerate(bounds):
            counted = query(upstream, rec.db, rec.collection, range_expr(rec.pk_field, low, high), ["count(*)"], ())
            upstream_rows = int(counted.fields_data[0].scalars.long_data.data[0])
            if i in due or upstream_rows != len(store.range_rows(rec.node_name, low, high)):
                repair = self._repair(collection, served, low, high)
                total.deleted, total.upserted = total.deleted + repair.deleted, total.upserted + repair.upserted
        return total

    def _due(self, node_name: str, bounds: list[tuple[Any, Any]]) -> set[int]:
        """The ranges whose digests this round checks: the next ones in key order after the last
        round's, so that a sweep covers every key even when repairs move the range boundaries."""
        cursor = self._cursor.get(node_name)
        first = 0 if cursor is None else next(i for i, (_, high) in enumerate(bounds) if high is None or high > cursor)
        due = range(first, min(first + DIGEST_RANGES_PER_ROUND, len(bounds)))
        self._cursor[node_name] = bounds[due[-1]][1]  # None after the last range: the next sweep starts over
        return set(due)

    def _repair(self, collection: CollectionState, served: ServedField, low: Any, high: Any) -> Repair:
        """Makes one key range of the index equal to the upstream's."""
        rec = served.record
        with collection.lock:
            reply = query(self.syncer.upstream, rec.db, rec.collection, range_expr(rec.pk_field, low, high),
                          [rec.pk_field, rec.field], ())
            pk_column = next((c for c in reply.fields_data if c.field_name == rec.pk_field), None)
            keys = t.column_values(pk_column) if pk_column is not None else []
            x = t.vector_column(reply.fields_data, rec.field, rec.dim, len(keys)) if keys else None
            upstream = {k: (row, vector_digest(x[row])) for row, k in enumerate(keys)} if x is not None else {}
            mine = self.syncer.store.range_rows(rec.node_name, low, high)
            stale = [k for k in mine if k not in upstream]
            changed = [k for k, (_, digest) in upstream.items() if mine.get(k) != digest]
            if stale:
                self.syncer.apply_to(served, Write(stale))
            if changed:
                rows = np.fromiter((upstream[k][0] for k in changed), np.int64, len(changed))
                self.syncer.apply_to(served, Write(changed, {rec.field: x[rows]}))
            if stale or changed:
                collection.version += 1
                log.info("%s.%s: reconciled keys [%r, %r): %d deleted, %d upserted", rec.collection, rec.field,
                         low, high, len(stale), len(changed))
        return Repair(len(stale), len(changed))

    def start(self, interval: float) -> None:
        def loop() -> None:
            while True:  # a first round at once: it repairs what a crash of the front left behind
                try:
                    self.round()
                except Exception as e:  # noqa: BLE001 - the next round retries (an upstream outage, say)
                    log.warning("reconciliation round failed: %s", e)
                if self._stop.wait(interval):
                    return

        self._thread = threading.Thread(target=loop, name="reconcile", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
