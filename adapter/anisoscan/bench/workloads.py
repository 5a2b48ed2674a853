"""The datasets a benchmark runs on, as the peers see them: float32 arrays, IP or L2, exact
ground truth, optionally subsampled (--quick)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..datasets import Dataset, load, make_clustered
from ..index import exact_search

log = logging.getLogger(__name__)

QUICK_BASE = 50_000
QUICK_QUERIES = 200
FULL_GENERATED_QUERIES = 1_000


@dataclass
class Workload:
    """A dataset as the peers see it: float32 arrays, IP or L2, exact ground truth."""

    name: str
    base: np.ndarray
    queries: np.ndarray
    truth: np.ndarray  # [nq, >= k] exact ids, best first
    metric: str  # "IP" or "L2" (COSINE data is normalized and searched by IP)
    source: str
    n_full: int  # base rows before --quick subsampling
    quick: bool = False


def prepare(ds: Dataset, source: str, k: int, quick: bool = False, seed: int = 0) -> Workload:
    """Float32 copies, COSINE -> normalized IP, --quick subsampling, ground truth when missing."""
    base = np.ascontiguousarray(ds.base, dtype=np.float32)
    queries = np.ascontiguousarray(ds.queries, dtype=np.float32)
    truth = ds.ground_truth
    metric = ds.metric.upper()
    if metric == "COSINE":
        base = base / np.maximum(np.linalg.norm(base, axis=1, keepdims=True), 1e-30)
        queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-30)
        metric = "IP"
    n_full = base.shape[0]
    if quick:
        rng = np.random.default_rng(seed)
        if base.shape[0] > QUICK_BASE:
            base = np.ascontiguousarray(base[np.sort(rng.choice(base.shape[0], QUICK_BASE, replace=False))])
            truth = None  # ids changed: recomputed below
        if queries.shape[0] > QUICK_QUERIES:
            rows = np.sort(rng.choice(queries.shape[0], QUICK_QUERIES, replace=False))
            queries = np.ascontiguousarray(queries[rows])
            truth = None if truth is None else truth[rows]
    if truth is None or truth.shape[1] < k:
        log.info("%s: exact top-%d for %d queries over %d vectors (ground truth)",
                 ds.name, k, queries.shape[0], base.shape[0])
        truth, _ = exact_search(base, queries, k, metric)
    name = f"{ds.name}-quick" if quick else ds.name
    return Workload(name, base, queries, np.asarray(truth)[:, :k], metric, source, n_full, quick)


def parse_generate(spec: str) -> tuple[int, int]:
    """Parses "N,DIM" into (N, DIM)."""
    try:
        n, dim = (int(x) for x in spec.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--generate: expected N,DIM (e.g. 50000,64), got {spec!r}") from None
    if n < 1 or dim < 1:
        raise argparse.ArgumentTypeError(f"--generate: N and DIM must be positive, got {spec!r}")
    return n, dim


def workloads(args: argparse.Namespace) -> Iterator[Workload]:
    """The datasets of the command line, one at a time (only one is held in memory)."""
    for path in args.dataset or []:
        yield prepare(load(path), str(path), args.k, args.quick)
    for n, dim in args.generate or []:
        nq = QUICK_QUERIES if args.quick else FULL_GENERATED_QUERIES
        ds = make_clustered(n, dim, n_queries=nq, metric=args.metric)
        yield prepare(ds, f"make_clustered({n}, {dim}, metric={args.metric!r})", args.k, args.quick)
