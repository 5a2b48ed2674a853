"""Command line: `anisoscan demo` (the main job) and `anisoscan bench`."""

from __future__ import annotations

import argparse
import logging
import sys
import time

import numpy as np

from . import _core
from .datasets import make_clustered
from .index import Index, exact_search
from .metrics import recall_at_k


def demo(args: argparse.Namespace) -> int:
    """Builds an index over generated clustered data and compares it with exact search."""
    data = make_clustered(args.n, args.dim, n_queries=args.queries, metric=args.metric, seed=args.seed)
    print(f"anisoscan demo: {data.name}, metric {args.metric}, SIMD level {_core.simd_level()}")
    t0 = time.perf_counter()
    truth, _ = exact_search(data.base, data.queries, args.k, args.metric)
    exact_qps = len(data.queries) / (time.perf_counter() - t0)
    print(f"  exact search: {exact_qps:,.0f} queries/s (ground truth)")
    for with_raw in (True, False):
        index = Index(args.dim, args.metric, nlist=args.nlist, with_raw_data=with_raw)
        t0 = time.perf_counter()
        index.build(data.base)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ids, _ = index.search(data.queries, args.k, nprobe=args.nprobe, reorder_k=4 * args.k, threads=1)
        qps = len(data.queries) / (time.perf_counter() - t0)
        recall = recall_at_k(ids, truth, args.k)
        print(f"  SCANN with_raw_data={with_raw!s:5}: recall@{args.k} {recall:.3f}, {qps:,.0f} queries/s "
              f"(one thread, nprobe {args.nprobe}), build {build_s:.1f} s, "
              f"{index.memory_bytes / 2**20:.1f} MiB")
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(prog="anisoscan", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="build, search and compare with exact search on generated data")
    p.add_argument("--n", type=int, default=50_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--metric", choices=["IP", "L2", "COSINE"], default="IP")
    p.add_argument("--nlist", type=int, default=256)
    p.add_argument("--nprobe", type=int, default=16)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=demo)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())
