"""The indexes `python -m anisoscan.bench compare` measures, one small class per family.

Every peer takes the same `Setup`, so the IVF peers (anisoscan, ScaNN, faiss IVF) all split the
data into `setup.nlist` partitions and "equal partitions searched" comparisons mean something.
Search parameters use the same names for every peer: `nprobe` (partitions / leaves searched),
`reorder_k` (candidates rescored with exact distances), `ef` (HNSW beam width).
A peer whose Python package is missing reports why from `missing()` and is skipped by the runner.
"""

from __future__ import annotations

import abc
import importlib
import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

log = logging.getLogger(__name__)

Params = dict[str, Any]


@dataclass(frozen=True)
class Setup:
    """What every peer is built and swept with."""

    nlist: int  # partitions (ScaNN: leaves) for every IVF peer
    quick: bool = False  # fewer sweep points
    sub_dim: int = 2  # dimensions per 4-bit code (anisoscan, ScaNN AH, faiss PQ)
    training_sample_size: int = 100_000  # anisoscan and ScaNN training sample
    hnsw_m: int = 16
    hnsw_ef_construction: int = 100

    def nprobes(self) -> list[int]:
        """Partitions searched: geometric, 0.25% .. 32% of nlist in steps of sqrt(2), so that
        recall thresholds fall between close points (quick: 1% .. 16% in steps of 4)."""
        fractions = (0.01, 0.04, 0.16) if self.quick else tuple(0.0025 * 2 ** (i / 2) for i in range(15))
        return sorted({min(self.nlist, max(1, round(self.nlist * f))) for f in fractions})

    def reorder_ks(self, k: int) -> list[int]:
        """Candidates rescored exactly, as multiples of k."""
        return [k * m for m in ((4, 16) if self.quick else (2, 4, 8, 16, 32))]

    def efs(self, k: int) -> list[int]:
        return [max(k, e) for e in ((16, 64, 256) if self.quick else (10, 20, 40, 80, 160, 320, 640))]


def _grid(nprobes: list[int], reorder_ks: list[int]) -> list[Params]:
    return [{"nprobe": p, "reorder_k": r} for p in nprobes for r in reorder_ks]


def _pq_subspaces(dim: int, sub_dim: int) -> int:
    """faiss PQ needs M to divide dim: dim / sub_dim when it does, else one dimension per code."""
    return dim // sub_dim if dim % sub_dim == 0 else dim


class Peer(abc.ABC):
    """One index family behind the interface the runner uses."""

    name: ClassVar[str]
    package: ClassVar[str]  # the importable module it needs
    description: ClassVar[str]
    codes_only: ClassVar[bool] = False  # ranks by compressed codes alone, no exact rescoring

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.dim = 0
        self.metric = "IP"

    @classmethod
    def missing(cls) -> str | None:
        """Why this peer cannot run here (its package does not import), or None."""
        try:
            importlib.import_module(cls.package)
        except Exception as e:  # noqa: BLE001 - any import failure means "skip"
            return f"{cls.package} does not import ({type(e).__name__}: {e})"
        return None

    @classmethod
    def not_for(cls, metric: str) -> str | None:
        """Why this peer has nothing to show for the metric, or None."""
        return None

    @classmethod
    def version(cls) -> str:
        module = importlib.import_module(cls.package)
        return str(getattr(module, "__version__", "unknown"))

    @abc.abstractmethod
    def build(self, base: np.ndarray, metric: str, threads: int) -> None:
        """Trains and fills the index. metric is "IP" or "L2"; threads 0 means all cores."""

    @abc.abstractmethod
    def sweep(self, k: int) -> list[Params]:
        """The search parameter points to measure, cheapest first where that is clear."""

    @abc.abstractmethod
    def search(self, queries: np.ndarray, k: int, params: Params, threads: int) -> np.ndarray:
        """Top-k ids [nq, <=k] for all queries in one call."""

    def search_one(self, query: np.ndarray, k: int, params: Params) -> np.ndarray:
        """Top-k ids of one query [d], on the calling thread."""
        return self.search(query[None, :], k, params, 1)[0]

    def memory_bytes(self) -> int | None:
        """Bytes the index holds (best effort; None when not measurable)."""
        return None

    def _start(self, base: np.ndarray, metric: str) -> None:
        if metric not in ("IP", "L2"):
            raise ValueError(f"metric: peers take IP or L2 (normalize COSINE data first), got {metric!r}")
        self.dim = int(base.shape[1])
        self.metric = metric


