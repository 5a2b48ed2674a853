"""FLAT: exact search over stored vectors. The reference index type of the node."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from . import _validation as v
from .index import exact_search


class FlatIndex:
    """Exhaustive search with the same interface as Index (build/add/delete/search)."""

    def __init__(self, dim: int, metric: str = "IP") -> None:
        self.dim = v.positive_int("dim", dim, 1, 32768)
        self.metric = metric.upper()
        if self.metric not in ("IP", "L2", "COSINE"):
            raise ValueError(f"metric_type: unknown metric {metric!r}; use one of IP, L2, COSINE")
        self._vectors = np.empty((0, self.dim), np.float32)
        self._ids = np.empty(0, np.int64)
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def memory_bytes(self) -> int:
        return self._vectors.nbytes + self._ids.nbytes

    def build(self, vectors: Any, ids: Any = None) -> FlatIndex:
        x = v.as_vectors("vectors", vectors, self.dim)
        ids_arr = np.arange(len(x), dtype=np.int64) if ids is None else v.as_ids("ids", ids, len(x))
        with self._lock:
            self._vectors, self._ids = x.copy(), ids_arr.copy()
        return self

    def add(self, vectors: Any, ids: Any, upsert: bool = False) -> None:
        x = v.as_vectors("vectors", vectors, self.dim)
        ids_arr = v.as_ids("ids", ids, len(x))
        with self._lock:
            present = np.isin(self._ids, ids_arr)
            if present.any() and not upsert:
                dup = self._ids[present][:5].tolist()
                raise ValueError(f"ids: {int(present.sum())} id(s) already in the index, e.g. {dup}; "
                                 "delete them first or upsert")
            self._vectors = np.concatenate([self._vectors[~present], x])
            self._ids = np.concatenate([self._ids[~present], ids_arr])

    def upsert(self, vectors: Any, ids: Any) -> None:
        self.add(vectors, ids, upsert=True)

    def delete(self, ids: Any) -> None:
        ids_arr = v.as_ids("ids", ids, unique=False)
        with self._lock:
            missing = np.setdiff1d(ids_arr, self._ids)
            if missing.size:
                raise ValueError(f"ids: {missing.size} id(s) not in the index, e.g. {missing[:5].tolist()}; "
                                 "nothing was changed")
            keep = ~np.isin(self._ids, ids_arr)
            self._vectors, self._ids = self._vectors[keep], self._ids[keep]

    def contains(self, ids: Any) -> np.ndarray:
        ids_arr = v.as_ids("ids", ids, unique=False)
        with self._lock:
            return np.isin(ids_arr, self._ids)

    def get_vectors(self, ids: Any) -> np.ndarray:
        ids_arr = v.as_ids("ids", ids, unique=False)
        with self._lock:
            row_of = {int(i): r for r, i in enumerate(self._ids)}
            missing = [int(i) for i in ids_arr if int(i) not in row_of]
            if missing:
                raise ValueError(f"ids: {len(missing)} id(s) not in the index, e.g. {missing[:5]}")
            out = self._vectors[[row_of[int(i)] for i in ids_arr]].reshape(-1, self.dim)
        if self.metric == "COSINE" and len(out):
            out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-30)
        return out.astype(np.float32)

    def search(self, queries: Any, k: int = 10, allowed_ids: Any = None, excluded_ids: Any = None,
               **_: Any) -> tuple[np.ndarray, np.ndarray]:
        q = v.as_vectors("queries", queries, self.dim, allow_empty=True)
        k = v.positive_int("k", k, 1, 1 << 20)
        with self._lock:
            keep = np.ones(len(self._ids), bool)
            if allowed_ids is not None:
                keep &= np.isin(self._ids, v.id_set("allowed_ids", allowed_ids))
            if excluded_ids is not None:
                keep &= ~np.isin(self._ids, v.id_set("excluded_ids", excluded_ids))
            base, ids = self._vectors[keep], self._ids[keep]
        missing = np.float32(np.inf if self.metric == "L2" else -np.inf)
        if len(base) == 0 or len(q) == 0:
            return np.full((len(q), k), -1, np.int64), np.full((len(q), k), missing, np.float32)
        rows, dist = exact_search(base, q, k, self.metric)
        return np.where(rows >= 0, ids[np.maximum(rows, 0)], -1), dist

    def save(self, path: str | os.PathLike[str]) -> None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp.npz")
        with self._lock:
            np.savez(tmp, vectors=self._vectors, ids=self._ids, dim=self.dim, metric=self.metric)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FlatIndex:
        with np.load(path) as f:
            index = cls(int(f["dim"]), str(f["metric"]))
            index._vectors, index._ids = f["vectors"].astype(np.float32), f["ids"].astype(np.int64)
        return index
