"""anisoscan as the vector index of one Milvus Lite segment.

Milvus Lite (3.x) gives every immutable segment (a flush, or up to 100,000 rows after
compaction) its own index over local ids 0..n-1, searches each with the segment's valid
mask (deletes, duplicates and the scalar filter), and merges the segments' top-k. This
class implements that per-segment contract (`milvus_lite.index.protocol.VectorIndex`).

Per segment, the user's parameters mean:
- `nlist` is a cap: a segment of n rows gets min(nlist, n // ROWS_PER_PARTITION)
  partitions, so small segments are not cut into partitions of a few rows each;
- `nprobe` is a number of partitions, clamped to the segment's: a small segment is
  scanned more thoroughly, never less (scaling nprobe down with nlist lost recall:
  0.54 against 0.90 at 5,000 rows, see the README);
- below EXACT_BELOW_ROWS rows a segment is searched exactly: one partition, raw vectors
  kept whatever `with_raw_data` says, every candidate re-ranked.

Milvus Lite's internal distances are "smaller is closer" (-ip for IP, 1 - cos for COSINE,
the plain, unsquared distance for L2); it turns them back into Milvus's for the user.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from milvus_lite.exceptions import SchemaValidationError  # Milvus's "IllegalArgument"
from milvus_lite.index.protocol import VectorIndex

from .. import _validation as v
from ..index import Index
from ..params import INDEX_TYPE, MAX_NLIST, IndexParams, SearchParams, checked_search_params

log = logging.getLogger(__name__)

EXACT_BELOW_ROWS = 1024  # where Milvus itself stops building indexes on sealed segments
ROWS_PER_PARTITION = 100
MMAP_KEY = "mmap.enabled"  # Milvus's per-index switch; the only key that is not an IndexParams field
SEARCH_KEYS = ("nprobe", "reorder_k")  # other keys (e.g. HNSW's ef) are ignored, as Milvus does


def index_params(dim: int, metric: str, build_params: Mapping[str, Any]) -> tuple[IndexParams, bool]:
    """The collection-level IndexParams and the mmap switch, from create_index's `params`.

    Raises ValueError/TypeError naming the offending key, like IndexParams does.
    """
    params = dict(build_params)
    mmap = v.boolean(MMAP_KEY, params.pop(MMAP_KEY, False))
    return IndexParams.from_milvus(dim, {"index_type": INDEX_TYPE, "metric_type": metric, "params": params}), mmap


def segment_params(params: IndexParams, rows: int) -> IndexParams:
    """The collection's parameters, fitted to one segment of `rows` rows (see the module doc)."""
    if rows < EXACT_BELOW_ROWS:
        return dataclasses.replace(params, nlist=1, with_raw_data=True)
    return dataclasses.replace(params, nlist=max(1, min(params.nlist, rows // ROWS_PER_PARTITION)))


def search_params(top_k: int, params: Mapping[str, Any]) -> SearchParams:
    """A request's limit, nprobe and reorder_k, range-checked before any segment fits them to its own size."""
    nprobe, reorder_k = (params.get(key) for key in SEARCH_KEYS)
    return checked_search_params(top_k, nprobe, reorder_k, 0, MAX_NLIST)


def check_queries(queries: Any, dim: int) -> None:
    """Raises ValueError unless `queries` is a [nq, dim] array of finite numbers."""
    try:
        q = np.asarray(queries, np.float32)
    except (ValueError, TypeError) as e:
        raise ValueError(f"data: each query must be a list of {dim} numbers ({e})") from e
    if q.ndim != 2 or q.shape[1] != dim:
        got = q.shape[1] if q.ndim == 2 else "ragged"
        raise ValueError(f"data: query vectors have dimension {got}; the field has dim {dim}")
    bad = np.flatnonzero(~np.isfinite(q).all(axis=1))
    if bad.size:
        raise ValueError(f"data: query {int(bad[0])} holds NaN or infinity; send finite numbers")


class ScannSegmentIndex(VectorIndex):
    """One segment's anisoscan index, with Milvus Lite's ids, masks and distances."""

    __slots__ = ("_index", "metric", "num_vectors", "dim")

    def __init__(self, index: Index) -> None:
        self._index = index
        self.metric = index.metric
        self.num_vectors = len(index)
        self.dim = index.dim

    @property
    def index_type(self) -> str:
        return INDEX_TYPE

    @property
    def index(self) -> Index:
        return self._index

    @property
    def exhaustive(self) -> bool:
        """True where every search is exact (a small segment, see segment_params)."""
        return self.num_vectors < EXACT_BELOW_ROWS and self._index.params.nlist == 1 \
            and self._index.params.with_raw_data

    @classmethod
    def build(cls, vectors: np.ndarray, metric: str, params: Mapping[str, Any] | None = None) -> ScannSegmentIndex:
        x = np.ascontiguousarray(vectors, np.float32)
        collection_params, _ = index_params(x.shape[1], metric, params or {})
        fitted = segment_params(collection_params, len(x))
        index = Index.from_params(fitted).build(x)
        log.info("SCANN segment index built: %d rows, nlist %d", len(x), fitted.nlist)
        return cls(index)

    def search(self, queries: np.ndarray, top_k: int, valid_mask: np.ndarray | None = None,
               params: Mapping[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
        try:
            nprobe, reorder_k = self._search_options(top_k, params or {})
            if valid_mask is not None and len(valid_mask) != self.num_vectors:
                raise ValueError(f"valid_mask: {len(valid_mask)} entries for a segment of {self.num_vectors} rows")
            ids, scores = self._index.search(queries, top_k, nprobe=nprobe, reorder_k=reorder_k,
                                             allowed_mask=valid_mask)
        except (ValueError, TypeError) as e:
            raise SchemaValidationError(f"SCANN search: {e}") from e
        return ids, self._internal_distances(ids, scores)

    def _search_options(self, top_k: int, params: Mapping[str, Any]) -> tuple[int, int]:
        """(nprobe, reorder_k) for this segment from the request's search params."""
        checked = search_params(top_k, params)
        nlist = self._index.params.nlist
        if self.exhaustive:
            return 1, max(checked.reorder_k, self.num_vectors)
        return min(checked.nprobe, nlist), checked.reorder_k

    def _internal_distances(self, ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Milvus scores (IP/COSINE larger is closer, L2 squared) -> Milvus Lite's smaller-is-closer."""
        if self.metric == "IP":
            d = -scores
        elif self.metric == "COSINE":
            d = 1.0 - scores
        else:
            d = np.sqrt(np.maximum(scores, 0.0))
        d = d.astype(np.float32, copy=False)
        d[ids < 0] = np.inf
        return d

    def save(self, path: str) -> None:
        self._index.save(path)

    @classmethod
    def load(cls, path: str, metric: str, dim: int, mmap: bool = False) -> ScannSegmentIndex:
        index = Index.load(path, mmap=mmap)
        if index.metric != metric or index.dim != dim:
            raise ValueError(f"{os.fspath(path)}: a SCANN index of {index.metric}, dim {index.dim}, "
                             f"where the collection has {metric}, dim {dim}")
        log.info("SCANN segment index loaded: %s (%d rows%s)", path, len(index), ", mmap" if mmap else "")
        return cls(index)

