"""One index's durable state: a SQLite database (its metadata and its log) beside a snapshot file.

SQLite runs in WAL mode with synchronous=FULL: a commit returns once it is on disk, a torn
commit is ignored on recovery and the next commit overwrites it. Each log record also carries
a CRC-32 of its content and the records' sequence numbers must be contiguous, so a damaged
or missing record is an error naming the file and the record, never a silent skip. SQLite
itself stops replaying its -wal file at the first damaged frame and drops the rest quietly;
open() compares what SQLite kept with the commits the file holds, and fails loudly instead.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import faults
from .errors import ResourceExhausted, StorageError

DB_NAME = "index.db"
SCHEMA_VERSION = 1
INSERT, DELETE = 1, 2
IN_PROGRESS, FINISHED, FAILED = "InProgress", "Finished", "Failed"
_SQLITE_FULL = 13
_WAL_MAGIC = (0x377F0682, 0x377F0683)  # the low bit: checksums over big-endian words
_WAL_HEADER, _WAL_FRAME_HEADER = 32, 24
_SCHEMA = """
CREATE TABLE meta (id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT NOT NULL, index_type TEXT NOT NULL,
                   metric TEXT NOT NULL, dim INTEGER NOT NULL, state TEXT NOT NULL, error TEXT NOT NULL,
                   loaded INTEGER NOT NULL, snapshot_seq INTEGER NOT NULL, snapshot_file TEXT NOT NULL);
