"""anisoscan's SCANN next to Milvus Lite's own indexes, in one Milvus Lite database, through pymilvus.

Loads a dataset into a Milvus Lite collection (a flush every --segment-rows rows, so the
segments look like the ones compaction leaves, at most 100,000 rows), then for each index
type: create_index + load (the build), the size of its segment sidecars against the raw
vectors, and a sweep of its search parameters, each point timed batched (all queries in
one search call) and one query per call. Recall@k is against exact ground truth. Every
index is reached the same way, with plain pymilvus code, so the figures include Milvus
Lite's own per-search work (masks, merging, gRPC), which is the same for all of them.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..datasets import SOURCE_HELP, Dataset, load
from ..index import exact_search
from ..metrics import recall_at_k
from ..milvus import quiet_library_logs
from ..params import option_help
from .report import Panel, best_qps, machine_info, output_stem, plot_recall_qps, write_atomically, write_outputs

log = logging.getLogger(__name__)

COLLECTION, FIELD = "bench", "vector"


@dataclass(frozen=True)
class Contender:
    name: str
    index_type: str
    params: dict[str, Any]
    sweep: list[dict[str, Any]]  # search params, one point each
    codes_only: bool = False  # no raw vectors kept: recall is the codes'


def contenders(nlist: int, nprobes: list[int], reorder_k: list[int], efs: list[int]) -> list[Contender]:
    """FLAT (exact), Milvus Lite's faiss indexes and anisoscan's SCANN, at equal nlist and nprobe."""
    probes = [{"nprobe": p} for p in nprobes if p <= nlist]
    return [
        Contender("FLAT (Milvus Lite, exact)", "FLAT", {}, [{}]),
        Contender("HNSW (Milvus Lite, faiss)", "HNSW", {"M": 16, "efConstruction": 200}, [{"ef": e} for e in efs]),
        Contender("IVF_FLAT (Milvus Lite, faiss)", "IVF_FLAT", {"nlist": nlist}, probes),
        Contender("IVF_SQ8 (Milvus Lite, faiss)", "IVF_SQ8", {"nlist": nlist}, probes),
        Contender("SCANN (anisoscan)", "SCANN", {"nlist": nlist, "with_raw_data": True},
                  [{**p, "reorder_k": r} for p in probes for r in reorder_k]),
        Contender("SCANN codes only (anisoscan)", "SCANN", {"nlist": nlist, "with_raw_data": False}, probes,
                  codes_only=True),
    ]


@dataclass
class Point:
    params: dict[str, Any]
    recall: float
    qps_batched: float
    qps_single: float


@dataclass
class Result:
    name: str
    index_type: str
    params: dict[str, Any]
    codes_only: bool
    build_s: float
    index_bytes: int
    segments: int
    points: list[Point] = field(default_factory=list)


def open_client(path: Path) -> Any:
    """A MilvusClient on a Milvus Lite database at `path`, with anisoscan's SCANN registered."""
    from pymilvus import MilvusClient

    import anisoscan.milvus.lite  # noqa: F401 - registers SCANN

    return MilvusClient(str(path))


def load_collection(mc: Any, data: Dataset, segment_rows: int, batch: int = 5_000) -> None:
    """Creates the collection (int64 ids = row numbers) and inserts the base, flushing every segment_rows."""
    from pymilvus import DataType

    schema = mc.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field(FIELD, DataType.FLOAT_VECTOR, dim=data.dim)
    mc.create_collection(COLLECTION, schema=schema, consistency_level="Strong")
    with tqdm(total=len(data.base), desc="insert into Milvus Lite", unit="rows", unit_scale=True) as bar:
        for start in range(0, len(data.base), batch):
            chunk = np.asarray(data.base[start:start + batch], np.float32)
            mc.insert(COLLECTION, [{"id": start + i, FIELD: v} for i, v in enumerate(chunk.tolist())])
            bar.update(len(chunk))
            if (start + len(chunk)) % segment_rows == 0:
                mc.flush(COLLECTION)
    mc.flush(COLLECTION)


def _sidecars(db: Path, index_type: str) -> list[Path]:
    return list(db.rglob(f"*.{FIELD}.{index_type.lower()}.idx"))


