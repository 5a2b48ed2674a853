"""`anisoscan demo`: SCANN inside Milvus Lite, next to Milvus Lite's own indexes, through plain pymilvus.

Loads real vectors (10,000 GloVe word vectors shipped with the package, or a folder in
the benchmark format) into a Milvus Lite collection, then for each index type runs
create_index, load and search with pymilvus, and prints recall@k against exact search,
queries per second and index size. SCANN is anisoscan, registered in Milvus Lite by
`import anisoscan.milvus.lite`; HNSW, IVF_FLAT and IVF_SQ8 are Milvus Lite's (faiss).
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

from .bench.milvus_lite import compare, contenders
from .datasets import SOURCE_HELP, Dataset, load
from .milvus import quiet_library_logs
from .params import option_help


def _load(args: argparse.Namespace) -> Dataset:
    data = load(args.dataset)
    n = min(args.n or len(data.base), len(data.base))
    return Dataset(data.name, np.asarray(data.base[:n], np.float32), np.asarray(data.queries[: args.queries]),
                   data.metric)


def run(args: argparse.Namespace) -> int:
    quiet_library_logs()  # before the imports: faiss logs as it loads
    try:
        import milvus_lite  # noqa: F401
        import pymilvus  # noqa: F401
    except ImportError:
        print("anisoscan demo needs pymilvus and milvus-lite: pip install 'anisoscan[milvus]'")
        return 2
    logging.getLogger("anisoscan").setLevel(logging.WARNING)
    data = _load(args)
    k = args.k
    print(f"anisoscan demo: {data.name}, {len(data.base):,} x {data.dim} vectors in Milvus Lite, "
          f"{len(data.queries)} queries, metric {data.metric}, limit {k}")
    chosen = contenders(args.nlist, [args.nprobe], [args.reorder_k], [args.ef])
    results = compare(data, chosen, k, segment_rows=len(data.base), single_queries=args.single_queries)
    raw = data.base.nbytes
    print(f"\n  {'index (create_index through pymilvus)':<32} {'search params':<28} {'recall@' + str(k):>9} "
          f"{'batched q/s':>12} {'1-query q/s':>12} {'build s':>8} {'size vs raw':>12}")
    for r in results:
        p = r.points[0]
        params = ", ".join(f"{key}={value}" for key, value in p.params.items()) or "(exact)"
        print(f"  {r.name:<32} {params:<28} {p.recall:>9.3f} {p.qps_batched:>12,.0f} {p.qps_single:>12,.0f} "
              f"{r.build_s:>8.1f} {r.index_bytes / raw:>11.2f}x")
    print("\n  One-query-per-call rates are bound by Milvus Lite's own per-call work; FLAT's rate shows that "
          "ceiling.\n  Benchmarks on larger data: python -m anisoscan.bench lite --help")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", help=f"{SOURCE_HELP} (default: the shipped GloVe sample)")
    p.add_argument("--n", type=int, default=0, help="use the first N base vectors (default: all)")
    p.add_argument("--queries", type=int, default=200, help="queries searched batched")
    p.add_argument("--single-queries", type=int, default=50, help="queries searched one per call")
    p.add_argument("--nlist", type=int, default=128,
                   help=option_help("nlist", "of IVF_FLAT, IVF_SQ8 and SCANN (default 128)"))
    p.add_argument("--nprobe", type=int, default=16,
                   help=option_help("nprobe", "of IVF_FLAT, IVF_SQ8 and SCANN (default 16)"))
    p.add_argument("--reorder-k", type=int, default=40, help=option_help("reorder_k", "of SCANN (default 40)"))
    p.add_argument("--ef", type=int, default=64, help="HNSW ef")
    p.add_argument("--k", type=int, default=10, help=option_help("k", "of every search (default 10)"))
    p.set_defaults(func=run)
