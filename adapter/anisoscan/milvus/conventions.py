"""Milvus conventions that every anisoscan path to a Milvus server shares (attach, front).

One place for: the schema's data type numbers, the metric check and its Milvus wording,
how a Milvus search's params become SCANN's nprobe and reorder_k, and the digest that
tells whether a stored vector still equals the collection's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..params import checked_search_params

INT64, VARCHAR, FLOAT_VECTOR = 5, 21, 101  # schema.DataType values, as pymilvus and the proto number them
PRIMARY_KEY_TYPES = (INT64, VARCHAR)
SCANN_SEARCH_KEYS = ("nprobe", "reorder_k")
MAX_TOPK = 16384  # Milvus's bound on limit (and on offset + limit)


def check_metric(expected: str, requested: Any) -> None:
    """Raises ValueError, worded as Milvus words it, when a search asks for another metric than the index's."""
    if requested is not None and str(requested).upper() != expected:
        raise ValueError(f"metric type not match: invalid parameter[expected={expected}][actual={requested}]")


def scann_search_options(params: Mapping[str, Any], limit: int, nlist: int) -> dict[str, int]:
    """nprobe and reorder_k from a search's params, range-checked against the index's nlist.

    Only the keys the request holds come back: a missing one keeps the index's default.
    """
    checked = checked_search_params(limit, params.get("nprobe"), params.get("reorder_k"), 0, nlist)
    return {key: getattr(checked, key) for key in SCANN_SEARCH_KEYS if key in params}


def vector_digest(vector: np.ndarray) -> int:
    """A stable 63-bit digest of a float32 vector's bytes (non-negative: it fits SQLite's INTEGER)."""
    return int.from_bytes(hashlib.blake2b(np.ascontiguousarray(vector, np.float32).tobytes(), digest_size=8).digest(),
                          "little") >> 1
