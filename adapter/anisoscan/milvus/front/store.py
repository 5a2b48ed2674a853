"""The front's own durable state (SQLite, `<data-dir>/front.db`): which fields it serves, and
each field's primary key <-> index id map.

The node's ids are non-negative int64s (-1 pads missing results), while Milvus keys are any
int64 (negatives included) or varchar. Each field therefore gives its keys sequential ids,
assigned once and kept across restarts; a deleted key keeps its id, so a re-insert reuses it.
The map is committed before the node logs a write that uses it, so a crash between the two
leaves at most an unused id, never a write whose key cannot be found. Since ids only grow and
are never reused, the id -> key direction, which every search result needs, is also held in
memory as a list indexed by id (read without the lock: it only grows, after each commit).

Each key also records the digest of the vector the index holds for it (NULL: not in the
index), written after the node applies a write. Reconciliation compares these with the
upstream's rows per key range; a crash between the node's write and the digest's shows up
there as a difference and is repaired.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

IN_PROGRESS, FINISHED, FAILED = "InProgress", "Finished", "Failed"
_CHUNK = 500  # keys per SQL statement, under SQLite's bound on host parameters

_SCHEMA = """
CREATE TABLE IF NOT EXISTS fields (
    node_name TEXT PRIMARY KEY, db TEXT NOT NULL, collection TEXT NOT NULL, field TEXT NOT NULL,
    index_name TEXT NOT NULL, metric TEXT NOT NULL, dim INTEGER NOT NULL, params TEXT NOT NULL,
    pk_field TEXT NOT NULL, pk_type INTEGER NOT NULL, state TEXT NOT NULL, error TEXT NOT NULL,
    next_id INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS keys (node_name TEXT NOT NULL, key NOT NULL, id INTEGER NOT NULL, digest INTEGER,
    PRIMARY KEY (node_name, key)) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS keys_by_id ON keys (node_name, id);
"""


@dataclass
class FieldRecord:
    """A vector field served by the front: where it is upstream, and its node index."""

    node_name: str
    db: str
    collection: str
    field: str
    index_name: str
    metric: str
    dim: int
    params: dict[str, Any]
    pk_field: str
    pk_type: int
    state: str = IN_PROGRESS
    error: str = ""
    next_id: int = field(default=0, repr=False)


class FrontStore:
    """Thread-safe; every change is one committed transaction (WAL, synchronous=FULL)."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "front.db"
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._key_of_id: dict[str, list[Any]] = {}  # node_name -> key at each id, loaded at first use

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- served fields ----------------------------------------------------------------
    def records(self) -> list[FieldRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM fields").fetchall()
        names = [f for f in FieldRecord.__dataclass_fields__]
        records = [FieldRecord(**dict(zip(names, row))) for row in rows]
        for r in records:
            r.params = json.loads(r.params)  # type: ignore[arg-type]
        return records

    def add(self, record: FieldRecord) -> None:
        values = asdict(record)
        values["params"] = json.dumps(record.params)
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.execute(f"INSERT INTO fields VALUES ({', '.join('?' * len(values))})", list(values.values()))

    def set_state(self, node_name: str, state: str, error: str = "") -> None:
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.execute("UPDATE fields SET state = ?, error = ? WHERE node_name = ?", (state, error, node_name))

    def remove(self, node_name: str) -> None:
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM keys WHERE node_name = ?", (node_name,))
            self._db.execute("DELETE FROM fields WHERE node_name = ?", (node_name,))
            self._key_of_id.pop(node_name, None)

    # --- key map ----------------------------------------------------------------------
    def ids(self, node_name: str, keys: Sequence[Any], assign: bool) -> np.ndarray:
        """The ids of `keys` in order; unknown keys get new ids when `assign`, else -1."""
        with self._lock:
            key_of_id = self._key_list(node_name) if assign else None
            with self._db:
                self._db.execute("BEGIN")
                known = self._lookup(node_name, keys)
                new = list(dict.fromkeys(k for k in keys if k not in known)) if assign else []
                if new:
                    (start,) = self._db.execute("SELECT next_id FROM fields WHERE node_name = ?",
                                                (node_name,)).fetchone()
                    assigned = dict(zip(new, range(start, start + len(new))))
                    self._db.executemany("INSERT INTO keys VALUES (?, ?, ?, NULL)",
                                         ((node_name, k, i) for k, i in assigned.items()))
                    self._db.execute("UPDATE fields SET next_id = ? WHERE node_name = ?",
                                     (start + len(new), node_name))
                    known.update(assigned)
            if key_of_id is not None:
                key_of_id.extend(new)  # committed: ids len(key_of_id).. are these keys
        return np.fromiter((known.get(k, -1) for k in keys), np.int64, len(keys))

    def keys(self, node_name: str, ids: Sequence[int]) -> dict[int, Any]:
        """id -> key of the given ids that have one."""
        key_of_id = self._key_of_id.get(node_name)
        if key_of_id is None:
            with self._lock:
                key_of_id = self._key_list(node_name)
        n = len(key_of_id)
        return {i: key_of_id[i] for i in ids if 0 <= i < n}

    def _key_list(self, node_name: str) -> list[Any]:
        """The in-memory id -> key list of a field; the caller holds the lock."""
        key_of_id = self._key_of_id.get(node_name)
        if key_of_id is None:
            rows = self._db.execute("SELECT id, key FROM keys WHERE node_name = ? ORDER BY id", (node_name,))
            key_of_id = []
            for expected, (i, key) in enumerate(rows):
                if i != expected:
                    raise RuntimeError(f"{self.path}: ids of {node_name} are not dense at {expected}")
                key_of_id.append(key)
            self._key_of_id[node_name] = key_of_id
        return key_of_id

    def set_digests(self, node_name: str, ids: Sequence[int], digests: Sequence[int | None]) -> None:
        """Records what the index now holds for these ids (None: nothing)."""
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.executemany("UPDATE keys SET digest = ? WHERE node_name = ? AND id = ?",
                                 ((d, node_name, int(i)) for i, d in zip(ids, digests)))

    def range_starts(self, node_name: str, rows: int) -> list[Any]:
        """Keys cutting the indexed keys, in order, into ranges of `rows` (the first range starts at -inf)."""
        with self._lock:
            return [k for (k,) in self._db.execute(
                "SELECT key FROM (SELECT key, ROW_NUMBER() OVER (ORDER BY key) AS n FROM keys "
                "WHERE node_name = ? AND digest IS NOT NULL) WHERE n % ? = 1 AND n > 1", (node_name, rows))]

    def range_rows(self, node_name: str, low: Any, high: Any) -> dict[Any, int]:
        """key -> digest of the indexed keys in [low, high) (None: unbounded)."""
        sql, args = "SELECT key, digest FROM keys WHERE node_name = ? AND digest IS NOT NULL", [node_name]
        if low is not None:
            sql, args = sql + " AND key >= ?", [*args, low]
        if high is not None:
            sql, args = sql + " AND key < ?", [*args, high]
        with self._lock:
            return dict(self._db.execute(sql, args).fetchall())

    def _lookup(self, node_name: str, keys: Sequence[Any]) -> dict[Any, int]:
        return self._select_in("SELECT key, id FROM keys WHERE node_name = ? AND key IN ({})", node_name, keys)

    def _select_in(self, sql: str, node_name: str, values: Sequence[Any]) -> dict[Any, Any]:
        """Two-column rows of `sql` for the distinct values, in chunks SQLite's parameter limit allows."""
        out: dict[Any, Any] = {}
        unique = list(dict.fromkeys(values))
        for b in range(0, len(unique), _CHUNK):
            chunk = unique[b:b + _CHUNK]
            out.update(self._db.execute(sql.format(", ".join("?" * len(chunk))), (node_name, *chunk)).fetchall())
        return out