# --- anisoscan ------------------------------------------------------------------------------


class Anisoscan(Peer):
    name = "anisoscan"
    package = "anisoscan"
    description = "anisoscan IVF + anisotropic 4-bit PQ (FastScan), exact reorder from raw vectors"
    with_raw_data = True
    build_options: ClassVar[dict[str, Any]] = {}  # extra Index parameters (the ablations below)

    def build(self, base: np.ndarray, metric: str, threads: int) -> None:
        import anisoscan

        self._start(base, metric)
        self.index = anisoscan.Index(
            self.dim, metric, nlist=self.setup.nlist, with_raw_data=self.with_raw_data,
            sub_dim=self.setup.sub_dim, training_sample_size=self.setup.training_sample_size,
            threads=threads, **self.build_options)
        self.index.build(base)

    def sweep(self, k: int) -> list[Params]:
        return _grid(self.setup.nprobes(), self.setup.reorder_ks(k))

    def search(self, queries: np.ndarray, k: int, params: Params, threads: int) -> np.ndarray:
        ids, _ = self.index.search(queries, k, nprobe=params["nprobe"],
                                   reorder_k=params.get("reorder_k", k), threads=threads)
        return ids

    def memory_bytes(self) -> int | None:
        return self.index.memory_bytes


class AnisoscanDirect(Anisoscan):
    """Direct codes: one lookup table per query under L2 instead of one per partition."""

    name = "anisoscan-direct"
    description = ("anisoscan with by_residual=False: codes of the vectors, not of their offsets from the "
                   "partition center; exact reorder from raw vectors")
    build_options: ClassVar[dict[str, Any]] = {"by_residual": False}

    @classmethod
    def not_for(cls, metric: str) -> str | None:
        return None if metric == "L2" else "inner products share one table per query with residual codes too"


class AnisoscanSQ8(Anisoscan):
    """The int8 re-rank copy: about a quarter of the float32 copy's memory."""

    name = "anisoscan-sq8"
    description = "anisoscan re-ranking with an int8 copy of the vectors (refine_type=SQ8)"
    build_options: ClassVar[dict[str, Any]] = {"refine_type": "SQ8"}


# SOAR's weight (Sun et al. 2023 use 1), the same for anisoscan and ScaNN.
SOAR_LAMBDA = 1.0


class AnisoscanSoar(Anisoscan):
    """Spilled assignment: each vector's codes in a second partition too."""

    name = "anisoscan-soar"
    description = f"anisoscan with SOAR spilling (soar_lambda={SOAR_LAMBDA}), exact reorder from raw vectors"
    build_options: ClassVar[dict[str, Any]] = {"soar_lambda": SOAR_LAMBDA}


class AnisoscanSoarSQ8(Anisoscan):
    """Both: spilled codes, re-ranked from the int8 copy (a quarter of the rows' bytes read)."""

    name = "anisoscan-soar-sq8"
    description = f"anisoscan with SOAR spilling (soar_lambda={SOAR_LAMBDA}), re-ranking with an int8 copy (SQ8)"
    build_options: ClassVar[dict[str, Any]] = {**AnisoscanSoar.build_options, **AnisoscanSQ8.build_options}


class AnisoscanNoRaw(Anisoscan):
    name = "anisoscan-noraw"
    description = "anisoscan without raw vectors: ranked by the 4-bit codes alone"
    with_raw_data = False
    codes_only = True

    def sweep(self, k: int) -> list[Params]:
        return [{"nprobe": p} for p in self.setup.nprobes()]


class AnisoscanPlainPQ(AnisoscanNoRaw):
    """Ablation: the anisotropic loss switched off."""

    name = "anisoscan-plain"
    description = "anisoscan codes only, plain PQ (anisotropic_threshold=0)"
    build_options: ClassVar[dict[str, Any]] = {"anisotropic_threshold": 0.0}


