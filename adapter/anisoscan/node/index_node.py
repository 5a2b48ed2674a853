"""The node's indexes on disk and in memory: build, load, release, drop, durable writes.

Layout of the data directory, one folder per index and generation:
    <data-dir>/<name>.<generation>/index.db         metadata and the log of writes (SQLite, see store.py)
    <data-dir>/<name>.<generation>/<seq>-<file>     the snapshot holding log records up to seq
    <data-dir>/.trash/                              dropped folders, removed after the drop
A create makes its folder under a temporary name and renames it into place; a drop renames
it into .trash. Each is one atomic rename, and a build still running for a dropped index
writes only into its own generation's folder, which no new index of that name shares.

Writes are checked, then logged (committed and fsynced), then applied to memory: a write
that fails to log leaves the index unchanged, and one that was acknowledged is replayed
after a crash. A checkpoint writes a durable snapshot, then in one transaction points the
metadata at it and deletes the records it holds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .. import _validation as v
from . import faults, index_types
from .errors import AlreadyExists, FailedPrecondition, NotFound, StorageError
from .limits import BYTES_PER_HIT, Limits
from .store import (
    DB_NAME,
    DELETE,
    FAILED,
    FINISHED,
    IN_PROGRESS,
    INSERT,
    IndexStore,
    Meta,
    Record,
    fsync_dir,
    fsync_file,
    io_errors,
)

log = logging.getLogger(__name__)

CHECKPOINT_LOG_BYTES = 64 << 20
_TRASH = ".trash"
_STAGING = ".new-"
_GENERATION_HEX = 16


@dataclass(frozen=True)
class Description:
    name: str
    index_type: str
    metric: str
    dim: int
    state: str
    progress: float
    error: str
    num_rows: int
    memory_bytes: int
    loaded: bool
    params: dict[str, str]


class IndexService(Protocol):
    """What the gRPC server needs from a node."""

    limits: Limits

    def create(self, name: str, index_type: str, metric: str, dim: int, params: dict[str, str],
               vectors: np.ndarray, ids: np.ndarray | None) -> None: ...
    def describe(self, name: str) -> Description: ...
    def names(self) -> list[str]: ...
    def load(self, name: str) -> None: ...
    def release(self, name: str) -> None: ...
    def drop(self, name: str) -> None: ...
    def insert(self, name: str, vectors: np.ndarray, ids: np.ndarray, upsert: bool) -> int: ...
    def delete(self, name: str, ids: np.ndarray) -> int: ...
    def search(self, name: str, queries: np.ndarray, limit: int, search_params: dict[str, str],
               allowed_ids: np.ndarray | None, excluded_ids: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]: ...
    def get_vectors(self, name: str, ids: np.ndarray) -> np.ndarray: ...
    def dim(self, name: str) -> int: ...


@dataclass
class Entry:
    meta: Meta
    directory: Path
    store: IndexStore | None = None
    progress: float = 0.0
    index: Any = None
    seq: int = 0  # the last logged record
    log_bytes: int = 0  # logged since the snapshot
    dropped: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class IndexNode:
    """Thread-safe registry of the node's indexes; one lock per index orders its writes."""

    def __init__(self, data_dir: str | os.PathLike[str], build_workers: int = 1, limits: Limits | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.limits = limits or Limits()
        self._entries: dict[str, Entry] = {}
        self._lock = threading.Lock()
        self._builds = ThreadPoolExecutor(max_workers=build_workers, thread_name_prefix="build")
        self._recover()

    # --- recovery ---------------------------------------------------------------------
    def _recover(self) -> None:
        shutil.rmtree(self.data_dir / _TRASH, ignore_errors=True)
        for path in sorted(self.data_dir.iterdir()):
            if path.name.startswith(_STAGING):  # a create that never completed: never acknowledged
                shutil.rmtree(path, ignore_errors=True)
                continue
            name, _, generation = path.name.rpartition(".")
            if not (path.is_dir() and _is_index_name(name) and _is_generation(generation)):
                log.warning("ignoring %s: not an index folder (<name>.<16 hex digits>)", path)
                continue
            if name in self._entries:
                log.error("ignoring %s: index %r already has the folder %s", path, name, self._entries[name].directory)
                continue
            self._entries[name] = self._recover_one(name, path)
        log.info("recovered %d index(es) from %s", len(self._entries), self.data_dir)

    def _recover_one(self, name: str, directory: Path) -> Entry:
        entry = Entry(Meta(name, "", "", 0, state=FAILED, loaded=False), directory)
        try:
            entry.store = IndexStore.open(directory)
            entry.meta = entry.store.read_meta()
            if entry.meta.name != name:
                raise StorageError(f"{entry.store.path}: names index {entry.meta.name!r}, not {name!r}")
            _remove_orphans(entry)
            if entry.meta.state == IN_PROGRESS:
                entry.meta.state, entry.meta.error = FAILED, "the build was interrupted; drop and create it again"
                entry.store.save_meta(entry.meta)
            elif entry.meta.state == FINISHED and entry.meta.loaded:
                self._open_index(entry)
        except Exception as e:  # noqa: BLE001 - any damage fails this index only; the node serves the others
            entry.meta.state, entry.meta.error = FAILED, f"recovery failed: {e}"
            log.error("index %s is Failed: %s", name, entry.meta.error)
        return entry

    def _open_index(self, entry: Entry) -> None:
        """Loads the snapshot and replays the log after it; raises naming the damaged file."""
        assert entry.store is not None
        meta = entry.meta
        path = entry.directory / meta.snapshot_file
        if not meta.snapshot_file or not path.is_file():
            raise StorageError(f"{path}: the snapshot is missing")
        index = index_types.lookup(meta.index_type).load(path)
        seq, log_bytes = meta.snapshot_seq, 0
        for record, size in entry.store.records_after(seq, meta.dim):
            try:
                apply(index, record)
            except ValueError as e:
                raise StorageError(f"{entry.store.path}: log record {record.seq} does not apply: {e}") from e
            seq, log_bytes = record.seq, log_bytes + size
        entry.index, entry.seq, entry.log_bytes, entry.progress = index, seq, log_bytes, 1.0
        log.info("index %s loaded: %d rows, %d log records replayed", meta.name, len(index), seq - meta.snapshot_seq)

    def close(self) -> None:
        self._builds.shutdown(wait=True)
        with self._lock:
            entries = list(self._entries.values())
        for entry in entries:
            with entry.lock:
                if entry.store:
                    entry.store.close()
                    entry.store = None

    # --- lookup -----------------------------------------------------------------------
    def _get(self, name: str) -> Entry:
        v.index_name(name)
        with self._lock:
            entry = self._entries.get(name)
        if entry is None:
            raise NotFound(f"index {name!r} does not exist")
        return entry

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._entries)

    def describe(self, name: str) -> Description:
        entry = self._get(name)
        m, index = entry.meta, entry.index
        return Description(m.name, m.index_type, m.metric, m.dim, m.state, entry.progress, m.error,
                           len(index) if index is not None else 0, index.memory_bytes if index is not None else 0,
                           index is not None, dict(m.params))

    def dim(self, name: str) -> int:
        return self._get(name).meta.dim

    # --- lifecycle --------------------------------------------------------------------
    def create(self, name: str, index_type: str, metric: str, dim: int, params: dict[str, str],
               vectors: np.ndarray, ids: np.ndarray | None) -> None:
        """Checks everything a build would, records the index durably, and builds it in the background."""
        v.index_name(name)
        kind = index_types.lookup(index_type)
        metric = (metric or "IP").upper()
        kind.validate(dim, metric, params)
        x = v.bounded_vectors("vectors", vectors, dim, allow_empty=True)
        ids_arr = np.arange(len(x), dtype=np.int64) if ids is None else v.as_ids("ids", ids, len(x))
        meta = Meta(name, kind.name, metric, dim, dict(params))
        with self._lock:
            if name in self._entries:
                raise AlreadyExists(f"index {name!r} already exists; drop it first or choose another name")
            generation = secrets.token_hex(_GENERATION_HEX // 2)
            staging = self.data_dir / f"{_STAGING}{generation}"
            directory = self.data_dir / f"{name}.{generation}"
            with io_errors(directory, "create"):
                try:
                    IndexStore.create(staging, meta)
                    faults.point("create.rename")
                    os.rename(staging, directory)
                    fsync_dir(self.data_dir)
                    entry = Entry(meta, directory, IndexStore.open(directory))
                except BaseException:
                    for path in (staging, directory):  # this generation's alone
                        shutil.rmtree(path, ignore_errors=True)
                    raise
            self._entries[name] = entry
        self._builds.submit(self._build, entry, x, ids_arr)

    def _build(self, entry: Entry, vectors: np.ndarray, ids: np.ndarray) -> None:
        meta = entry.meta
        try:
            entry.progress = 0.1
            kind = index_types.lookup(meta.index_type)
            index = kind.build(meta.dim, meta.metric, meta.params, vectors, ids,
                               lambda p: setattr(entry, "progress", p))
            # Into this generation's folder only: after a drop it is in .trash or gone.
            snapshot = write_snapshot(entry.directory, entry.meta.index_type, index, 0)
            faults.point("build.saved")
            with entry.lock:
                if entry.dropped:
                    return
                done = replace(meta, state=FINISHED, snapshot_file=snapshot)
                entry.store.save_meta(done)
                entry.meta, entry.index, entry.progress = done, index, 1.0
            log.info("index %s built: %d rows", meta.name, len(index))
        except Exception as e:  # the build's failure is the index's state, not the node's
            with entry.lock:
                if entry.dropped:
                    return
                entry.meta = replace(entry.meta, state=FAILED, error=f"{type(e).__name__}: {e}")
                log.error("index %s failed to build: %s", meta.name, e)
                try:
                    entry.store.save_meta(entry.meta)
                except Exception as save_error:  # noqa: BLE001 - a restart reports it as interrupted
                    log.error("index %s: could not record the failure: %s", meta.name, save_error)

    def drop(self, name: str) -> None:
        entry = self._get(name)
        with entry.lock:
            if entry.dropped:
                raise NotFound(f"index {name!r} does not exist")
            trash = self.data_dir / _TRASH
            with io_errors(entry.directory, "drop"):
                trash.mkdir(exist_ok=True)
                if entry.store:
                    entry.store.close()  # before the rename: SQLite deletes its -wal file by path on close
                    entry.store = None
                try:
                    os.rename(entry.directory, trash / entry.directory.name)
                except OSError:
                    with contextlib.suppress(StorageError):
                        entry.store = IndexStore.open(entry.directory)
                    raise
                fsync_dir(self.data_dir)
            entry.dropped, entry.index = True, None
        with self._lock:
            if self._entries.get(name) is entry:
                del self._entries[name]
        faults.point("drop.retired")
        shutil.rmtree(trash / entry.directory.name, ignore_errors=True)

    def load(self, name: str) -> None:
        entry = self._get(name)
        with entry.lock:
            self._require_finished(entry)
            if entry.index is None:
                try:
                    self._open_index(entry)
                except (StorageError, ValueError, OSError, KeyError, EOFError) as e:  # a damaged file
                    raise FailedPrecondition(f"index {name!r} cannot be loaded: {e}") from e
            if not entry.meta.loaded:
                loaded = replace(entry.meta, loaded=True)
                entry.store.save_meta(loaded)
                entry.meta = loaded

    def release(self, name: str) -> None:
        """Frees the memory; the log already holds every write, so nothing needs saving but the flag."""
        entry = self._get(name)
        with entry.lock:
            self._require_finished(entry)
            if entry.meta.loaded:
                released = replace(entry.meta, loaded=False)
                entry.store.save_meta(released)
                entry.meta = released
            entry.index = None

    def checkpoint(self, name: str) -> None:
        entry = self._get(name)
        with entry.lock:
            self._checkpoint(entry, self._serving(entry))

    # --- data -------------------------------------------------------------------------
    def insert(self, name: str, vectors: np.ndarray, ids: np.ndarray, upsert: bool) -> int:
        entry = self._get(name)
        x = v.bounded_vectors("vectors", vectors, entry.meta.dim, allow_empty=True)
        ids_arr = v.as_ids("ids", ids, len(x))
        self.limits.check_insert(len(x), entry.meta.dim)
        with entry.lock:
            index = self._serving(entry)
            if not len(x):
                return len(index)
            if not upsert:
                present = ids_arr[index.contains(ids_arr)]
                if present.size:
                    raise ValueError(f"ids: {present.size} id(s) already in the index, e.g. {present[:5].tolist()}; "
                                     "delete them first or upsert")
            self._log_and_apply(entry, index, Record(entry.seq + 1, INSERT, ids_arr, x, upsert))
            return len(index)

    def delete(self, name: str, ids: np.ndarray) -> int:
        entry = self._get(name)
        ids_arr = v.as_ids("ids", ids, unique=False)
        with entry.lock:
            index = self._serving(entry)
            if not len(ids_arr):
                return len(index)
            missing = ids_arr[~index.contains(ids_arr)]
            if missing.size:
                raise ValueError(f"ids: {missing.size} id(s) not in the index, e.g. {missing[:5].tolist()}; "
                                 "nothing was changed")
            self._log_and_apply(entry, index, Record(entry.seq + 1, DELETE, np.unique(ids_arr)))
            return len(index)

    def search(self, name: str, queries: np.ndarray, limit: int, search_params: dict[str, str],
               allowed_ids: np.ndarray | None = None,
               excluded_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        entry = self._get(name)
        index = self._serving(entry)
        q = v.bounded_vectors("queries", queries, entry.meta.dim, allow_empty=True)
        limit = v.positive_int("limit", limit, 1, 1 << 20)
        self.limits.check_reply("search", len(q) * limit * BYTES_PER_HIT)
        options = index_types.lookup(entry.meta.index_type).search_options(search_params)
        return index.search(q, limit, allowed_ids=allowed_ids, excluded_ids=excluded_ids, **options)

    def get_vectors(self, name: str, ids: np.ndarray) -> np.ndarray:
        entry = self._get(name)
        index = self._serving(entry)
        self.limits.check_get_ids(len(ids))
        self.limits.check_reply("get_vectors", len(ids) * entry.meta.dim * 4)
        return index.get_vectors(ids)

    def contains(self, name: str, ids: np.ndarray) -> np.ndarray:
        """Whether each id is in the index (repeats allowed): lets a caller delete only what is there."""
        return self._serving(self._get(name)).contains(ids)

    # --- internals --------------------------------------------------------------------
    def _log_and_apply(self, entry: Entry, index: Any, record: Record) -> None:
        """The caller holds the lock and has checked the record applies."""
        entry.store.append(record)
        entry.seq = record.seq
        entry.log_bytes += record.ids.nbytes + (record.vectors.nbytes if record.vectors is not None else 0)
        try:
            apply(index, record)
        except Exception as e:
            # Logged but not in memory: unload so that LoadIndex replays it.
            entry.index = None
            raise FailedPrecondition(f"index {entry.meta.name!r}: the write is logged but applying it failed ({e}); "
                                     "call LoadIndex to replay it") from e
        if entry.log_bytes > CHECKPOINT_LOG_BYTES:
            try:
                self._checkpoint(entry, index)
            except Exception as e:  # noqa: BLE001 - the write is durable in the log; retried at the next write
                log.warning("index %s: checkpoint failed, the log keeps growing: %s", entry.meta.name, e)

    def _checkpoint(self, entry: Entry, index: Any) -> None:
        meta = entry.meta
        if entry.seq == meta.snapshot_seq:
            return
        snapshot = write_snapshot(entry.directory, meta.index_type, index, entry.seq)
        faults.point("checkpoint.snapshot_written")
        updated = replace(meta, snapshot_seq=entry.seq, snapshot_file=snapshot)
        try:
            entry.store.checkpoint(updated)
        except BaseException:
            (entry.directory / snapshot).unlink(missing_ok=True)
            raise
        entry.meta, entry.log_bytes = updated, 0
        faults.point("checkpoint.committed")
        (entry.directory / meta.snapshot_file).unlink(missing_ok=True)

    def _serving(self, entry: Entry) -> Any:
        """The loaded index; writers call it holding entry.lock, so that a drop or release waits for them."""
        self._require_finished(entry)
        index = entry.index  # read once: a concurrent release may clear it
        if index is None:
            raise FailedPrecondition(f"index {entry.meta.name!r} is released; call LoadIndex first")
        return index

    @staticmethod
    def _require_finished(entry: Entry) -> None:
        state = entry.meta.state
        if entry.dropped:
            raise NotFound(f"index {entry.meta.name!r} does not exist")
        if state == IN_PROGRESS:
            raise FailedPrecondition(f"index {entry.meta.name!r} is still being built; wait for state Finished")
        if state == FAILED:
            raise FailedPrecondition(f"index {entry.meta.name!r} is Failed: {entry.meta.error}")


def write_snapshot(directory: Path, index_type: str, index: Any, seq: int) -> str:
    """Saves index as the snapshot of seq, durably (file and folder fsynced); returns its file name."""
    name = f"{seq:016d}-{index_types.lookup(index_type).file_name}"
    path = directory / name
    with io_errors(path, "snapshot"):
        try:
            faults.point("snapshot.write")
            index.save(path)
            fsync_file(path)
            fsync_dir(directory)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
    return name


def apply(index: Any, record: Record) -> None:
    if record.kind == INSERT:
        (index.upsert if record.upsert else index.add)(record.vectors, record.ids)
    elif record.kind == DELETE:
        index.delete(record.ids)


def _remove_orphans(entry: Entry) -> None:
    """Snapshots that a crash left unreferenced (written, never committed or not yet deleted)."""
    keep = {DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", entry.meta.snapshot_file}
    for path in entry.directory.iterdir():
        if path.name not in keep and path.is_file():
            log.info("index %s: removing %s, which no metadata refers to", entry.meta.name, path.name)
            path.unlink()


def _is_index_name(name: str) -> bool:
    try:
        v.index_name(name)
    except ValueError:
        return False
    return True


def _is_generation(text: str) -> bool:
    return len(text) == _GENERATION_HEX and all(c in "0123456789abcdef" for c in text)
