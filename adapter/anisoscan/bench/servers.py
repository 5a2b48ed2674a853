"""What the benchmarks that start servers share: a free port, a real Milvus server, the data
and options of the Milvus benchmarks, and how they write their results."""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..datasets import SOURCE_HELP, load
from ..params import option_help
from .workloads import Workload, prepare


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


MILVUS_VERSION = "2.3.5"  # of the PyPI `milvus` server milvus_server() starts (pyproject pins it)


@contextlib.contextmanager
def milvus_server() -> Iterator[tuple[str, Path, int]]:
    """A Milvus 2.3.5 standalone server (the PyPI `milvus` package) in a temporary folder:
    (its URI, the folder, for whatever else the benchmark keeps there, its process id).
    Stopped on exit."""
    from milvus import MilvusServer

    server = MilvusServer()
    with tempfile.TemporaryDirectory() as tmp:
        server.set_base_dir(tmp)
        server.listen_port = free_port()
        server.start()
        try:
            yield f"http://127.0.0.1:{server.listen_port}", Path(tmp), server.server_proc.pid
        finally:
            server.stop()


def resident_mib(pid: int) -> float:
    """A process's resident memory (VmRSS), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@contextlib.contextmanager
def front_process(upstream: str, data_dir: Path) -> Iterator[str]:
    """`anisoscan front` before `upstream` as its own process, as it runs in production (a front
    in the benchmark's process would share its interpreter lock with the benchmark's clients).
    Yields the front's URI; stopped on exit, its data kept in `data_dir`."""
    import grpc

    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = open(data_dir.parent / "front.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "anisoscan.cli", "front", "--milvus", upstream,
                             "--port", str(port), "--data-dir", str(data_dir), "--reconcile-interval", "0"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"anisoscan front did not start; see {log.name}")
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                try:
                    grpc.channel_ready_future(channel).result(timeout=0.5)
                    break
                except grpc.FutureTimeoutError:
                    pass
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def milvus_workload(args: argparse.Namespace) -> tuple[Workload, int]:
    """The dataset subsampled to --n rows and --queries queries, and the nlist to use."""
    ds = load(args.dataset)
    if args.n and len(ds.base) > args.n:
        rows = np.sort(np.random.default_rng(0).choice(len(ds.base), args.n, replace=False))
        ds.base, ds.ground_truth = np.asarray(ds.base)[rows], None
    ds.queries = ds.queries[: args.queries]
    if ds.ground_truth is not None:
        ds.ground_truth = ds.ground_truth[: args.queries]
    w = prepare(ds, str(args.dataset or "shipped"), args.k)
    return w, args.nlist or max(16, int(4 * np.sqrt(len(w.base))))


def add_milvus_arguments(p: argparse.ArgumentParser, queries: int) -> None:
    p.add_argument("--dataset", help=f"{SOURCE_HELP} (default: the shipped GloVe sample)")
    p.add_argument("--n", type=int, default=100_000, help="subsample the base to N vectors (default 100000; 0: all)")
    p.add_argument("--queries", type=int, default=queries, help=f"queries searched (default {queries})")
    p.add_argument("--nlist", type=int, default=0, help=option_help("nlist", "default 0: 4 x sqrt(rows)"))
    p.add_argument("--k", type=int, default=10, help=option_help("k", "default 10"))
    p.add_argument("--out", default="bench/results", help="folder for the results (default bench/results)")


def write_results(report: dict[str, Any], out: str, stem: str, markdown: Callable[[dict[str, Any]], str]) -> str:
    """<out>/<stem>.json and .md; returns the markdown."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    text = markdown(report)
    (folder / f"{stem}.json").write_text(json.dumps(report, indent=2))
    (folder / f"{stem}.md").write_text(text)
    return text