class AnisoscanAssignOnly(AnisoscanNoRaw):
    """Ablation: anisotropic code assignment, k-means codebooks (what Google's ScaNN does)."""

    name = "anisoscan-assign"
    description = "anisoscan codes only, anisotropic assignment with plain k-means codebooks"
    build_options: ClassVar[dict[str, Any]] = {"anisotropic_codebooks": False}


class AnisoscanFixedThreshold(AnisoscanNoRaw):
    """Ablation: ScaNN's fixed threshold instead of the one measured on the data."""

    name = "anisoscan-t0.2"
    description = "anisoscan codes only, anisotropic_threshold=0.2 (ScaNN's; the default measures it on the data)"
    build_options: ClassVar[dict[str, Any]] = {"anisotropic_threshold": 0.2}


# Ablations and variants run only when named with --peers.
ABLATIONS = ("anisoscan-plain", "anisoscan-assign", "anisoscan-t0.2", "anisoscan-soar", "anisoscan-soar-sq8",
             "scann-soar", "faiss-ivfpqfs-refine-sq8")

# --- Google ScaNN ---------------------------------------------------------------------------


class Scann(Peer):
    name = "scann"
    package = "scann"
    description = "Google ScaNN: tree + score_ah(2, threshold 0.2) + exact reorder"
    reorder = True
    tree_options: ClassVar[dict[str, Any]] = {}  # extra tree() arguments (the SOAR variant)

    @classmethod
    def version(cls) -> str:
        from importlib.metadata import version

        return version("scann")

    def build(self, base: np.ndarray, metric: str, threads: int) -> None:
        import scann

        self._start(base, metric)
        n = base.shape[0]
        builder = scann.scann_ops_pybind.builder(base, 10, "dot_product" if metric == "IP" else "squared_l2")
        builder = builder.tree(self.setup.nlist, max(1, self.setup.nlist // 20),
                               training_sample_size=min(n, self.setup.training_sample_size), **self.tree_options)
        # Anisotropic quantization is defined for dot products; ScaNN rejects nothing on L2 but
        # its default (NaN) there means plain reconstruction loss, as in anisoscan (threshold 0).
        threshold = 0.2 if metric == "IP" else float("nan")
        builder = builder.score_ah(self.setup.sub_dim, anisotropic_quantization_threshold=threshold,
                                   training_sample_size=min(n, self.setup.training_sample_size))
        if self.reorder:
            builder = builder.reorder(100)
        self.searcher = builder.set_n_training_threads(threads).build()
        self.threads = -1

    def sweep(self, k: int) -> list[Params]:
        if self.reorder:
            return _grid(self.setup.nprobes(), self.setup.reorder_ks(k))
        return [{"nprobe": p} for p in self.setup.nprobes()]

    def _pre_reorder(self, k: int, params: Params) -> int:
        return params.get("reorder_k", k) if self.reorder else k

    def search(self, queries: np.ndarray, k: int, params: Params, threads: int) -> np.ndarray:
        args = dict(final_num_neighbors=k, pre_reorder_num_neighbors=self._pre_reorder(k, params),
                    leaves_to_search=params["nprobe"])
        if threads == 1:
            ids, _ = self.searcher.search_batched(queries, **args)
        else:
            if threads != self.threads:
                self.searcher.set_num_threads(threads or os.cpu_count() or 1)
                self.threads = threads
            ids, _ = self.searcher.search_batched_parallel(queries, **args)
        return np.asarray(ids)

    def search_one(self, query: np.ndarray, k: int, params: Params) -> np.ndarray:
        ids, _ = self.searcher.search(query, final_num_neighbors=k,
                                      pre_reorder_num_neighbors=self._pre_reorder(k, params),
                                      leaves_to_search=params["nprobe"])
        return np.asarray(ids)

    def memory_bytes(self) -> int | None:
        """Size of the serialized searcher (its assets are what it keeps in memory)."""
        with tempfile.TemporaryDirectory(prefix="anisoscan-bench-scann-") as tmp:
            self.searcher.serialize(tmp)
            return sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())


