"""A write-ahead log of inserts and deletes, so that an acknowledged write survives a crash.

Each record is: u32 payload length, u32 CRC-32 of the payload, then the payload
(u64 sequence number, u8 kind, kind-specific body). A torn record at the end (a crash
mid-append) fails its length or checksum test and is dropped on replay.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

INSERT, DELETE = 1, 2
_HEAD = struct.Struct("<II")
_BODY = struct.Struct("<QB")


@dataclass
class Record:
    seq: int
    kind: int
    ids: np.ndarray
    vectors: np.ndarray | None = None
    upsert: bool = False


class WriteAheadLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "ab")  # noqa: SIM115 - held open for the log's lifetime

    def append(self, record: Record) -> None:
        """Writes and fsyncs one record; returns once it is durable."""
        body = _BODY.pack(record.seq, record.kind)
        if record.kind == INSERT:
            assert record.vectors is not None
            n, dim = record.vectors.shape
            body += struct.pack("<IIB", n, dim, int(record.upsert))
            body += np.ascontiguousarray(record.ids, "<i8").tobytes()
            body += np.ascontiguousarray(record.vectors, "<f4").tobytes()
        else:
            body += struct.pack("<I", len(record.ids)) + np.ascontiguousarray(record.ids, "<i8").tobytes()
        self._file.write(_HEAD.pack(len(body), zlib.crc32(body)) + body)
        self._file.flush()
        os.fsync(self._file.fileno())

    def size(self) -> int:
        return self._file.tell()

    def truncate(self) -> None:
        """Empties the log (after its records are in a durable snapshot)."""
        self._file.truncate(0)
        self._file.seek(0)
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    @staticmethod
    def replay(path: Path) -> Iterator[Record]:
        """The intact records in order; stops at the first torn or corrupt one."""
        if not path.exists():
            return
        data = path.read_bytes()
        pos = 0
        while pos + _HEAD.size <= len(data):
            length, crc = _HEAD.unpack_from(data, pos)
            body = data[pos + _HEAD.size: pos + _HEAD.size + length]
            if len(body) != length or zlib.crc32(body) != crc:
                return
            pos += _HEAD.size + length
            seq, kind = _BODY.unpack_from(body, 0)
            off = _BODY.size
            if kind == INSERT:
                n, dim, upsert = struct.unpack_from("<IIB", body, off)
                off += 9
                ids = np.frombuffer(body, "<i8", n, off)
                vectors = np.frombuffer(body, "<f4", n * dim, off + 8 * n).reshape(n, dim)
                yield Record(seq, kind, ids, vectors, bool(upsert))
            else:
                (n,) = struct.unpack_from("<I", body, off)
                yield Record(seq, kind, np.frombuffer(body, "<i8", n, off + 4))
