"""Costs that grow with the index but should not: one-row delete, upsert and get_vectors, a duplicate
check on add, and the filter of a filtered search, on an index of --n rows (in-process, one thread).

Each operation is timed as the fastest of --repeats runs; the filtered search is compared with the
same search unfiltered, so the difference is the filter's own cost.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..datasets import make_clustered
from ..index import Index
from ..params import option_help

log = logging.getLogger(__name__)


def _fastest(fn: Callable[[], Any], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(n: int, dim: int, nlist: int, repeats: int) -> dict[str, float]:
    """Milliseconds per operation (the fastest run), and the memory the index holds after them."""
    data = make_clustered(n, dim, n_queries=10, seed=0)
    t0 = time.perf_counter()
    index = Index(dim, "IP", nlist=nlist, threads=1).build(data.base)
    log.info("built %d x %d in %.1f s", n, dim, time.perf_counter() - t0)
    rng = np.random.default_rng(1)
    one = data.base[:1]
    victims = iter(rng.permutation(n)[: 4 * repeats])

    def delete_one() -> None:
        i = int(next(victims))
        index.delete([i])
        index.add(data.base[i:i + 1], [i])  # put it back so the size stays n

    t0 = time.perf_counter()
    index.contains([0])  # the first id lookup after a build (builds the id map where there is one)
    first_lookup_s = time.perf_counter() - t0
    allowed = np.sort(rng.choice(n, n // 100, replace=False))
    q = data.queries[:1]
    search = {"k": 10, "nprobe": 16, "threads": 1}
    return {
        "first_lookup_ms": 1e3 * first_lookup_s,
        "delete_then_add_one_ms": 1e3 * _fastest(delete_one, repeats),
        "upsert_one_ms": 1e3 * _fastest(lambda: index.upsert(one, [0]), repeats),
        "get_vectors_one_ms": 1e3 * _fastest(lambda: index.get_vectors([n // 2]), repeats),
        "search_ms": 1e3 * _fastest(lambda: index.search(q, **search), repeats),
        "search_1pct_allowed_ms": 1e3 * _fastest(lambda: index.search(q, allowed_ids=allowed, **search), repeats),
        "search_1pct_excluded_ms": 1e3 * _fastest(lambda: index.search(q, excluded_ids=allowed, **search), repeats),
        "memory_bytes_per_row": index.memory_bytes / n,
    }


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = {"n": args.n, "dim": args.dim, "nlist": args.nlist, "label": args.label,
              **measure(args.n, args.dim, args.nlist, args.repeats)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"updates-{args.label}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int, default=1_000_000, help="rows in the index (default 1,000,000)")
    p.add_argument("--dim", type=int, default=32, help="dimensions of the clustered synthetic vectors (default 32)")
    p.add_argument("--nlist", type=int, default=1000, help=option_help("nlist", "default 1000"))
    p.add_argument("--repeats", type=int, default=5, help="runs per operation; the fastest counts (default 5)")
    p.add_argument("--label", default="now", help="names the output file updates-LABEL.json")
    p.add_argument("--out", default="bench/results/updates", help="output folder (default bench/results/updates)")
    p.set_defaults(run=run)
