"""Memory, build time and batched QPS from one thread to all cores.

Memory is reported as a fraction of the raw float32 vectors, with and without raw data;
QPS is one batched search call over all queries at each thread count.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time

import numpy as np

from ..datasets import SOURCE_HELP, load, make_clustered
from ..index import Index
from ..metrics import recall_at_k
from ..params import option_help
from .workloads import prepare

log = logging.getLogger(__name__)


def thread_counts(cores: int) -> list[int]:
    counts, t = [], 1
    while t < cores:
        counts.append(t)
        t *= 2
    return counts + [cores]


def measure(base: np.ndarray, queries: np.ndarray, truth: np.ndarray, metric: str, nlist: int, nprobe: int,
            reorder_k: int, k: int = 10) -> dict:
    cores = os.cpu_count() or 1
    raw_bytes = base.nbytes
    report = {"n": len(base), "dim": base.shape[1], "cores": cores, "nlist": nlist, "nprobe": nprobe,
              "reorder_k": reorder_k, "indexes": {}}
    for with_raw in (True, False):
        entry: dict = {}
        for threads in (1, cores):
            index = Index(base.shape[1], metric, nlist=nlist, with_raw_data=with_raw, threads=threads)
            t0 = time.perf_counter()
            index.build(base)
            entry[f"build_s_{threads}_threads"] = time.perf_counter() - t0
        entry["memory_fraction_of_raw"] = index.memory_bytes / raw_bytes
        qps = {}
        for threads in thread_counts(cores):
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                ids, _ = index.search(queries, k, nprobe=nprobe, reorder_k=reorder_k, threads=threads)
                best = min(best, time.perf_counter() - t0)
            qps[threads] = len(queries) / best
            log.info("with_raw_data=%s threads=%d: %.0f QPS", with_raw, threads, qps[threads])
        entry["recall_at_10"] = recall_at_k(ids, truth, k)
        entry["batched_qps"] = qps
        entry["speedup_all_cores"] = qps[cores] / qps[1]
        report["indexes"]["raw" if with_raw else "codes_only"] = entry
    return report


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ds = load(args.dataset) if args.dataset else make_clustered(100_000, 64, n_queries=1000)
    w = prepare(ds, str(args.dataset or "generated"), 10)
    nlist = args.nlist or max(16, int(4 * np.sqrt(len(w.base))))
    report = measure(w.base, w.queries, w.truth, w.metric, nlist, args.nprobe, args.reorder_k)
    report["dataset"] = w.name
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{w.name}: n={report['n']:,} d={report['dim']} nlist={nlist} nprobe={args.nprobe}, {report['cores']} cores")
    for name, e in report["indexes"].items():
        qps = ", ".join(f"{t} thr {q:,.0f}" for t, q in e["batched_qps"].items())
        builds = ", ".join(f"{key.split('_')[2]} thr {val:.1f} s" for key, val in e.items() if key.startswith("build"))
        print(f"  {name:10} memory {e['memory_fraction_of_raw']:.3f} x raw, build {builds}, "
              f"recall@10 {e['recall_at_10']:.3f}, batched QPS {qps} ({e['speedup_all_cores']:.2f}x)")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", help=f"{SOURCE_HELP} (default: 100k x 64 generated)")
    p.add_argument("--nlist", type=int, default=0, help=option_help("nlist", "default 0: 4 x sqrt(rows)"))
    p.add_argument("--nprobe", type=int, default=32, help=option_help("nprobe", "default 32"))
    p.add_argument("--reorder-k", type=int, default=100, help=option_help("reorder_k", "default 100"))
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(run=run)
