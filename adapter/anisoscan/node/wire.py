"""Packing of vectors and ids for the wire: little-endian float32 rows and int64 ids."""

from __future__ import annotations

import numpy as np

from ..v1 import index_node_pb2 as pb

F32 = np.dtype("<f4")
I64 = np.dtype("<i8")


def pack_vectors(x: np.ndarray) -> pb.Vectors:
    x = np.ascontiguousarray(x, dtype=F32)
    return pb.Vectors(dim=x.shape[1], data=x.tobytes())


def unpack_vectors(v: pb.Vectors, field: str = "vectors") -> np.ndarray:
    """Raises ValueError when the bytes are not whole rows of dim float32 values."""
    if v.dim == 0:
        raise ValueError(f"{field}: dim must be positive")
    row = v.dim * F32.itemsize
    if len(v.data) % row:
        raise ValueError(f"{field}: {len(v.data)} bytes is not a whole number of rows of {v.dim} float32 values")
    return np.frombuffer(v.data, dtype=F32).reshape(-1, v.dim)


def pack_ids(ids: np.ndarray) -> bytes:
    return np.ascontiguousarray(ids, dtype=I64).tobytes()


def unpack_ids(data: bytes, field: str = "ids") -> np.ndarray:
    if len(data) % I64.itemsize:
        raise ValueError(f"{field}: {len(data)} bytes is not a whole number of int64 ids")
    return np.frombuffer(data, dtype=I64)


def chunks(n: int, dim: int, max_bytes: int) -> list[tuple[int, int]]:
    """Row ranges whose vectors fit in max_bytes each."""
    step = max(1, max_bytes // max(1, dim * F32.itemsize))
    return [(b, min(n, b + step)) for b in range(0, n, step)] or [(0, 0)]