class ScannSoar(Scann):
    name = "scann-soar"
    description = f"Google ScaNN with SOAR spilling (soar_lambda={SOAR_LAMBDA}) + exact reorder"
    tree_options: ClassVar[dict[str, Any]] = {"soar_lambda": SOAR_LAMBDA}

    @classmethod
    def not_for(cls, metric: str) -> str | None:
        return None if metric == "IP" else "ScaNN's SOAR takes dot products only"


class ScannNoReorder(Scann):
    name = "scann-noreorder"
    description = "Google ScaNN without reorder: ranked by the 4-bit AH codes alone"
    reorder = False
    codes_only = True


# --- faiss ----------------------------------------------------------------------------------


class _Faiss(Peer):
    package = "faiss"
    _omp_threads: ClassVar[int] = -1  # faiss's OpenMP thread count is process-wide

    def _set_threads(self, threads: int) -> None:
        n = threads or os.cpu_count() or 1
        if n != _Faiss._omp_threads:
            self.faiss.omp_set_num_threads(n)
            _Faiss._omp_threads = n

    def _quantizer(self) -> Any:
        return (self.faiss.IndexFlatIP if self.metric == "IP" else self.faiss.IndexFlatL2)(self.dim)

    @abc.abstractmethod
    def _make(self, metric: int) -> Any:
        """The untrained faiss index; sets self.ivf to its IVF part."""

    def build(self, base: np.ndarray, metric: str, threads: int) -> None:
        import faiss

        self.faiss = faiss
        self._start(base, metric)
        self._set_threads(threads)
        self.index = self._make(faiss.METRIC_INNER_PRODUCT if metric == "IP" else faiss.METRIC_L2)
        self.index.train(base)
        self.index.add(base)
        self._applied: Params | None = None

    def _apply(self, k: int, params: Params) -> None:
        if params != self._applied:
            self.ivf.nprobe = params["nprobe"]
            self._applied = dict(params)

    def search(self, queries: np.ndarray, k: int, params: Params, threads: int) -> np.ndarray:
        self._set_threads(threads)
        self._apply(k, params)
        _, ids = self.index.search(queries, k)
        return ids

    def search_one(self, query: np.ndarray, k: int, params: Params) -> np.ndarray:
        self._set_threads(1)
        self._apply(k, params)
        _, ids = self.index.search(query[None, :], k)
        return ids[0]

    def memory_bytes(self) -> int | None:
        return int(self.faiss.serialize_index(self.index).nbytes)

    def sweep(self, k: int) -> list[Params]:
        return [{"nprobe": p} for p in self.setup.nprobes()]


class FaissIvfPqFastScan(_Faiss):
    name = "faiss-ivfpqfs"
    description = "faiss IndexIVFPQFastScan (4-bit PQ, M=d/2, by_residual), ranked by codes alone"
    codes_only = True

    def _make(self, metric: int) -> Any:
        m = _pq_subspaces(self.dim, self.setup.sub_dim)
        self.quantizer = self._quantizer()  # faiss does not own it: keep it alive here
        self.ivf = self.faiss.IndexIVFPQFastScan(self.quantizer, self.dim, self.setup.nlist, m, 4, metric)
        self.ivf.by_residual = True
        return self.ivf


class FaissIvfPqFastScanRefine(FaissIvfPqFastScan):
    name = "faiss-ivfpqfs-refine"
    description = "faiss IndexIVFPQFastScan + IndexRefineFlat (exact rescoring of k_factor*k candidates)"
    codes_only = False

    def _make(self, metric: int) -> Any:
        return self.faiss.IndexRefineFlat(super()._make(metric))

    def _apply(self, k: int, params: Params) -> None:
        if params != self._applied:
            self.index.k_factor = params["reorder_k"] / k
        super()._apply(k, params)

    def sweep(self, k: int) -> list[Params]:
        return _grid(self.setup.nprobes(), self.setup.reorder_ks(k))


