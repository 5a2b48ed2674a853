"""`python -m anisoscan.bench vdbbench`: VectorDBBench itself, the tool behind the published
SCANN numbers, drives three contenders in one run, on one real Milvus 2.3.5 server:

  anisoscan SCANN (front)   VectorDBBench's Milvus client pointed at `anisoscan front`,
                            plain and with spilled assignment (soar_lambda 1)
  Milvus SCANN, Milvus HNSW VectorDBBench's Milvus client pointed at the server itself

The dataset is written in VectorDBBench's custom Parquet layout (train/test/neighbors.parquet).
VectorDBBench needs pymilvus 2.x while anisoscan's tests use 3.x, so it runs in its own
virtualenv (--venv; made on first use). Its CLI has no SCANN command and its Milvus client's
pre-search step needs Milvus 2.5+; `vdbbench_driver.py` adds the one and adapts the other.
Each contender loads the data once, then is searched at each setting: serial recall and p99,
then QPS with 1, 5 and 10 client processes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..datasets import Dataset, save_vectordbbench
from .servers import MILVUS_VERSION, add_milvus_arguments, front_process, milvus_server, milvus_workload, write_results

log = logging.getLogger(__name__)

VDBBENCH = "vectordb-bench==2.0.0"
CONCURRENCY = (1, 5, 10)
DRIVER = Path(__file__).with_name("vdbbench_driver.py")


def ensure_venv(venv: Path) -> Path:
    """The python of a virtualenv holding VDBBENCH, made when missing."""
    python = venv / "bin" / "python"
    if not python.exists():
        log.info("installing %s into %s (once; about a minute)", VDBBENCH, venv)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", VDBBENCH], check=True)
    return python


def _contender_runs(nlist: int, nprobes: list[int], efs: list[int], k: int) -> list[tuple[str, bool, list[str]]]:
    """(label, through the front?, VectorDBBench command and index options) per search setting."""
    runs = []
    for label, front, build in (("anisoscan SCANN (front)", True, []),
                                ("anisoscan SCANN SOAR (front)", True, ["--soar-lambda", "1"]),
                                ("Milvus SCANN", False, [])):
        runs += [(label, front, ["milvusscann", "--nlist", str(nlist), *build, "--nprobe", str(p),
                                 "--reorder-k", str(4 * k)]) for p in nprobes]
    runs += [("Milvus HNSW", False, ["milvushnsw", "--m", "16", "--ef-construction", "200", "--ef-search", str(e)])
             for e in efs]
    return runs


def _vdbbench(python: Path, command: list[str], uri: str, collection: str, first: bool, dataset: Path,
              w: Any, k: int, seconds: int, results: Path, label: str, run_id: str) -> None:
    argv = [str(python), str(DRIVER), *command, "--uri", uri, "--collection-name", collection,
            "--case-type", "PerformanceCustomDataset", "--custom-case-name", w.name,
            "--custom-dataset-name", w.name, "--custom-dataset-dir", str(dataset),
            "--custom-dataset-size", str(len(w.base)), "--custom-dataset-dim", str(w.base.shape[1]),
            "--custom-dataset-metric-type", w.metric, "--custom-dataset-file-count", "1",
            "--k", str(k), "--num-concurrency", ",".join(map(str, CONCURRENCY)),
            "--concurrency-duration", str(seconds), "--db-label", label, "--task-label", run_id]
    if not first:
        argv += ["--skip-drop-old", "--skip-load"]
    env = {**os.environ, "RESULTS_LOCAL_DIR": str(results), "LOG_LEVEL": "WARNING",
           "LOG_FILE": str(results / "vectordb_bench.log")}
    log.info("VectorDBBench: %s %s", label, " ".join(command))
    subprocess.run(argv, check=True, env=env)


def _read_results(results: Path) -> list[dict[str, Any]]:
    """VectorDBBench's result files, one row per run, in the order they were written."""
    rows = []
    for path in sorted(results.rglob("result_*.json"), key=lambda p: p.name.split("_")[2]):  # by run id
        for r in json.loads(path.read_text())["results"]:
            m, task = r["metrics"], r["task_config"]
            rows.append({"label": task["db_config"]["db_label"],
                         "search": _search_params(task),
                         "recall": m["recall"], "serial_p99_ms": 1e3 * m["serial_latency_p99"],
                         "load_s": m.get("load_duration", 0.0),
                         **{f"qps_c{c}": q for c, q in zip(m["conc_num_list"], m["conc_qps_list"])}})
    return rows


def _search_params(task: dict[str, Any]) -> str:
    case = task["db_case_config"]
    keys = ("nprobe", "reorder_k") if "nprobe" in case else ("ef",)
    return ", ".join(f"{key} {case[key]}" for key in keys if key in case)


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# VectorDBBench {report['vdbbench']}: {report['dataset']} before Milvus {report['milvus_version']}",
             "", f"{report['n']:,} x {report['dim']}, metric {report['metric']}, {report['nq']} queries, "
             f"k {report['k']}, nlist {report['nlist']}. Serial search (one client) gives recall and p99; then "
             f"{', '.join(map(str, CONCURRENCY))} client processes for {report['seconds']} s each. "
             "Load = VectorDBBench's insert + optimize (build) time.", "",
             "| index | search | recall@k | serial p99 ms | " + " | ".join(f"QPS c{c}" for c in CONCURRENCY)
             + " | load s |", "|---|---|---|---|" + "---|" * len(CONCURRENCY) + "---|"]
    for r in report["runs"]:
        lines.append(f"| {r['label']} | {r['search']} | {r['recall']:.4f} | {r['serial_p99_ms']:.2f} | "
                     + " | ".join(f"{r.get(f'qps_c{c}', 0):,.0f}" for c in CONCURRENCY)
                     + f" | {r['load_s']:.0f} |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    python = ensure_venv(Path(args.venv).absolute())
    w, nlist = milvus_workload(args)
    results = Path(args.out).absolute() / f"vdbbench-{w.name}-raw"  # VectorDBBench's own result files
    nprobes = [max(1, nlist * f // 100) for f in (2, 8)]
    runs = _contender_runs(nlist, nprobes, [32, 128], args.k)
    t0 = time.perf_counter()
    with milvus_server() as (uri, tmp, _), front_process(uri, tmp / "front") as front_uri:
        dataset = save_vectordbbench(Dataset(w.name, w.base, w.queries, w.metric, w.truth), tmp / "dataset",
                                     k=args.k)
        loaded: set[str] = set()
        for i, (label, through_front, command) in enumerate(runs):
            collection = "vdb_" + "".join(ch for ch in label if ch.isalnum()).lower()
            _vdbbench(python, command, front_uri if through_front else uri, collection, label not in loaded,
                      dataset, w, args.k, args.seconds, results, label, f"run{i:02d}")
            loaded.add(label)
    report = {"vdbbench": VDBBENCH.split("==")[1], "dataset": w.name, "milvus_version": MILVUS_VERSION,
              "n": len(w.base), "dim": w.base.shape[1], "metric": w.metric, "nq": len(w.queries), "k": args.k,
              "nlist": nlist, "seconds": args.seconds, "wall_s": time.perf_counter() - t0,
              "runs": _read_results(results)}
    print(write_results(report, args.out, f"vdbbench-{w.name}", markdown))
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_milvus_arguments(p, queries=1000)
    p.add_argument("--seconds", type=int, default=10, help="seconds per concurrency level (default 10)")
    p.add_argument("--venv", default=".venv-vdbbench", help="VectorDBBench's own virtualenv (made when missing)")
    p.set_defaults(run=run)
