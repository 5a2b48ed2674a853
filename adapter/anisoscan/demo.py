"""`anisoscan demo`: what a Milvus user tries first.

Creates a Milvus Lite collection from a real dataset (GloVe vectors shipped with the
package, or a folder in the benchmark format), attaches anisoscan to it, and compares
recall@10 and queries per second with Milvus's exact search, with and without raw data.
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .datasets import Dataset, load_folder, load_shipped
from .metrics import recall_at_k

log = logging.getLogger(__name__)


def _load(args: argparse.Namespace) -> Dataset:
    data = load_folder(args.dataset) if args.dataset else load_shipped()
    n = min(args.n or len(data.base), len(data.base))
    return Dataset(data.name, np.asarray(data.base[:n], np.float32), data.queries[: args.queries], data.metric)


def run(args: argparse.Namespace) -> int:
    try:
        from pymilvus import DataType, MilvusClient
    except ImportError:
        print("anisoscan demo needs pymilvus and milvus-lite: pip install 'anisoscan[milvus]'")
        return 2
    from .milvus import attach

    # Milvus Lite's in-process server logs calls it does not implement; they are harmless.
    logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
    logging.getLogger("pymilvus").setLevel(logging.ERROR)
    data = _load(args)
    metric, k = data.metric, args.k
    print(f"anisoscan demo: {data.name}, {len(data.base):,} x {data.dim} vectors, {len(data.queries)} queries, "
          f"metric {metric}")
    with tempfile.TemporaryDirectory() as tmp:
        mc = MilvusClient(str(Path(tmp) / "demo.db"))
        schema = mc.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=data.dim)
        index_params = mc.prepare_index_params()
        index_params.add_index("vector", index_type="FLAT", metric_type=metric)
        mc.create_collection("demo", schema=schema, index_params=index_params, consistency_level="Strong")
        with tqdm(total=len(data.base), desc="insert into Milvus Lite", unit="rows") as bar:
            for b in range(0, len(data.base), 2000):
                chunk = data.base[b:b + 2000]
                mc.insert("demo", [{"id": b + i, "vector": v.tolist()} for i, v in enumerate(chunk)])
                bar.update(len(chunk))

        t0 = time.perf_counter()
        exact = mc.search("demo", data=data.queries.tolist(), limit=k, search_params={"metric_type": metric})
        exact_qps = len(data.queries) / (time.perf_counter() - t0)
        truth = np.array([[hit["id"] for hit in hits] for hits in exact])
        print(f"  Milvus Lite exact search: {exact_qps:,.0f} queries/s (the ground truth)")

        nlist = args.nlist or max(8, int(2 * math.sqrt(len(data.base))))
        for with_raw in (True, False):
            params = {"index_type": "SCANN", "metric_type": metric,
                      "params": {"nlist": nlist, "with_raw_data": with_raw}}
            t0 = time.perf_counter()
            index = attach(mc, "demo", "vector", params)
            build_s = time.perf_counter() - t0
            search_params = {"params": {"nprobe": args.nprobe, "reorder_k": 4 * k}}
            t0 = time.perf_counter()
            hits = index.search(data.queries, limit=k, search_params=search_params)
            qps = len(data.queries) / (time.perf_counter() - t0)
            found = np.array([[h["id"] for h in row] + [-1] * (k - len(row)) for row in hits])
            print(f"  anisoscan SCANN with_raw_data={with_raw!s:5}: recall@{k} {recall_at_k(found, truth, k):.3f}, "
                  f"{qps:,.0f} queries/s ({qps / exact_qps:.1f}x exact), nlist {nlist}, nprobe {args.nprobe}, "
                  f"attach + build {build_s:.1f} s, {index.backend.index.memory_bytes / 2**20:.1f} MiB")
        mc.close()
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", help="a folder with base.npy, query.npy (default: the shipped GloVe sample)")
    p.add_argument("--n", type=int, default=0, help="use the first N base vectors (default: all)")
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--nlist", type=int, default=0, help="default: 2 * sqrt(n)")
    p.add_argument("--nprobe", type=int, default=16)
    p.add_argument("--k", type=int, default=10)
    p.set_defaults(func=run)
