"""`python -m anisoscan.bench front`: anisoscan's SCANN through the Milvus-protocol front
against the Milvus server it stands before, in one run, measured as VectorDBBench measures a
database: recall@k, serial latency (one client, one query per call: p50 and p99) and QPS
with 1, 5 and 10 concurrent client processes, each sending one query per call. The front runs
as its own process (`anisoscan front`), as in production.

Contenders, all reached with pymilvus MilvusClient on the same data and nlist:
  anisoscan SCANN (front)   the collection indexed SCANN through `anisoscan front`
  Milvus SCANN, Milvus HNSW the upstream's own Knowhere indexes, reached directly
Then where the front's time goes: the same queries on the front's node in-process, and a
forwarded search (Milvus HNSW through the front) against the same search sent straight to
Milvus. Last, the filter hand-off: filtered searches served inside the scan and by the
upstream, at selectivities from 0.1% to 20%.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..metrics import recall_at_k
from .servers import MILVUS_VERSION, add_milvus_arguments, front_process, milvus_server, milvus_workload, write_results

log = logging.getLogger(__name__)

BUCKETS = 1000  # the `bucket` field is row % BUCKETS: `bucket < b` passes b / BUCKETS of the rows
SELECTIVITIES = (0.001, 0.005, 0.01, 0.02, 0.05, 0.2)
CONCURRENCY = (1, 5, 10)


def _create(client: Any, name: str, base: np.ndarray, metric: str, index: dict[str, Any]) -> None:
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=base.shape[1])
    schema.add_field("bucket", DataType.INT64)
    client.create_collection(name, schema=schema)
    for b in range(0, len(base), 5000):
        rows = base[b:b + 5000]
        client.insert(name, [{"pk": b + i, "vector": v.tolist(), "bucket": (b + i) % BUCKETS}
                             for i, v in enumerate(rows)])
    client.flush(name)
    params = client.prepare_index_params()
    params.add_index("vector", metric_type=metric, **index)
    client.create_index(name, params)
    while (state := client.describe_index(name, "vector").get("state", "Finished")) != "Finished":
        if state not in ("InProgress", "Unissued"):
            raise RuntimeError(f"{name}: index {state}")
        time.sleep(0.5)
    client.load_collection(name)


def _search(client: Any, name: str, queries: np.ndarray, k: int, params: dict[str, Any], expr: str = "") -> list:
    res = client.search(name, data=queries.tolist(), limit=k, filter=expr, search_params={"params": params})
    return [[hit["id"] for hit in row] for row in res]


def _measure(uri: str, client: Any, name: str, queries: np.ndarray, truth: np.ndarray, k: int, params: dict[str, Any],
             seconds: float) -> dict[str, Any]:
    ids = np.array([row + [-1] * (k - len(row)) for row in _search(client, name, queries, k, params)])
    latencies = []
    for q in queries:
        t0 = time.perf_counter()
        _search(client, name, q[None, :], k, params)
        latencies.append(time.perf_counter() - t0)
    point: dict[str, Any] = {"params": params, "recall": recall_at_k(ids, truth, k),
                             "p50_ms": 1e3 * float(np.percentile(latencies, 50)),
                             "p99_ms": 1e3 * float(np.percentile(latencies, 99))}
    for c in CONCURRENCY:
        point[f"qps_c{c}"] = _concurrent_qps(uri, name, queries, k, params, c, seconds)
    return point


def _concurrent_qps(uri: str, name: str, queries: np.ndarray, k: int, params: dict[str, Any], clients: int,
                    seconds: float) -> float:
    """QPS of `clients` client processes (as VectorDBBench runs them), each connected before the clock starts."""
    ctx = multiprocessing.get_context("spawn")
    start, counts = ctx.Barrier(clients + 1), ctx.Queue()
    procs = [ctx.Process(target=_client_process, args=(uri, name, queries, k, params, 97 * i, seconds, start, counts))
             for i in range(clients)]
    for proc in procs:
        proc.start()
    start.wait(timeout=120)
    total = sum(counts.get(timeout=seconds + 120) for _ in procs)
    for proc in procs:
        proc.join()
    return total / seconds


def _client_process(uri: str, name: str, queries: np.ndarray, k: int, params: dict[str, Any], offset: int,
                    seconds: float, start: Any, counts: Any) -> None:
    from pymilvus import MilvusClient

    client = MilvusClient(uri)
    _search(client, name, queries[:1], k, params)
    start.wait(timeout=120)
    deadline, done = time.perf_counter() + seconds, 0
    while time.perf_counter() < deadline:
        _search(client, name, queries[(offset + done) % len(queries)][None, :], k, params)
        done += 1
    counts.put(done)


def _filter_handoff(client: Any, name: str, queries: np.ndarray, k: int,
                    params: dict[str, Any]) -> list[dict[str, Any]]:
    """Mean latency of a filtered search per selectivity: a new filter each call (the front
    hands it to the upstream's exact search), the same filter again (resolved once, then in
    the scan), and a new filter each call resolved first (what the scan path would cost)."""
    def mean_ms(calls: list[tuple[np.ndarray, str]]) -> float:
        t0 = time.perf_counter()
        for q, expression in calls:
            _search(client, name, q[None, :], k, params, expression)
        return 1e3 * (time.perf_counter() - t0) / len(calls)

    rows = []
    for s in SELECTIVITIES:
        expr = f"bucket < {max(1, round(s * BUCKETS))}"
        # Distinct expressions passing the same rows: `pk != -1 - i` excludes nothing.
        upstream = mean_ms([(q, f"{expr} and pk != {-1 - i}") for i, q in enumerate(queries)])
        for _ in range(2):  # the repeat resolves it
            _search(client, name, queries[:1], k, params, expr)
        scan = mean_ms([(q, expr) for q in queries])
        # Each new expression twice: the first call goes upstream, the second resolves and scans.
        pairs = mean_ms([(q, f"{expr} and pk != {-1_000_000 - i}") for i, q in enumerate(queries) for _ in range(2)])
        rows.append({"selectivity": s, "upstream_ms": upstream, "scan_ms": scan,
                     "scan_uncached_ms": 2 * pairs - upstream})
    return rows


def _where_time_goes(client: Any, direct: Any, queries: np.ndarray, k: int, params: dict[str, Any],
                     hnsw_params: dict[str, Any]) -> dict[str, float]:
    """Mean ms per call through the front, and for a forwarded search through the front and direct."""
    batch = time.perf_counter()
    _search(client, "bench_front", queries, k, params)
    batch = time.perf_counter() - batch
    return {
        "front_ms": _mean_ms(lambda q: _search(client, "bench_front", q[None, :], k, params), queries),
        "hnsw_through_front_ms": _mean_ms(lambda q: _search(client, "bench_hnsw", q[None, :], k, hnsw_params),
                                          queries),
        "hnsw_direct_ms": _mean_ms(lambda q: _search(direct, "bench_hnsw", q[None, :], k, hnsw_params), queries),
        "batch_front_ms_per_query": 1e3 * batch / len(queries),
    }


def _node_in_process(front_dir: Path, queries: np.ndarray, k: int, params: dict[str, Any]) -> dict[str, float]:
    """The same searches on the front's index opened in this process, once the front has stopped."""
    from ..milvus.front.store import FrontStore
    from ..node import IndexNode

    store = FrontStore(front_dir)
    node_name = next(r.node_name for r in store.records() if r.collection == "bench_front")
    store.close()
    node = IndexNode(front_dir / "node")
    try:
        str_params = {key: str(v) for key, v in params.items()}
        batch = time.perf_counter()
        node.search(node_name, queries, k, str_params)
        batch = time.perf_counter() - batch
        return {"node_in_process_ms": _mean_ms(lambda q: node.search(node_name, q[None, :], k, str_params), queries),
                "batch_node_ms_per_query": 1e3 * batch / len(queries)}
    finally:
        node.close()


