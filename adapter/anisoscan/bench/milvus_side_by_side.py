"""anisoscan SCANN next to a real Milvus server's own indexes, on the same data, in one run.

Starts the PyPI `milvus` package's standalone server (Milvus 2.3.5 with Knowhere's SCANN,
IVF_PQ and HNSW) in a temporary directory, loads a dataset into a collection, and sweeps
each Milvus index and anisoscan (in-process, with and without raw data) at matched
settings: the same nlist, the same 4-bit codes over 2-dimensional sub-spaces, the same
nprobe and reorder_k. Queries go in one batched call per sweep point for every index, so
all of them use every core.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

import numpy as np
from tqdm import tqdm

from ..index import Index
from ..metrics import recall_at_k
from .servers import MILVUS_VERSION, add_milvus_arguments, milvus_server, milvus_workload, write_results

log = logging.getLogger(__name__)


def milvus_indexes(dim: int, nlist: int) -> list[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    """(label, index params, search-params sweep) for each Milvus index; booleans as strings (2.3.5)."""
    m = dim // 2 if dim % 2 == 0 else dim
    nprobes = [max(1, nlist * f // 100) for f in (1, 2, 4, 8, 16)]
    scann_sweep = [{"nprobe": p, "reorder_k": r} for p in nprobes for r in (40, 100, 200)]
    return [
        ("Milvus SCANN (raw)", {"index_type": "SCANN", "params": {"nlist": nlist, "with_raw_data": "true"}},
         scann_sweep),
        ("Milvus SCANN (codes only)", {"index_type": "SCANN", "params": {"nlist": nlist, "with_raw_data": "false"}},
         [{"nprobe": p} for p in nprobes]),
        ("Milvus IVF_PQ", {"index_type": "IVF_PQ", "params": {"nlist": nlist, "m": m, "nbits": 8}},
         [{"nprobe": p} for p in nprobes]),
        ("Milvus HNSW", {"index_type": "HNSW", "params": {"M": 16, "efConstruction": 200}},
         [{"ef": e} for e in (16, 32, 64, 128, 256)]),
    ]


def _timed(fn: Any, repeats: int = 2) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def run_milvus(uri: str, base: np.ndarray, queries: np.ndarray, truth: np.ndarray, metric: str, nlist: int,
               k: int) -> list[dict[str, Any]]:
    from pymilvus import DataType, MilvusClient

    mc = MilvusClient(uri)
    schema = mc.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=base.shape[1])
    mc.create_collection("bench", schema=schema)
    for b in tqdm(range(0, len(base), 5000), desc="insert into Milvus", unit="batch"):
        chunk = base[b:b + 5000]
        mc.insert("bench", [{"id": b + i, "vector": v.tolist()} for i, v in enumerate(chunk)])
    mc.flush("bench")
    results = []
    for label, params, sweep in milvus_indexes(base.shape[1], nlist):
        ip = mc.prepare_index_params()
        ip.add_index("vector", metric_type=metric, **params)
        t0 = time.perf_counter()
        mc.create_index("bench", ip)
        mc.load_collection("bench")
        build_s = time.perf_counter() - t0
        points = []
        for sp in tqdm(sweep, desc=label, leave=False):
            wall, res = _timed(lambda sp=sp: mc.search("bench", data=queries.tolist(), limit=k,
                                                       search_params={"metric_type": metric, "params": sp}))
            ids = np.array([[h.id for h in hits] + [-1] * (k - len(hits)) for hits in res])
            points.append({"params": sp, "recall": recall_at_k(ids, truth, k), "qps": len(queries) / wall})
        results.append({"index": label, "build_s": build_s, "points": points})
        log.info("%s: best recall %.3f", label, max(p["recall"] for p in points))
        mc.release_collection("bench")
        mc.drop_index("bench", "vector")
    mc.drop_collection("bench")
    mc.close()
    return results


def run_anisoscan(base: np.ndarray, queries: np.ndarray, truth: np.ndarray, metric: str, nlist: int,
                  k: int) -> list[dict[str, Any]]:
    results = []
    for label, with_raw in (("anisoscan SCANN (raw)", True), ("anisoscan SCANN (codes only)", False)):
        index = Index(base.shape[1], metric, nlist=nlist, with_raw_data=with_raw)
        t0 = time.perf_counter()
        index.build(base)
        build_s = time.perf_counter() - t0
        sweep = milvus_indexes(base.shape[1], nlist)[0 if with_raw else 1][2]
        points = []
        for sp in sweep:
            wall, (ids, _) = _timed(lambda sp=sp, index=index: index.search(queries, k, **sp))
            points.append({"params": sp, "recall": recall_at_k(ids, truth, k), "qps": len(queries) / wall})
        results.append({"index": label, "build_s": build_s, "memory_bytes": index.memory_bytes, "points": points})
    return results


def best_at(points: list[dict[str, Any]], target: float) -> str:
    qps = [p["qps"] for p in points if p["recall"] >= target]
    return f"{max(qps):,.0f}" if qps else "-"


def markdown(report: dict[str, Any]) -> str:
    lines = [f"### {report['dataset']} ({report['n']:,} vectors, {report['nq']} queries, {report['metric']}, "
             f"nlist {report['nlist']}) on Milvus {report['milvus_version']}, batched QPS (all cores)", "",
             "| index | best recall@10 | QPS at >= 0.80 | QPS at >= 0.90 | QPS at >= 0.95 | build s |",
             "|---|---|---|---|---|---|"]
    for r in report["results"]:
        lines.append(f"| {r['index']} | {max(p['recall'] for p in r['points']):.3f} | "
                     f"{best_at(r['points'], 0.8)} | {best_at(r['points'], 0.9)} | {best_at(r['points'], 0.95)} | "
                     f"{r['build_s']:.1f} |")
    lines += ["", "Codes only, recall@10 at equal partitions searched:", "",
              "| nprobe | " + " | ".join(r["index"] for r in report["results"] if "codes only" in r["index"]) + " |",
              "|---|" + "---|" * sum("codes only" in r["index"] for r in report["results"])]
    codes = [r for r in report["results"] if "codes only" in r["index"]]
    for i, p in enumerate(codes[0]["points"]):
        lines.append(f"| {p['params']['nprobe']} | " + " | ".join(f"{r['points'][i]['recall']:.3f}" for r in codes)
                     + " |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("pymilvus").setLevel(logging.ERROR)
    w, nlist = milvus_workload(args)
    with milvus_server() as (uri, _, _):
        milvus = run_milvus(uri, w.base, w.queries, w.truth, w.metric, nlist, args.k)
    ours = run_anisoscan(w.base, w.queries, w.truth, w.metric, nlist, args.k)
    report = {"dataset": w.name, "n": len(w.base), "nq": len(w.queries), "metric": w.metric, "nlist": nlist,
              "milvus_version": MILVUS_VERSION, "results": ours + milvus}
    print(write_results(report, args.out, f"milvus-{w.name}", markdown))
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_milvus_arguments(p, queries=1000)
    p.set_defaults(run=run)
