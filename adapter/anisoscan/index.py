"""The public index: IVF partitions + anisotropic 4-bit PQ scanned with FastScan."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import _core
from . import _validation as v
from .params import BUILD_PARAMS, METRICS, IndexParams, checked_search_params

_NO_IDS = np.empty(0, np.int64)


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
        given = {name: getattr(p, name) for name in BUILD_PARAMS if getattr(p, name) is not None}
        return _core.IvfIndex(p.dim, p.metric, given)

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
        self._params = IndexParams(**fresh.params)  # with what training derived from the data
        return self

    def add(self, vectors: Any, ids: Any = None) -> None:
        """Encodes vectors with the trained codebooks and appends them.

        An id may appear once: adding an id already present is an error (see upsert).
        Without ids, they continue from len(index).
        """
        self._require_built("add")
        x = v.as_vectors("vectors", vectors, self.dim)
        self._core.add(x, self._ids_for(x, ids, len(self)), replace=False)

    def upsert(self, vectors: Any, ids: Any) -> None:
        """Adds the vectors, replacing any stored under the same ids."""
        self._require_built("upsert")
        x = v.as_vectors("vectors", vectors, self.dim)
        self._core.add(x, v.as_ids("ids", ids, x.shape[0]), replace=True)

    def delete(self, ids: Any) -> None:
        """Removes the ids. If any is unknown, nothing changes and the error lists them."""
        self._require_built("delete")
        self._core.remove(v.as_ids("ids", ids, unique=False))

    def compact(self) -> None:
        """Returns the memory that deletes left unused."""
        self._core.compact()

    def contains(self, ids: Any) -> np.ndarray:
        """A boolean array: whether each id is stored (repeats allowed)."""
        self._require_built("contains")
        return self._core.contains(v.as_ids("ids", ids, unique=False))

    def get_vectors(self, ids: Any) -> np.ndarray:
        """The stored float32 vectors of the ids, [len(ids), dim] (unit length for COSINE).

        Needs with_raw_data=True; an unknown id raises ValueError naming it.
        """
        self._require_built("get_vectors")
        return self._core.get_vectors(v.as_ids("ids", ids, unique=False))

    @staticmethod
    def _ids_for(x: np.ndarray, ids: Any, start: int = 0) -> np.ndarray:
        if ids is None:
            return np.arange(start, start + x.shape[0], dtype=np.int64)
        return v.as_ids("ids", ids, x.shape[0])

    # --- searching --------------------------------------------------------------------
    def search(self, queries: Any, k: int = 10, nprobe: int | None = None, reorder_k: int | None = None,
               threads: int = 0, allowed_ids: Any = None, excluded_ids: Any = None,
               allowed_mask: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k per query: (ids [nq, k] int64, distances [nq, k] float32).

        allowed_ids / excluded_ids / allowed_mask (a boolean array indexed by id: id i passes
        when i < len(mask) and mask[i]) filter inside the scan; when the filter leaves too few
        candidates in the nprobe partitions, further partitions are visited until k are found.
        """
        self._require_built("search")
        q = v.as_vectors("queries", queries, self.dim, allow_empty=True, core_checks_finite=True)
        sp = checked_search_params(k, nprobe, reorder_k, threads, self._params.nlist)
        allowed, excluded, mask = self._filter(allowed_ids, excluded_ids, allowed_mask)
        if q.shape[0] == 0:
            return np.empty((0, sp.k), np.int64), np.empty((0, sp.k), np.float32)
        return self._core.search(q, sp.k, sp.nprobe, sp.reorder_k, sp.threads, allowed, excluded, mask)

    def range_search(self, queries: Any, radius: float, range_filter: float | None = None,
                     nprobe: int | None = None, reorder_k: int | None = None, threads: int = 0,
                     allowed_ids: Any = None, excluded_ids: Any = None,
                     allowed_mask: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Milvus range search: (lims [nq + 1], ids, distances); query i owns [lims[i], lims[i+1]).

        IP/COSINE keep radius < score <= range_filter; L2 keeps range_filter <= distance < radius.
        With raw data every vector of the probed partitions is scored exactly (reorder_k is
        accepted for Milvus compatibility and has nothing to do); without it, scores are
        the quantized approximations.
        """
        self._require_built("range_search")
        q = v.as_vectors("queries", queries, self.dim, allow_empty=True)
        radius = v.real_number("radius", radius)
        larger_is_better = self.metric != "L2"
        if range_filter is None:
            range_filter = float("inf") if larger_is_better else float("-inf")
        else:
            range_filter = v.real_number("range_filter", range_filter)
            if larger_is_better and range_filter <= radius:
                raise ValueError(f"range_filter: must be larger than radius for {self.metric} (higher is closer)")
            if not larger_is_better and range_filter >= radius:
                raise ValueError("range_filter: must be smaller than radius for L2 (lower is closer)")
        sp = checked_search_params(1, nprobe, reorder_k, threads, self._params.nlist)
        allowed, excluded, mask = self._filter(allowed_ids, excluded_ids, allowed_mask)
        return self._core.range_search(q, radius, range_filter, sp.nprobe, sp.threads, allowed, excluded, mask)

    @staticmethod
    def _filter(allowed_ids: Any, excluded_ids: Any,
                allowed_mask: Any) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
        allowed = None if allowed_ids is None else v.id_set("allowed_ids", allowed_ids)
        excluded = _NO_IDS if excluded_ids is None else v.id_set("excluded_ids", excluded_ids)
        mask = None if allowed_mask is None else v.id_mask("allowed_mask", allowed_mask)
        return allowed, excluded, mask

    def _require_built(self, what: str) -> None:
        if not self._core.is_trained:
            raise RuntimeError(f"{what}: the index is not built yet; call build(vectors) first")

    # --- persistence ------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the index atomically (temporary file + rename), with a checksum."""
        self._core.save(os.fspath(path))

    @classmethod
    def load(cls, path: str | os.PathLike[str], mmap: bool = False, verify_checksum: bool = True) -> Index:
        """Reads an index written by save(); a damaged file raises IndexFileError naming it.

        mmap=True maps the file and searches it in place (a partition is copied only when it
        changes); verify_checksum=False skips reading the whole file up front.
        """
        core = _core.IvfIndex.load(os.fspath(path), mmap=bool(mmap), verify_checksum=bool(verify_checksum))
        index = cls.__new__(cls)
        index._params = IndexParams(**core.params)
        index._core = core
        return index


def exact_search(base: Any, queries: Any, k: int, metric: str = "IP",
                 threads: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Exhaustive top-k (ground truth): (ids [nq, k], distances [nq, k]), Milvus semantics."""
    metric = metric.upper() if isinstance(metric, str) else metric
    if metric not in METRICS:
        raise ValueError(f"metric: unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    b = v.as_vectors("base", base)
    q = v.as_vectors("queries", queries, b.shape[1], allow_empty=True)
    k = v.positive_int("k", k, 1, 1 << 20)
    return _core.exact_search(b, q, k, metric, v.positive_int("threads", threads, 0, 4096))
