"""Insert latency and throughput through a real `anisoscan serve` process, batches of 1, 100 and 10,000 rows.

Every acknowledged insert is durable, so this measures what durability costs a client:
one gRPC round trip plus the node's log commit (an fsync) per call.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..datasets import make_clustered
from ..node.client import Client
from .servers import free_port

log = logging.getLogger(__name__)


def _wait_up(client: Client) -> None:
    for _ in range(300):
        try:
            client.list_indexes()
            return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.1)
    raise RuntimeError("the server did not start")


def measure(n: int, dim: int, batches: list[int], seconds: float, data_dir: Path | None) -> dict:
    data = make_clustered(n, dim, n_queries=1, metric="L2", seed=0)
    params = {"index_type": "SCANN", "metric_type": "L2", "params": {"nlist": 64, "with_raw_data": True}}
    rng = np.random.default_rng(1)
    port = free_port()
    with tempfile.TemporaryDirectory(dir=data_dir) as tmp:
        server = subprocess.Popen([sys.executable, "-m", "anisoscan.cli", "serve", "--data-dir", tmp,
                                   "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with Client(f"127.0.0.1:{port}") as client:
                _wait_up(client)
                client.create_index("bench", dim, params, vectors=data.base)
                next_id, rows = n, {}
                for batch in batches:
                    latencies: list[float] = []
                    started = time.perf_counter()
                    while len(latencies) < 5 or time.perf_counter() - started < seconds:
                        x = rng.standard_normal((batch, dim), dtype=np.float32)
                        ids = np.arange(next_id, next_id + batch)
                        next_id += batch
                        start = time.perf_counter()
                        client.insert("bench", x, ids)
                        latencies.append(time.perf_counter() - start)
                    calls, ms = len(latencies), 1e3 * np.array(latencies)
                    rows[str(batch)] = {"calls": calls, "p50_ms": float(np.median(ms)),
                                        "p99_ms": float(np.percentile(ms, 99)),
                                        "rows_per_s": batch * calls / float(np.sum(latencies))}
                    log.info("batch %5d: %4d calls, p50 %7.2f ms, p99 %7.2f ms, %9.0f rows/s", batch, calls,
                             rows[str(batch)]["p50_ms"], rows[str(batch)]["p99_ms"], rows[str(batch)]["rows_per_s"])
        finally:
            server.terminate()
            server.wait(timeout=60)
    return {"n": n, "dim": dim, "machine": platform.platform(), "batches": rows}


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    report = measure(args.n, args.dim, [int(b) for b in args.batches.split(",")], args.seconds, args.data_dir)
    report["label"] = args.label
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int, default=20_000, help="rows in the index before the inserts")
    p.add_argument("--dim", type=int, default=64, help="vector dimensions (default 64)")
    p.add_argument("--batches", default="1,100,10000", help="rows per insert call, comma-separated")
    p.add_argument("--seconds", type=float, default=3.0, help="time per batch size (at least 5 calls)")
    p.add_argument("--data-dir", type=Path, default=None, help="where the node's data lives (a temporary folder)")
    p.add_argument("--label", default="", help="a name for this run, kept in the report")
    p.add_argument("--out", type=Path, help="write the JSON report here")
    p.set_defaults(run=run)