def search_ids(mc: Any, queries: np.ndarray, k: int, metric: str, params: dict[str, Any]) -> np.ndarray:
    hits = mc.search(COLLECTION, data=queries.tolist(), limit=k, output_fields=["id"],
                     search_params={"metric_type": metric, "params": params})
    return np.array([[h["id"] for h in row] + [-1] * (k - len(row)) for row in hits], np.int64)


def measure(mc: Any, db: Path, data: Dataset, truth: np.ndarray, c: Contender, k: int, single_queries: int,
            repeats: int = 2) -> Result:
    """Builds c's index over the loaded collection and sweeps its search parameters."""
    ip = mc.prepare_index_params()
    ip.add_index(FIELD, index_type=c.index_type, metric_type=data.metric, params=c.params)
    t0 = time.perf_counter()
    mc.create_index(COLLECTION, ip)
    mc.load_collection(COLLECTION)
    build_s = time.perf_counter() - t0
    files = _sidecars(db, c.index_type)
    result = Result(c.name, c.index_type, c.params, c.codes_only, build_s, sum(f.stat().st_size for f in files),
                    len(files))
    for params in tqdm(c.sweep, desc=c.name, leave=False):
        batched = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            ids = search_ids(mc, data.queries, k, data.metric, params)
            batched = min(batched, time.perf_counter() - t0)
        single = data.queries[:single_queries]
        t0 = time.perf_counter()
        for q in single:
            search_ids(mc, q[None], k, data.metric, params)
        single_s = time.perf_counter() - t0
        result.points.append(Point(params, recall_at_k(ids, truth, k), len(data.queries) / batched,
                                   len(single) / single_s))
    mc.release_collection(COLLECTION)
    mc.drop_index(COLLECTION, FIELD)
    return result


def ground_truth(data: Dataset, k: int) -> np.ndarray:
    if data.ground_truth is not None and data.ground_truth.shape[1] >= k:
        return np.asarray(data.ground_truth[:, :k])
    return exact_search(np.asarray(data.base, np.float32), data.queries, k, data.metric)[0]


def compare(data: Dataset, chosen: list[Contender], k: int, segment_rows: int, single_queries: int,
            repeats: int = 2) -> list[Result]:
    """Every contender over the same collection in one temporary Milvus Lite database."""
    truth = ground_truth(data, k)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        mc = open_client(db)
        try:
            load_collection(mc, data, segment_rows)
            results = []
            for c in tqdm(chosen, desc="indexes", unit="index"):
                results.append(measure(mc, db, data, truth, c, k, single_queries, repeats))
                best = max(p.recall for p in results[-1].points)
                log.info("%s: build %.1f s, best recall@%d %.3f", c.name, results[-1].build_s, k, best)
        finally:
            mc.close()
    return results


def insert_stalls(index_type: str | None, n: int, dim: int, batch: int, params: dict[str, Any]) -> dict[str, Any]:
    """Seconds each insert call of `batch` rows takes while Milvus Lite flushes, builds segment
    indexes and compacts behind it; index_type None: a collection without a vector index."""
    from pymilvus import DataType

    rng = np.random.default_rng(0)
    latencies = []
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "writes.db"
        mc = open_client(db)
        schema = mc.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field(FIELD, DataType.FLOAT_VECTOR, dim=dim)
        ip = None
        if index_type:
            ip = mc.prepare_index_params()
            ip.add_index(FIELD, index_type=index_type, metric_type="IP", params=params)
        mc.create_collection(COLLECTION, schema=schema, index_params=ip)
        for start in tqdm(range(0, n, batch), desc=f"insert, {index_type or 'no index'}", unit="batch"):
            rows = [{"id": start + i, FIELD: v} for i, v in enumerate(rng.random((batch, dim), np.float32).tolist())]
            t0 = time.perf_counter()
            mc.insert(COLLECTION, rows)
            latencies.append(time.perf_counter() - t0)
        built = len(_sidecars(db, index_type)) if index_type else 0
        mc.close()
    lat = np.array(latencies)
    return {"index_type": index_type or "none", "n": n, "dim": dim, "batch": batch, "total_s": float(lat.sum()),
            "max_s": float(lat.max()), "p99_s": float(np.percentile(lat, 99)), "median_s": float(np.median(lat)),
            "segment_indexes_built": built}


