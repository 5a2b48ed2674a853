"""Queries per second through the gRPC node versus in-process, at batch sizes 1 and 100.

Starts a real `anisoscan serve` process on a free loopback port, builds the same index
in both places, and times identical searches in the same run.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..datasets import make_clustered
from ..index import Index
from ..node.client import Client
from .servers import free_port

log = logging.getLogger(__name__)


def _qps(search, queries: np.ndarray, batch: int, seconds: float) -> float:
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for b in range(0, len(queries), batch):
            search(queries[b:b + batch])
            done += len(queries[b:b + batch])
    return done / (time.perf_counter() - start)


def measure(n: int, dim: int, nq: int, seconds: float) -> dict:
    data = make_clustered(n, dim, n_queries=nq, metric="IP", seed=0)
    params = {"index_type": "SCANN", "metric_type": "IP", "params": {"nlist": 256, "with_raw_data": True}}
    search_params = {"nprobe": 16, "reorder_k": 40}
    local = Index.from_milvus_params(dim, params).build(data.base)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen([sys.executable, "-m", "anisoscan.cli", "serve", "--data-dir", str(Path(tmp)),
                                   "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with Client(f"127.0.0.1:{port}") as client:
                for _ in range(100):
                    try:
                        client.list_indexes()
                        break
                    except Exception:  # noqa: BLE001 - not up yet
                        time.sleep(0.1)
                client.create_index("bench", dim, params, vectors=data.base)
                rows = {}
                for batch in (1, 100):
                    in_process = _qps(lambda q: local.search(q, 10, **search_params, threads=1), data.queries,
                                      batch, seconds)
                    remote = _qps(lambda q: client.search("bench", q, 10, search_params), data.queries, batch,
                                  seconds)
                    rows[str(batch)] = {"in_process_qps": in_process, "grpc_qps": remote,
                                        "overhead_us_per_query": 1e6 * (1 / remote - 1 / in_process)}
                    log.info("batch %3d: in-process %8.0f QPS, gRPC %8.0f QPS", batch, in_process, remote)
        finally:
            server.terminate()
            server.wait(timeout=30)
    return {"n": n, "dim": dim, "search_params": search_params, "batches": rows}


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    report = measure(args.n, args.dim, args.queries, args.seconds)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"gRPC vs in-process, {report['n']} x {report['dim']} IP, one client thread")
        print(f"{'batch':>5} {'in-process QPS':>15} {'gRPC QPS':>10} {'overhead us/query':>18}")
        for batch, r in report["batches"].items():
            print(f"{batch:>5} {r['in_process_qps']:15.0f} {r['grpc_qps']:10.0f} {r['overhead_us_per_query']:18.1f}")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int, default=50_000, help="rows indexed (default 50,000)")
    p.add_argument("--dim", type=int, default=64, help="vector dimensions (default 64)")
    p.add_argument("--queries", type=int, default=500, help="queries per measurement (default 500)")
    p.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(run=run)