def _mean_ms(fn: Any, queries: np.ndarray) -> float:
    fn(queries[0])
    t0 = time.perf_counter()
    for q in queries:
        fn(q)
    return 1e3 * (time.perf_counter() - t0) / len(queries)


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# anisoscan front before Milvus {report['milvus_version']}: {report['dataset']}", "",
             f"{report['n']:,} x {report['dim']} vectors, metric {report['metric']}, {report['nq']} queries, "
             f"nlist {report['nlist']}, k {report['k']}. One client: serial latency; then 1/5/10 client processes, "
             f"one query per call, for {report['seconds_per_concurrency']:g} s each. The front is its own process.", "",
             "| index | search params | recall@k | p50 ms | p99 ms | QPS c1 | QPS c5 | QPS c10 |",
             "|---|---|---|---|---|---|---|---|"]
    for label, points in report["contenders"].items():
        for p in points:
            lines.append(f"| {label} | {p['params']} | {p['recall']:.4f} | {p['p50_ms']:.2f} | {p['p99_ms']:.2f} | "
                         + " | ".join(f"{p[f'qps_c{c}']:,.0f}" for c in CONCURRENCY) + " |")
    t = report["where_time_goes"]
    lines += ["", "## Where a search's time goes (mean ms per one-query call)", "",
              f"- anisoscan SCANN through the front: {t['front_ms']:.2f}; the same on the node in-process: "
              f"{t['node_in_process_ms']:.3f} (the front adds {t['front_ms'] - t['node_in_process_ms']:.2f}: "
              "pymilvus, gRPC, translation, key mapping)",
              f"- Milvus HNSW through the front (forwarded bytes): {t['hnsw_through_front_ms']:.2f}; straight to "
              f"Milvus: {t['hnsw_direct_ms']:.2f} (forwarding adds "
              f"{t['hnsw_through_front_ms'] - t['hnsw_direct_ms']:.2f})",
              f"- all {report['nq']} queries in one call: {t['batch_front_ms_per_query']:.3f} ms per query through "
              f"the front, {t['batch_node_ms_per_query']:.3f} on the node in-process",
              "", "## Filter hand-off: mean ms per filtered one-query search", "",
              "| rows passing | a repeated filter: in the scan | a new filter resolved, then in the scan | "
              "a new filter: by the upstream (FLAT), what the front does |", "|---|---|---|---|"]
    lines += [f"| {r['selectivity']:.1%} | {r['scan_ms']:.2f} | {r['scan_uncached_ms']:.2f} | {r['upstream_ms']:.2f} |"
              for r in report["filters"]]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("pymilvus").setLevel(logging.ERROR)
    from pymilvus import MilvusClient


    w, nlist = milvus_workload(args)
    queries, truth = w.queries, w.truth
    nprobes = [max(1, nlist * f // 100) for f in (2, 4, 8)]
    scann = [{"nprobe": p, "reorder_k": 4 * args.k} for p in nprobes]
    hnsw = [{"ef": e} for e in (32, 64, 128)]
    with milvus_server() as (uri, tmp, _):
        with front_process(uri, tmp / "front") as front_uri:
            direct, through = MilvusClient(uri), MilvusClient(front_uri)
            log.info("loading %d x %d rows three times (front, Milvus SCANN, Milvus HNSW)", *w.base.shape)
            _create(through, "bench_front", w.base, w.metric,
                    {"index_type": "SCANN", "params": {"nlist": nlist, "with_raw_data": True}})
            _create(direct, "bench_scann", w.base, w.metric,
                    {"index_type": "SCANN", "params": {"nlist": nlist, "with_raw_data": "true"}})
            _create(direct, "bench_hnsw", w.base, w.metric,
                    {"index_type": "HNSW", "params": {"M": 16, "efConstruction": 200}})
            contenders: dict[str, list[dict[str, Any]]] = {}
            for label, target, name, sweep in (("anisoscan SCANN (front)", front_uri, "bench_front", scann),
                                               ("Milvus SCANN", uri, "bench_scann", scann),
                                               ("Milvus HNSW", uri, "bench_hnsw", hnsw)):
                contenders[label] = []
                client = through if target == front_uri else direct
                for params in sweep:
                    log.info("%s %s", label, params)
                    contenders[label].append(_measure(target, client, name, queries, truth, args.k, params,
                                                      args.seconds))
            where = _where_time_goes(through, direct, queries, args.k, scann[1], hnsw[1])
            filters = _filter_handoff(through, "bench_front", queries[:100], args.k, scann[1])
        where |= _node_in_process(tmp / "front", queries, args.k, scann[1])
        report = {"dataset": w.name, "n": len(w.base), "dim": w.base.shape[1], "metric": w.metric,
                  "nq": len(queries), "nlist": nlist, "k": args.k, "milvus_version": MILVUS_VERSION,
                  "seconds_per_concurrency": args.seconds, "contenders": contenders,
                  "where_time_goes": where, "filters": filters}
    print(write_results(report, args.out, f"front-{w.name}", markdown))
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_milvus_arguments(p, queries=300)
    p.add_argument("--seconds", type=float, default=3.0, help="seconds per concurrency level (default 3)")
    p.set_defaults(run=run)