CREATE TABLE params (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE log (seq INTEGER PRIMARY KEY, kind INTEGER NOT NULL, upsert INTEGER NOT NULL, ids BLOB NOT NULL,
                  vectors BLOB, crc INTEGER NOT NULL);
"""
_META_FIELDS = "name, index_type, metric, dim, state, error, loaded, snapshot_seq, snapshot_file"


@dataclass
class Meta:
    name: str
    index_type: str
    metric: str
    dim: int
    params: dict[str, str] = field(default_factory=dict)
    state: str = IN_PROGRESS
    error: str = ""
    loaded: bool = True
    snapshot_seq: int = 0  # the last log record the snapshot holds
    snapshot_file: str = ""


@dataclass(frozen=True)
class Record:
    seq: int
    kind: int
    ids: np.ndarray
    vectors: np.ndarray | None = None
    upsert: bool = False

    def crc(self) -> int:
        crc = zlib.crc32(self.ids.tobytes(), zlib.crc32(struct.pack("<qB?", self.seq, self.kind, self.upsert)))
        return crc if self.vectors is None else zlib.crc32(self.vectors.tobytes(), crc)


@contextlib.contextmanager
def io_errors(path: Path, what: str) -> Iterator[None]:
    """Turns a full disk into ResourceExhausted and any other I/O error into StorageError."""
    try:
        yield
    except sqlite3.Error as e:
        if getattr(e, "sqlite_errorcode", None) == _SQLITE_FULL or "disk is full" in str(e):
            raise ResourceExhausted(f"{what}: the disk is full ({path}); nothing was changed") from e
        raise StorageError(f"{what}: {path}: {e}") from e
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ResourceExhausted(f"{what}: the disk is full ({path}); nothing was changed") from e
        raise StorageError(f"{what}: {path}: {e}") from e


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class IndexStore:
    """The database of one index directory. Not thread-safe: the node serializes calls per index."""

    def __init__(self, directory: Path, conn: sqlite3.Connection) -> None:
        self.directory = directory
        self.path = directory / DB_NAME
        self._conn = conn
        self.lost_transactions = 0

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    @classmethod
    def create(cls, directory: Path, meta: Meta) -> None:
        """Makes the directory and its database holding meta, durably; the caller renames it into place."""
        path = directory / DB_NAME
        with io_errors(path, "create"):
            directory.mkdir()
            conn = cls._connect(path)
            try:  # not yet visible under its final name: no transaction needed
                conn.executescript(_SCHEMA)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                conn.execute(f"INSERT INTO meta (id, {_META_FIELDS}) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             _meta_row(meta))
                conn.executemany("INSERT INTO params VALUES (?, ?)", sorted(meta.params.items()))
            finally:
                conn.close()  # checkpoints SQLite's WAL into the database file
            fsync_dir(directory)

    @classmethod
    def open(cls, directory: Path, salvage: bool = False) -> IndexStore:
        """Opens and checks an existing database; StorageError names the file and what is wrong.

        salvage: accept a damaged -wal file (what SQLite keeps of it) and count in lost_transactions
        the committed transactions SQLite drops, for salvage.py.
        """
        path = directory / DB_NAME
        if not path.is_file():
            raise StorageError(f"{path}: missing; the index's metadata and log are gone")
        with io_errors(path, "open"):
            commits = _wal_commit_frames(path.with_name(DB_NAME + "-wal"))  # before SQLite reads it
            conn = cls._connect(path)
            try:
                _, kept, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                # One commit past what SQLite kept is a torn last write, never acknowledged; a second
                # one was written after the first returned, so the first was durable and is damaged.
                lost = max(0, len([frame for frame in commits if frame > kept]) - 1)
                if lost and not salvage:
                    raise StorageError(f"{path}-wal: damaged at frame {kept + 1}; SQLite would drop {lost} "
                                       "committed transaction(s) after it (see README, salvage)")
                problems = [row[0] for row in conn.execute("PRAGMA quick_check(3)")]
                if problems != ["ok"]:
                    raise StorageError(f"{path}: damaged: {'; '.join(problems)[:300]}")
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version != SCHEMA_VERSION:
                    raise StorageError(f"{path}: schema version {version}, expected {SCHEMA_VERSION} "
                                       "(empty, or not an anisoscan index database)")
            except BaseException:
                conn.close()
                raise
        store = cls(directory, conn)
        store.lost_transactions = lost
        return store

    def read_meta(self) -> Meta:
        with io_errors(self.path, "read metadata"):
            row = self._conn.execute(f"SELECT {_META_FIELDS} FROM meta WHERE id = 1").fetchone()
            params = dict(self._conn.execute("SELECT key, value FROM params").fetchall())
        if row is None:
            raise StorageError(f"{self.path}: no metadata row")
        name, index_type, metric, dim, state, error, loaded, seq, snapshot = row
        return Meta(name, index_type, metric, dim, params, state, error, bool(loaded), seq, snapshot)

    def save_meta(self, meta: Meta) -> None:
        """Params never change after create, so only the meta row is written."""
        with io_errors(self.path, "write metadata"):
            faults.point("meta.write")
            self._conn.execute(f"UPDATE meta SET ({_META_FIELDS}) = (?, ?, ?, ?, ?, ?, ?, ?, ?) WHERE id = 1",
                               _meta_row(meta))

    def append(self, record: Record) -> None:
        """Commits one record; returns once it is durable. On error nothing is logged."""
        vectors = None if record.vectors is None else record.vectors.tobytes()
        with io_errors(self.path, "log"):
            faults.point("log.append")
            self._conn.execute("INSERT INTO log VALUES (?, ?, ?, ?, ?, ?)",
                               (record.seq, record.kind, record.upsert, record.ids.tobytes(), vectors, record.crc()))
        faults.point("log.appended")

    def records_after(self, seq: int, dim: int) -> Iterator[tuple[Record, int]]:
        """The records after seq in order, with their size in bytes; a gap or a bad checksum is StorageError."""
        with io_errors(self.path, "read log"):
            rows = self._conn.execute("SELECT seq, kind, upsert, ids, vectors, crc FROM log WHERE seq > ? "
                                      "ORDER BY seq", (seq,))
            for at, kind, upsert, ids, vectors, crc in rows:
                if at != seq + 1:
                    raise StorageError(f"{self.path}: log records {seq + 1}..{at - 1} are missing")
                record = _record(at, kind, bool(upsert), ids, vectors, dim)
                if record is None or record.crc() != crc:
                    raise StorageError(f"{self.path}: log record {at} is damaged (checksum or shape)")
                yield record, len(ids) + len(vectors or b"")
                seq = at

    def checkpoint(self, meta: Meta) -> None:
        """Points meta at a new durable snapshot and drops the records it holds, in one transaction."""
        with io_errors(self.path, "checkpoint"):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(f"UPDATE meta SET ({_META_FIELDS}) = (?, ?, ?, ?, ?, ?, ?, ?, ?) WHERE id = 1",
                                   _meta_row(meta))
                self._conn.execute("DELETE FROM log WHERE seq <= ?", (meta.snapshot_seq,))
                faults.point("checkpoint.commit")
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def records_from(self, seq: int) -> tuple[int, int]:
        """How many records have seq or a later one, and the last one's number (0 if none)."""
        with io_errors(self.path, "read log"):
            count, last = self._conn.execute("SELECT count(*), max(seq) FROM log WHERE seq >= ?", (seq,)).fetchone()
        return count, last or 0

    def reset(self, meta: Meta) -> None:
        """Points meta at a new snapshot and deletes the whole log, in one transaction (salvage)."""
        with io_errors(self.path, "salvage"):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(f"UPDATE meta SET ({_META_FIELDS}) = (?, ?, ?, ?, ?, ?, ?, ?, ?) WHERE id = 1",
                                   _meta_row(meta))
                self._conn.execute("DELETE FROM log")
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self._conn.close()


def _wal_commit_frames(wal: Path) -> list[int]:
    """The numbers (from 1) of the commit frames in SQLite's -wal file that carry its current salts."""
    try:
        f = open(wal, "rb")  # noqa: SIM115 - closed below; frame headers only, the file may be large
    except FileNotFoundError:
        return []
    with f:
        size = os.fstat(f.fileno()).st_size
        header = f.read(_WAL_HEADER)
        if len(header) < _WAL_HEADER:
            return []
        magic, _, page_size, _, salt1, salt2, sum1, sum2 = struct.unpack(">8I", header)
        if magic not in _WAL_MAGIC or _wal_checksum(header[:24], magic & 1) != (sum1, sum2):
            if size > _WAL_HEADER + 2 * (_WAL_FRAME_HEADER + max(page_size, 512)):
                raise StorageError(f"{wal}: its header is damaged; SQLite would ignore every transaction in it")
            return []  # a torn first write
        frame = _WAL_FRAME_HEADER + page_size
        commits = []
        for n, at in enumerate(range(_WAL_HEADER, size - frame + 1, frame), 1):
            f.seek(at)
            _, commit_size, s1, s2 = struct.unpack(">4I", f.read(16))
            if (s1, s2) == (salt1, salt2) and commit_size:
                commits.append(n)
        return commits


def _wal_checksum(data: bytes, big_endian: int) -> tuple[int, int]:
    words = struct.unpack(f"{'>' if big_endian else '<'}{len(data) // 4}I", data)
    s1 = s2 = 0
    for x1, x2 in zip(words[::2], words[1::2]):
        s1 = (s1 + x1 + s2) & 0xFFFFFFFF
        s2 = (s2 + x2 + s1) & 0xFFFFFFFF
    return s1, s2


def _meta_row(meta: Meta) -> tuple:
    return (meta.name, meta.index_type, meta.metric, meta.dim, meta.state, meta.error, int(meta.loaded),
            meta.snapshot_seq, meta.snapshot_file)


def _record(seq: int, kind: int, upsert: bool, ids: bytes, vectors: bytes | None, dim: int) -> Record | None:
    if not isinstance(ids, bytes) or len(ids) % 8:
        return None
    id_arr = np.frombuffer(ids, "<i8")
    if kind == DELETE and vectors is None:
        return Record(seq, kind, id_arr)
    if kind != INSERT or not isinstance(vectors, bytes) or len(vectors) != len(id_arr) * dim * 4:
        return None
    return Record(seq, kind, id_arr, np.frombuffer(vectors, "<f4").reshape(len(id_arr), dim), upsert)