# --- reporting ------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    d, k = report["dataset"], report["k"]
    raw = d["n"] * d["dim"] * 4
    scann = next(r for r in report["results"] if r["index_type"] == "SCANN" and not r["codes_only"])
    scann_qps = best_qps(scann["points"], 0.90, "qps_batched")
    lines = [
        f"### {d['name']} in Milvus Lite {report['milvus_lite']}: {d['n']:,} x {d['dim']}, {d['metric']}, "
        f"{d['nq']:,} queries, {report['segments']} segments",
        "",
        f"Batched: all {d['nq']:,} queries in one pymilvus search call; single: one query per call "
        f"({report['single_queries']} queries). Index size: the segments' index files against the raw "
        f"float32 vectors ({raw / 2**20:,.1f} MiB). Machine: {report['machine']['cpu']}, "
        f"{report['machine']['cores']} cores.",
        "",
        f"| index | build s | index MiB (x raw) | best recall@{k} | batched QPS @R≥0.90 | SCANN ahead by "
        f"| single QPS @R≥0.90 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        pts = r["points"]
        batched = best_qps(pts, 0.90, "qps_batched")
        single = best_qps(pts, 0.90, "qps_single")
        ahead = "—" if r is scann or batched is None or scann_qps is None else f"{scann_qps / batched:.2f}x"
        lines.append(
            f"| {r['name']} | {r['build_s']:.1f} | {r['index_bytes'] / 2**20:,.1f} ({r['index_bytes'] / raw:.3f}) | "
            f"{max(p['recall'] for p in pts):.3f} | {'—' if batched is None else f'{batched:,.0f}'} | {ahead} | "
            f"{'—' if single is None else f'{single:,.0f}'} |")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> bool:
    k, d = report["k"], report["dataset"]
    panels = (Panel("qps_batched", "recall", f"batched ({d['nq']:,} queries per call)"),
              Panel("qps_single", "recall", "one query per call"))
    title = f"{d['name']} ({d['n']:,} x {d['dim']}, {d['metric']}) in Milvus Lite {report['milvus_lite']}"
    return plot_recall_qps(path, report["results"], panels, k, "queries/s through pymilvus", title)


def write_report(report: dict[str, Any], out: Path) -> list[Path]:
    return write_outputs(report, out, "milvus-lite-" + output_stem(report["dataset"]["name"]), markdown, plot)


# --- command line ---------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from importlib import metadata

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    quiet_library_logs()
    data = load(args.dataset)
    n = min(args.n or len(data.base), len(data.base))
    base = np.asarray(data.base[:n], np.float32)
    gt = data.ground_truth[: args.queries] if data.ground_truth is not None and n == len(data.base) else None
    data = Dataset(data.name, base, np.asarray(data.queries[: args.queries], np.float32), data.metric, gt)
    chosen = contenders(args.nlist, args.nprobe, args.reorder_k, args.ef)
    results = compare(data, chosen, args.k, args.segment_rows, args.single_queries)
    report = {
        "dataset": {"name": data.name, "n": len(data.base), "dim": data.dim, "nq": len(data.queries),
                    "metric": data.metric},
        "k": args.k, "segments": results[0].segments, "single_queries": args.single_queries,
        "milvus_lite": metadata.version("milvus-lite"), "machine": machine_info([]),
        "results": [asdict(r) for r in results],
    }
    for path in write_report(report, Path(args.out)):
        log.info("wrote %s", path)
    print(markdown(report))
    return 0


def run_segments(args: argparse.Namespace) -> int:
    """Recall per segment size under the per-segment rule, against scaling nprobe down with nlist."""
    from ..milvus.segment_index import ScannSegmentIndex

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    data = load(args.dataset)
    queries = np.asarray(data.queries[: args.queries], np.float32)
    lines = [f"### Per-segment rule on {data.name}: nlist {args.nlist}, nprobe {args.nprobe}, "
             f"reorder_k {args.reorder_k}, recall@{args.k}", "",
             "| segment rows | partitions | nprobe clamped (the rule) | recall | nprobe scaled | recall |",
             "|---|---|---|---|---|---|"]
    for rows in args.rows:
        base = np.asarray(data.base[:rows], np.float32)
        truth = exact_search(base, queries, args.k, data.metric)[0]
        index = ScannSegmentIndex.build(base, data.metric, {"nlist": args.nlist})
        nlist = index.index.params.nlist
        cells = []
        for nprobe in (min(args.nprobe, nlist), max(1, math.ceil(args.nprobe * nlist / args.nlist))):
            ids, _ = index.search(queries, args.k, params={"nprobe": nprobe, "reorder_k": args.reorder_k})
            cells += [str(nprobe), f"{recall_at_k(ids, truth, args.k):.3f}"]
        lines.append(f"| {rows:,} | {nlist} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    return 0


def add_segments_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", help=f"{SOURCE_HELP} (default: the shipped GloVe sample)")
    p.add_argument("--rows", type=int, nargs="+", default=[2_000, 5_000, 10_000, 100_000], help="segment sizes")
    p.add_argument("--nlist", type=int, default=128,
                   help=option_help("nlist", "the collection's, a cap per segment (default 128)"))
    p.add_argument("--nprobe", type=int, default=8, help=option_help("nprobe", "default 8"))
    p.add_argument("--reorder-k", type=int, default=40, help=option_help("reorder_k", "default 40"))
    p.add_argument("--queries", type=int, default=300, help="queries searched (default 300)")
    p.add_argument("--k", type=int, default=10, help=option_help("k", "and of recall@k (default 10)"))
    p.set_defaults(run=run_segments)


def run_writes(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    quiet_library_logs()
    from milvus_lite.constants import MEMTABLE_MEMORY_LIMIT  # MILVUS_LITE_MEMTABLE_MEMORY_LIMIT_BYTES

    rows = [insert_stalls(t, args.n, args.dim, args.batch, {"nlist": 256} if t == "SCANN" else {})
            for t in (None, *args.index_types)]
    memtable_mb = MEMTABLE_MEMORY_LIMIT >> 20
    lines = [f"### Insert latency in Milvus Lite: {args.n:,} rows x {args.dim} in batches of {args.batch:,}, "
             f"memtable {memtable_mb} MB", "",
             "| index | total s | median s | p99 s | max s | segment indexes built meanwhile |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['index_type']} | {r['total_s']:.1f} | {r['median_s']:.3f} | {r['p99_s']:.3f} | {r['max_s']:.2f} | "
              f"{r['segment_indexes_built']} |" for r in rows]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"milvus-lite-inserts-memtable-{memtable_mb}mb"
    write_atomically(out / f"{stem}.json", lambda p: p.write_text(json.dumps(rows, indent=1) + "\n"))
    write_atomically(out / f"{stem}.md", lambda p: p.write_text("\n".join(lines) + "\n"))
    print("\n".join(lines))
    return 0


def add_writes_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int, default=1_000_000, help="rows to insert")
    p.add_argument("--dim", type=int, default=128, help="vector dimensions (default 128)")
    p.add_argument("--batch", type=int, default=10_000, help="rows per insert call")
    p.add_argument("--index-types", nargs="*", default=["SCANN", "HNSW"], help="indexes to compare with none")
    p.add_argument("--out", default="bench/results", help="folder for the .json and .md results")
    p.set_defaults(run=run_writes)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", help=f"{SOURCE_HELP} (default: the shipped GloVe sample)")
    p.add_argument("--n", type=int, default=0, help="use the first N base vectors (default: all)")
    p.add_argument("--queries", type=int, default=1000, help="queries searched batched (default 1000)")
    p.add_argument("--single-queries", type=int, default=50, help="queries searched one per call (default 50)")
    p.add_argument("--k", type=int, default=10, help=option_help("k", "of every search (default 10)"))
    p.add_argument("--segment-rows", type=int, default=100_000,
                   help="flush every N rows (Milvus Lite also flushes when its 128 MB memtable fills)")
    p.add_argument("--nlist", type=int, default=256,
                   help=option_help("nlist", "of IVF_FLAT, IVF_SQ8 and SCANN, per segment (default 256)"))
    p.add_argument("--nprobe", type=int, nargs="+", default=[4, 8, 16, 32, 64, 128],
                   help=option_help("nprobe", "swept (default 4 8 16 32 64 128)"))
    p.add_argument("--reorder-k", type=int, nargs="+", default=[40, 100],
                   help=option_help("reorder_k", "of SCANN, swept (default 40 100)"))
    p.add_argument("--ef", type=int, nargs="+", default=[16, 32, 64, 128, 256], help="HNSW ef sweep")
    p.add_argument("--out", default="bench/results", help="folder for the .json, .md and .png results")
    p.set_defaults(run=run)
