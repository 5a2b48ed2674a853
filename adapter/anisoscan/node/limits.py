"""Caps on what one request may make the server allocate, checked before allocating."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ResourceExhausted

BYTES_PER_HIT = 12  # an int64 id and a float32 distance per result
# SQLite keeps a value under 1e9 bytes (SQLITE_MAX_LENGTH); one insert is one logged value.
MAX_LOG_RECORD_BYTES = 512 << 20


@dataclass(frozen=True)
class Limits:
    """The defaults are `anisoscan serve`'s (cli.py)."""

    max_reply_bytes: int = 64 << 20
    max_get_ids: int = 100_000
    max_insert_rows: int = 100_000

    def check_reply(self, what: str, n_bytes: int) -> None:
        if n_bytes > self.max_reply_bytes:
            raise ResourceExhausted(f"{what}: the reply would take {n_bytes} bytes, over max_reply_bytes="
                                    f"{self.max_reply_bytes} (--max-reply-mb); ask for fewer queries or a lower limit")

    def check_get_ids(self, n: int) -> None:
        if n > self.max_get_ids:
            raise ResourceExhausted(f"ids: {n} ids in one GetVectors, over max_get_ids={self.max_get_ids} "
                                    "(--max-get-ids); split the call")

    def check_insert(self, rows: int, dim: int) -> None:
        if rows > self.max_insert_rows:
            raise ResourceExhausted(f"vectors: {rows} rows in one insert, over max_insert_rows="
                                    f"{self.max_insert_rows} (--max-insert-rows); split the call")
        if rows * dim * 4 > MAX_LOG_RECORD_BYTES:
            raise ResourceExhausted(f"vectors: {rows} rows of dim {dim} exceed the {MAX_LOG_RECORD_BYTES} bytes "
                                    "one logged insert may hold; split the call")
