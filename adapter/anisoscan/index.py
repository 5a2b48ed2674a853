"""The public index: IVF partitions + anisotropic 4-bit PQ scanned with FastScan."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from . import _core
from . import _validation as v
from .params import IndexParams, SearchParams


class Index:
    """A SCANN-style index over float vectors.

    Distances follow Milvus: IP and COSINE larger is better, L2 is the squared distance
    (smaller is better). Missing results (fewer than k vectors reachable) have id -1.
    """

    def __init__(self, dim: int, metric: str = "IP", **params: Any) -> None:
        self._params = IndexParams(dim=dim, metric=metric, **params)
        self._core = self._make_core(self._params)

    @staticmethod
    def _make_core(p: IndexParams) -> _core.IvfIndex:
        fields = dataclasses.asdict(p)
        return _core.IvfIndex(**fields)

    @classmethod
    def from_params(cls, params: IndexParams) -> Index:
        index = cls.__new__(cls)
        index._params = params
        index._core = cls._make_core(params)
        return index

    @classmethod
    def from_milvus_params(cls, dim: int, index_params: dict[str, Any]) -> Index:
        """Builds an empty index from Milvus-shaped params ({"index_type": "SCANN", ...})."""
        return cls.from_params(IndexParams.from_milvus(dim, index_params))

    # --- properties -------------------------------------------------------------------
    @property
    def params(self) -> IndexParams:
        return self._params

    @property
    def dim(self) -> int:
        return self._params.dim

    @property
    def metric(self) -> str:
        return self._params.metric

    @property
    def is_built(self) -> bool:
        return bool(self._core.is_trained)

    @property
    def memory_bytes(self) -> int:
        """Bytes held by the index: centers, codebooks, ids, codes and raw vectors."""
        return int(self._core.memory_bytes)

    def __len__(self) -> int:
        return int(self._core.size)

    def __repr__(self) -> str:
        p = self._params
        return (f"Index(dim={p.dim}, metric={p.metric!r}, nlist={p.nlist}, sub_dim={p.sub_dim}, "
                f"with_raw_data={p.with_raw_data}, n={len(self)})")

    # --- building ---------------------------------------------------------------------
    def build(self, vectors: Any, ids: Any = None) -> Index:
        """Trains partitions and codebooks on the vectors, then adds them (ids: 0..n-1 by default)."""
        x = v.as_vectors("vectors", vectors, self.dim)
        ids_arr = self._ids_for(x, ids)
        if x.shape[0] < self._params.nlist:
            raise ValueError(
                f"nlist: {self._params.nlist} partitions need at least {self._params.nlist} vectors, "
                f"got {x.shape[0]}; lower nlist or build with more vectors"
            )
        fresh = self._make_core(self._params)
        fresh.train(x)
        fresh.add(x, ids_arr)
        self._core = fresh
        return self

    def add(self, vectors: Any, ids: Any = None) -> None:
        """Encodes vectors with the trained codebooks and appends them."""
        self._require_built("add")
        x = v.as_vectors("vectors", vectors, self.dim)
        start = len(self)
        ids_arr = self._ids_for(x, ids, start)
        self._core.add(x, ids_arr)

    @staticmethod
    def _ids_for(x: np.ndarray, ids: Any, start: int = 0) -> np.ndarray:
        if ids is None:
            return np.arange(start, start + x.shape[0], dtype=np.int64)
        return v.as_ids("ids", ids, x.shape[0])

    # --- searching --------------------------------------------------------------------
    def search(self, queries: Any, k: int = 10, nprobe: int | None = None, reorder_k: int | None = None,
               threads: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Top-k per query: (ids [nq, k] int64, distances [nq, k] float32)."""
        self._require_built("search")
        q = v.as_vectors("queries", queries, self.dim, allow_empty=True)
        sp = SearchParams(k, nprobe, reorder_k, threads).checked(self._params.nlist)
        if q.shape[0] == 0:
            return np.empty((0, sp.k), np.int64), np.empty((0, sp.k), np.float32)
        return self._core.search(q, sp.k, sp.nprobe, sp.reorder_k, sp.threads)

    def _require_built(self, what: str) -> None:
        if not self._core.is_trained:
            raise RuntimeError(f"{what}: the index is not built yet; call build(vectors) first")

    # --- persistence ------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the index atomically (temporary file + rename), with a checksum."""
        self._core.save(os.fspath(path))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Index:
        """Reads an index written by save(); a damaged file raises IndexFileError naming it."""
        core = _core.IvfIndex.load(os.fspath(path))
        index = cls.__new__(cls)
        index._params = IndexParams(**core.params)
        index._core = core
        return index


def exact_search(base: Any, queries: Any, k: int, metric: str = "IP",
                 threads: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Exhaustive top-k (ground truth): (ids [nq, k], distances [nq, k]), Milvus semantics."""
    metric = metric.upper() if isinstance(metric, str) else metric
    if metric not in ("IP", "L2", "COSINE"):
        raise ValueError(f"metric: unknown metric {metric!r}; use one of IP, L2, COSINE")
    b = v.as_vectors("base", base)
    q = v.as_vectors("queries", queries, b.shape[1], allow_empty=True)
    k = v.positive_int("k", k, 1, 1 << 20)
    return _core.exact_search(b, q, k, metric, v.positive_int("threads", threads, 0, 4096))
