"""The front's own durable state (SQLite, `<data-dir>/front.db`): which fields it serves, and
each field's primary key <-> index id map.

The node's ids are non-negative int64s (-1 pads missing results), while Milvus keys are any
int64 (negatives included) or varchar. Each field therefore gives its keys sequential ids,
assigned once and kept across restarts; a deleted key keeps its id, so a re-insert reuses it.
The map is committed before the node logs a write that uses it, so a crash between the two
leaves at most an unused id, never a write whose key cannot be found.
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
CREATE TABLE IF NOT EXISTS keys (node_name TEXT NOT NULL, key NOT NULL, id INTEGER NOT NULL,
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

    # --- key map ----------------------------------------------------------------------
    def ids(self, node_name: str, keys: Sequence[Any], assign: bool) -> np.ndarray:
        """The ids of `keys` in order; unknown keys get new ids when `assign`, else -1."""
        with self._lock, self._db:
            self._db.execute("BEGIN")
            known = self._lookup(node_name, keys)
            if assign:
                new = list(dict.fromkeys(k for k in keys if k not in known))
                if new:
                    (start,) = self._db.execute("SELECT next_id FROM fields WHERE node_name = ?",
                                                (node_name,)).fetchone()
                    assigned = dict(zip(new, range(start, start + len(new))))
                    self._db.executemany("INSERT INTO keys VALUES (?, ?, ?)",
                                         ((node_name, k, i) for k, i in assigned.items()))
                    self._db.execute("UPDATE fields SET next_id = ? WHERE node_name = ?",
                                     (start + len(new), node_name))
                    known.update(assigned)
        return np.fromiter((known.get(k, -1) for k in keys), np.int64, len(keys))

    def keys(self, node_name: str, ids: Sequence[int]) -> dict[int, Any]:
        out: dict[int, Any] = {}
        unique = list(dict.fromkeys(int(i) for i in ids))
        with self._lock:
            for b in range(0, len(unique), _CHUNK):
                chunk = unique[b:b + _CHUNK]
                out.update(self._db.execute(
                    f"SELECT id, key FROM keys WHERE node_name = ? AND id IN ({', '.join('?' * len(chunk))})",
                    (node_name, *chunk)).fetchall())
        return out

    def _lookup(self, node_name: str, keys: Sequence[Any]) -> dict[Any, int]:
        found: dict[Any, int] = {}
        unique = list(dict.fromkeys(keys))
        for b in range(0, len(unique), _CHUNK):
            chunk = unique[b:b + _CHUNK]
            found.update(self._db.execute(
                f"SELECT key, id FROM keys WHERE node_name = ? AND key IN ({', '.join('?' * len(chunk))})",
                (node_name, *chunk)).fetchall())
        return found
