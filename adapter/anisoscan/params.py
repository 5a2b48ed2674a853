"""Build and search parameters, with Milvus/Knowhere names, defaults and leniency."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

from . import _validation as v

METRICS = ("IP", "L2", "COSINE")
INDEX_TYPE = "SCANN"  # the Milvus index_type this index answers to
MAX_NLIST = 65536  # partitions; nprobe is bounded by the same number (and by the index's nlist)

# The anisotropic loss is derived for inner products, where 0.2 suits unit-scale data.
# Its threshold is an absolute score, so for L2 (any scale) the default is relative to the
# data: 0.1 x the mean norm, resolved when the index is built. Measured on bigann-10k
# (SIFT, norms ~509): codes-only recall@10 at nprobe 74 of 230 went 0.778 (plain PQ) ->
# 0.790 (0.1 x norm) -> 0.789 (0.2 x) -> 0.781 (0.5 x).
DEFAULT_ANISOTROPIC_THRESHOLD = {"IP": 0.2, "COSINE": 0.2}
L2_RELATIVE_THRESHOLD = 0.1


@dataclass(frozen=True)
class IndexParams:
    """Everything a SCANN index is built with. Knowhere's names where Knowhere has one."""

    dim: int
    metric: str = "IP"
    nlist: int = 128
    sub_dim: int = 2
    with_raw_data: bool = True
    by_residual: bool = True  # codes of offsets from the partition center; False: of the vectors
    anisotropic_threshold: float | None = None  # None: the metric's default (see above)
    anisotropic_codebooks: bool = True  # solve the codebook update under the loss too
    exact_eta: bool = True  # finite-d eta (measured better than the large-d limit on GloVe-50)
    pq_iterations: int = 8
    training_sample_size: int = 100_000
    kmeans_iters: int = 10
    seed: int = 42
    threads: int = 0  # 0: all cores

    def __post_init__(self) -> None:
        metric = self.metric.upper() if isinstance(self.metric, str) else self.metric
        if metric not in METRICS:
            raise ValueError(f"metric_type: unknown metric {self.metric!r}; use one of {', '.join(METRICS)}")
        set_ = object.__setattr__
        set_(self, "metric", metric)
        set_(self, "dim", v.positive_int("dim", self.dim, 1, 32768))
        set_(self, "nlist", v.positive_int("nlist", self.nlist, 1, MAX_NLIST))
        set_(self, "sub_dim", v.positive_int("sub_dim", self.sub_dim, 1, min(16, self.dim)))
        set_(self, "with_raw_data", v.boolean("with_raw_data", self.with_raw_data))
        set_(self, "by_residual", v.boolean("by_residual", self.by_residual))
        t = self.anisotropic_threshold
        if t is not None:
            t = v.real_number("anisotropic_threshold", t, 0.0)
        set_(self, "anisotropic_threshold", DEFAULT_ANISOTROPIC_THRESHOLD.get(metric) if t is None else t)
        set_(self, "anisotropic_codebooks", v.boolean("anisotropic_codebooks", self.anisotropic_codebooks))
        set_(self, "exact_eta", v.boolean("exact_eta", self.exact_eta))
        set_(self, "pq_iterations", v.positive_int("pq_iterations", self.pq_iterations, 0, 100))
        set_(self, "training_sample_size",
             v.positive_int("training_sample_size", self.training_sample_size, 1, 1 << 31))
        set_(self, "kmeans_iters", v.positive_int("kmeans_iters", self.kmeans_iters, 1, 1000))
        set_(self, "seed", v.positive_int("seed", self.seed, 0, (1 << 63) - 1))
        set_(self, "threads", v.positive_int("threads", self.threads, 0, 4096))

    @classmethod
    def from_milvus(cls, dim: int, index_params: dict[str, Any]) -> IndexParams:
        """Reads {"index_type": "SCANN", "metric_type": ..., "params": {...}} as pymilvus sends it.

        Booleans may be bools or any-case strings, numbers may be numeric strings; keys in
        "params" may also sit at the top level, as Milvus allows.
        """
        if not isinstance(index_params, dict):
            raise TypeError(f"index_params: expected a dict, got {type(index_params).__name__}")
        top = dict(index_params)
        index_type = str(top.pop("index_type", INDEX_TYPE)).upper()
        if index_type != INDEX_TYPE:
            raise ValueError(f"index_type: {index_type!r} is not served by anisoscan; use \"SCANN\"")
        metric = top.pop("metric_type", "IP")
        nested = top.pop("params", {}) or {}
        if not isinstance(nested, dict):
            raise TypeError("params: expected a dict of index parameters")
        merged = {**top, **nested}
        known = {f.name for f in dataclasses.fields(cls)} - {"dim", "metric"}
        unknown = sorted(set(merged) - known)
        if unknown:
            raise ValueError(f"params: unknown key(s) {unknown}; known keys are {sorted(known)}")
        return cls(dim=dim, metric=metric, **merged)


@dataclass(frozen=True)
class SearchParams:
    """Per-call search knobs (Milvus: limit, nprobe, reorder_k)."""

    k: int = 10
    nprobe: int | None = None  # None: min(8, nlist), Knowhere's default where it fits
    reorder_k: int | None = None  # None: k (the Milvus default); ignored without raw data
    threads: int = 0

    def checked(self, nlist: int) -> SearchParams:
        return checked_search_params(self.k, self.nprobe, self.reorder_k, self.threads, nlist)

    def _check(self, nlist: int) -> SearchParams:
        k = v.positive_int("k", self.k, 1, 1 << 20)
        nprobe = min(8, nlist) if self.nprobe is None else v.positive_int("nprobe", self.nprobe, 1, MAX_NLIST)
        if nprobe > nlist:
            raise ValueError(f"nprobe: {nprobe} exceeds nlist={nlist}; use 1..{nlist}")
        reorder_k = k if self.reorder_k is None else v.positive_int("reorder_k", self.reorder_k, 1, 1 << 20)
        if reorder_k < k:
            raise ValueError(f"reorder_k: {reorder_k} is smaller than k={k}; use reorder_k >= k")
        threads = v.positive_int("threads", self.threads, 0, 4096)
        return SearchParams(k, nprobe, reorder_k, threads)


def checked_search_params(k: Any, nprobe: Any, reorder_k: Any, threads: Any, nlist: int) -> SearchParams:
    """SearchParams(k, nprobe, reorder_k, threads).checked(nlist), without building the
    unchecked one first: searches repeat the same few settings, each is checked once."""
    try:
        return _checked_search_params(k, nprobe, reorder_k, threads, nlist)
    except TypeError:  # unhashable input: check it directly for the precise message
        return SearchParams(k, nprobe, reorder_k, threads)._check(nlist)


# typed: 1, 1.0 and True are different keys, so a cached int never vouches for a bool.
@functools.lru_cache(maxsize=256, typed=True)
def _checked_search_params(k: Any, nprobe: Any, reorder_k: Any, threads: Any, nlist: int) -> SearchParams:
    return SearchParams(k, nprobe, reorder_k, threads)._check(nlist)
