"""The node's indexes on disk and in memory: build, load, release, drop, durable writes.

Layout of the data directory, one folder per index:
    <data-dir>/<name>/meta.json        type, metric, dim, params, state, snapshot sequence
    <data-dir>/<name>/<snapshot file>  the index as last checkpointed
    <data-dir>/<name>/wal.log          inserts and deletes since that checkpoint
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import index_types
from .wal import DELETE, INSERT, Record, WriteAheadLog

log = logging.getLogger(__name__)

# Milvus collection-name rules: no path separators or dots can reach the file system.
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,254}$")
CHECKPOINT_WAL_BYTES = 64 << 20

IN_PROGRESS, FINISHED, FAILED = "InProgress", "Finished", "Failed"


class NotFound(LookupError):
    """No index of that name."""


class AlreadyExists(Exception):
    """An index of that name exists."""


class FailedPrecondition(Exception):
    """The index is not in a state that allows the request."""


@dataclass
class Meta:
    name: str
    index_type: str
    metric: str
    dim: int
    params: dict[str, str]
    state: str = IN_PROGRESS
    error: str = ""
    loaded: bool = True
    snapshot_seq: int = 0


@dataclass
class Entry:
    meta: Meta
    directory: Path
    progress: float = 0.0
    index: Any = None
    seq: int = 0
    wal: WriteAheadLog | None = None
    write_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def snapshot_path(self) -> Path:
        return self.directory / index_types.lookup(self.meta.index_type).file_name

    def save_meta(self) -> None:
        tmp = self.directory / "meta.json.tmp"
        tmp.write_text(json.dumps(asdict(self.meta), indent=2))
        os.replace(tmp, self.directory / "meta.json")


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name or ""):
        raise ValueError(f"index_name: {name!r} is invalid; use letters, digits, '_' or '-', starting with a "
                         "letter or '_', at most 255 characters")
    return name


class IndexNode:
    """Thread-safe registry of the node's indexes."""

    def __init__(self, data_dir: str | os.PathLike[str], build_workers: int = 1) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._entries: dict[str, Entry] = {}
        self._lock = threading.Lock()
        self._builds = ThreadPoolExecutor(max_workers=build_workers, thread_name_prefix="build")
        self._recover()

    # --- lifecycle --------------------------------------------------------------------
    def _recover(self) -> None:
        for meta_file in sorted(self.data_dir.glob("*/meta.json")):
            meta = Meta(**json.loads(meta_file.read_text()))
            entry = Entry(meta, meta_file.parent)
            if meta.state == IN_PROGRESS:
                meta.state, meta.error = FAILED, "the build was interrupted by a restart; drop and create it again"
                entry.save_meta()
            self._entries[meta.name] = entry
            if meta.state == FINISHED and meta.loaded:
                try:
                    self._load(entry)
                except Exception as e:  # keep serving the other indexes
                    log.error("index %s could not be loaded: %s", meta.name, e)
                    meta.state, meta.error = FAILED, f"load failed: {e}"
        log.info("recovered %d index(es) from %s", len(self._entries), self.data_dir)

    def close(self) -> None:
        self._builds.shutdown(wait=True)
        with self._lock:
            for entry in self._entries.values():
                if entry.wal:
                    entry.wal.close()

    def get(self, name: str) -> Entry:
        check_name(name)
        with self._lock:
            entry = self._entries.get(name)
        if entry is None:
            raise NotFound(f"index {name!r} does not exist")
        return entry

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._entries)

    def create(self, name: str, index_type: str, metric: str, dim: int, params: dict[str, str],
               vectors: np.ndarray, ids: np.ndarray) -> Entry:
        check_name(name)
        kind = index_types.lookup(index_type)
        metric = metric.upper() or "IP"
        kind.validate(dim, metric, params)
        with self._lock:
            if name in self._entries:
                raise AlreadyExists(f"index {name!r} already exists; drop it first or choose another name")
            directory = self.data_dir / name
            if directory.exists():
                shutil.rmtree(directory)
            directory.mkdir()
            entry = Entry(Meta(name, kind.name, metric, dim, dict(params)), directory)
            entry.save_meta()
            self._entries[name] = entry
        self._builds.submit(self._build, entry, vectors, ids)
        return entry

    def _build(self, entry: Entry, vectors: np.ndarray, ids: np.ndarray) -> None:
        meta = entry.meta
        try:
            entry.progress = 0.1
            kind = index_types.lookup(meta.index_type)
            index = kind.build(meta.dim, meta.metric, meta.params, vectors, ids,
                               lambda p: setattr(entry, "progress", p))
            index.save(entry.snapshot_path)
            entry.wal = WriteAheadLog(entry.directory / "wal.log")
            entry.index, entry.progress = index, 1.0
            meta.state = FINISHED
            log.info("index %s built: %d rows", meta.name, len(index))
        except Exception as e:
            meta.state, meta.error = FAILED, f"{type(e).__name__}: {e}"
            log.error("index %s failed to build: %s", meta.name, e)
        if (entry.directory / "meta.json").exists():  # not dropped meanwhile
            entry.save_meta()

    def drop(self, name: str) -> None:
        check_name(name)
        with self._lock:
            entry = self._entries.pop(name, None)
        if entry is None:
            raise NotFound(f"index {name!r} does not exist")
        with entry.write_lock:
            if entry.wal:
                entry.wal.close()
            entry.index = None
            shutil.rmtree(entry.directory, ignore_errors=True)

    def load(self, name: str) -> None:
        entry = self.get(name)
        self._require_finished(entry)
        with entry.write_lock:
            if entry.index is None:
                self._load(entry)
            entry.meta.loaded = True
            entry.save_meta()

    def _load(self, entry: Entry) -> None:
        index = index_types.lookup(entry.meta.index_type).load(entry.snapshot_path)
        entry.seq = entry.meta.snapshot_seq
        wal_path = entry.directory / "wal.log"
        replayed = 0
        for record in WriteAheadLog.replay(wal_path):
            if record.seq <= entry.seq:
                continue
            try:
                if record.kind == INSERT:
                    (index.upsert if record.upsert else index.add)(record.vectors, record.ids)
                elif record.kind == DELETE:
                    index.delete(record.ids)
            except ValueError as e:  # already applied before the last checkpoint
                log.warning("index %s: skipping WAL record %d: %s", entry.meta.name, record.seq, e)
            entry.seq, replayed = record.seq, replayed + 1
        if entry.wal is None:
            entry.wal = WriteAheadLog(wal_path)
        entry.index, entry.progress = index, 1.0
        log.info("index %s loaded (%d rows, %d WAL records replayed)", entry.meta.name, len(index), replayed)

    def release(self, name: str) -> None:
        entry = self.get(name)
        self._require_finished(entry)
        with entry.write_lock:
            if entry.index is not None:
                self._checkpoint(entry)
            entry.index = None
            entry.meta.loaded = False
            entry.save_meta()

    # --- data -------------------------------------------------------------------------
    def serving(self, name: str) -> Entry:
        entry = self.get(name)
        self._require_finished(entry)
        if entry.index is None:
            raise FailedPrecondition(f"index {name!r} is released; call LoadIndex first")
        return entry

    def insert(self, name: str, vectors: np.ndarray, ids: np.ndarray, upsert: bool) -> int:
        entry = self.serving(name)
        with entry.write_lock:
            index = self._loaded(entry)
            if upsert:
                index.upsert(vectors, ids)
            else:
                index.add(vectors, ids)
            self._log(entry, Record(entry.seq + 1, INSERT, ids, vectors, upsert))
            return len(index)

    def delete(self, name: str, ids: np.ndarray) -> int:
        entry = self.serving(name)
        with entry.write_lock:
            index = self._loaded(entry)
            index.delete(ids)
            self._log(entry, Record(entry.seq + 1, DELETE, ids))
            return len(index)

    def _log(self, entry: Entry, record: Record) -> None:
        assert entry.wal is not None
        entry.wal.append(record)
        entry.seq = record.seq
        if entry.wal.size() > CHECKPOINT_WAL_BYTES:
            self._checkpoint(entry)

    def _checkpoint(self, entry: Entry) -> None:
        """Snapshot then empty the log; the caller holds the write lock."""
        entry.index.save(entry.snapshot_path)
        entry.meta.snapshot_seq = entry.seq
        entry.save_meta()
        if entry.wal:
            entry.wal.truncate()

    @staticmethod
    def _loaded(entry: Entry) -> Any:
        if entry.index is None:
            raise FailedPrecondition(f"index {entry.meta.name!r} is released; call LoadIndex first")
        return entry.index

    @staticmethod
    def _require_finished(entry: Entry) -> None:
        state = entry.meta.state
        if state == IN_PROGRESS:
            raise FailedPrecondition(f"index {entry.meta.name!r} is still being built; wait for state Finished")
        if state == FAILED:
            raise FailedPrecondition(f"index {entry.meta.name!r} failed to build: {entry.meta.error}")