class FaissIvfPqFastScanRefineSQ8(FaissIvfPqFastScanRefine):
    """faiss's counterpart of refine_type=SQ8: the rescoring reads an 8-bit scalar-quantized copy."""

    name = "faiss-ivfpqfs-refine-sq8"
    description = "faiss IndexIVFPQFastScan + IndexRefine over IndexScalarQuantizer QT_8bit (k_factor*k candidates)"

    def _make(self, metric: int) -> Any:
        self.copy = self.faiss.IndexScalarQuantizer(self.dim, self.faiss.ScalarQuantizer.QT_8bit, metric)  # kept alive
        return self.faiss.IndexRefine(super(FaissIvfPqFastScanRefine, self)._make(metric), self.copy)


class FaissIvfFlat(_Faiss):
    name = "faiss-ivfflat"
    description = "faiss IndexIVFFlat (uncompressed vectors in the partitions)"

    def _make(self, metric: int) -> Any:
        self.quantizer = self._quantizer()
        self.ivf = self.faiss.IndexIVFFlat(self.quantizer, self.dim, self.setup.nlist, metric)
        return self.ivf


# --- HNSW -----------------------------------------------------------------------------------


class Hnswlib(Peer):
    name = "hnswlib"
    package = "hnswlib"
    description = "hnswlib HNSW graph over uncompressed vectors"

    @classmethod
    def version(cls) -> str:
        from importlib.metadata import version

        return version("hnswlib")

    def build(self, base: np.ndarray, metric: str, threads: int) -> None:
        import hnswlib

        self._start(base, metric)
        self.index = hnswlib.Index("ip" if metric == "IP" else "l2", self.dim)
        self.index.init_index(base.shape[0], M=self.setup.hnsw_m,
                              ef_construction=self.setup.hnsw_ef_construction, random_seed=0)
        self.index.add_items(base, np.arange(base.shape[0]), num_threads=threads or -1)
        self.ef = -1

    def sweep(self, k: int) -> list[Params]:
        return [{"ef": e} for e in self.setup.efs(k)]

    def _apply(self, params: Params) -> None:
        if params["ef"] != self.ef:
            self.index.set_ef(params["ef"])
            self.ef = params["ef"]

    def search(self, queries: np.ndarray, k: int, params: Params, threads: int) -> np.ndarray:
        self._apply(params)
        ids, _ = self.index.knn_query(queries, k, num_threads=threads or -1)
        return ids.astype(np.int64)

    def search_one(self, query: np.ndarray, k: int, params: Params) -> np.ndarray:
        self._apply(params)
        ids, _ = self.index.knn_query(query, k, num_threads=1)
        return ids[0]

    def memory_bytes(self) -> int | None:
        return int(self.index.index_file_size())


PEERS: dict[str, type[Peer]] = {p.name: p for p in (
    Anisoscan, AnisoscanDirect, AnisoscanSQ8, AnisoscanSoar, AnisoscanSoarSQ8, AnisoscanNoRaw, AnisoscanPlainPQ,
    AnisoscanAssignOnly, AnisoscanFixedThreshold,
    Scann, ScannSoar, ScannNoReorder,
    FaissIvfPqFastScan, FaissIvfPqFastScanRefine, FaissIvfPqFastScanRefineSQ8, FaissIvfFlat, Hnswlib)}


def default_nlist(n: int) -> int:
    """About 3.2 sqrt(n) partitions, at least 39 vectors each (faiss's k-means minimum),
    rounded to two significant digits: 399K -> 2000, 50K -> 720, 9K -> 230."""
    raw = max(1.0, min(3.2 * math.sqrt(n), n / 39))
    digits = max(0, int(math.floor(math.log10(raw))) - 1)
    return max(1, int(round(raw / 10**digits)) * 10**digits)


def available(names: list[str], metric: str) -> tuple[list[type[Peer]], dict[str, str]]:
    """The peers among names that can run here on the metric, and {name: why not} for the others."""
    unknown = [n for n in names if n not in PEERS]
    if unknown:
        raise ValueError(f"peers: unknown {unknown}; known: {', '.join(PEERS)}")
    runnable: list[type[Peer]] = []
    skipped: dict[str, str] = {}
    for name in names:
        why = PEERS[name].missing() or PEERS[name].not_for(metric)
        if why is None:
            runnable.append(PEERS[name])
        else:
            log.warning("skipping %s: %s", name, why)
            skipped[name] = why
    return runnable, skipped
