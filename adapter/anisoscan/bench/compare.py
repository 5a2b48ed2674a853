"""`python -m anisoscan.bench compare`: anisoscan against ScaNN, faiss and HNSW, on the same data.

For every dataset and index: build time, memory, and for every sweep point recall@k with
queries/s on one thread (one query per call, as a database serving single requests sees it)
and batched (all queries in one call, on all cores). Writes to --out:
  <dataset>.json  every point, plus the machine and library versions
  <dataset>.md    best QPS at recall@k >= 0.80 / 0.90 / 0.95, and equal-parameters tables
  <dataset>.png   recall@k (x) against QPS (log y), one line (Pareto frontier) per index
With --quick the base is subsampled (and ground truth recomputed), sweeps are short, and the
files are named <dataset>-quick.* so that they never replace the results of a full run.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..datasets import SOURCE_HELP
from ..metrics import recall_at_k
from ..params import option_help
from . import peers as peers_mod
from .peers import PEERS, Params, Peer, Setup
from .report import Panel, best_qps, machine_info, output_stem, plot_recall_qps, write_outputs
from .workloads import QUICK_BASE, QUICK_QUERIES, Workload, parse_generate, workloads

log = logging.getLogger(__name__)

RECALL_TARGETS = (0.80, 0.90, 0.95, 0.99)
# A sweep point is skipped once a point with no larger parameter reached this recall.
SATURATED_RECALL = 0.999
MAX_PASSES = 10


@dataclass
class Point:
    params: Params
    recall: float  # recall@k of the one-query-per-call results
    qps: float  # one thread, one query per call: nq / sum over queries of each one's fastest call
    qps_pass: float  # one thread: nq / the fastest whole pass over the queries (Python loop included)
    recall_batched: float
    qps_batched: float  # all queries in one call on all threads: nq / the fastest call


@dataclass
class IndexResult:
    name: str
    description: str
    version: str
    codes_only: bool
    build_s: float  # wall clock, all threads
    build_cpu_s: float  # CPU seconds, all threads
    memory_bytes: int | None
    points: list[Point] = field(default_factory=list)


# --- measuring ------------------------------------------------------------------------------


def _ids(rows: Any, nq: int, k: int) -> np.ndarray:
    """[nq, k] int64 ids from whatever a peer returned, -1 where it found fewer than k."""
    out = np.full((nq, k), -1, dtype=np.int64)
    for i, row in enumerate(rows):
        row = np.asarray(row).ravel()[:k]
        out[i, : len(row)] = row
    return out


@dataclass(frozen=True)
class TimingPlan:
    """How often each sweep point is timed; the best rates are kept."""

    rounds: int = 1  # passes over the sweeps of all indexes
    repeats: int = 1  # passes over the queries per point and round, at least
    min_seconds: float = 0.0  # more passes (at most MAX_PASSES) until they add up to this

    @classmethod
    def default(cls, quick: bool) -> TimingPlan:
        return cls(2, 1, 0.05) if quick else cls(4, 1, 0.05)


@dataclass
class Timing:
    wall_s: float
    cpu_s: float  # CPU seconds of this process, all threads


def best_time(fn: Any, repeats: int, min_seconds: float) -> tuple[Timing, Any]:
    """Best wall and CPU times of fn() over at least `repeats` calls, more while they add up to
    less than min_seconds (at most MAX_PASSES): short passes on a shared machine are noisy.
    Also returns fn's (last) result."""
    best, total, passes, result = Timing(math.inf, math.inf), 0.0, 0, None
    while passes < repeats or (total < min_seconds and passes < MAX_PASSES):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        result = fn()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        best = Timing(min(best.wall_s, wall), min(best.cpu_s, cpu))
        total, passes = total + wall, passes + 1
    return best, result


@dataclass
class Samples:
    """The fastest times seen so far at one sweep point, over all passes and rounds."""

    latency_s: np.ndarray  # [nq] each query's fastest one-query call
    pass_s: float = math.inf  # fastest whole pass, one query per call
    batched_s: float = math.inf  # fastest batched call


def measure(peer: Peer, w: Workload, k: int, params: Params, threads: int, plan: TimingPlan,
            samples: Samples | None = None) -> tuple[Point, Samples]:
    """Recall and QPS at one sweep point: one query per call on this thread, then batched.

    One-thread QPS counts each query at its fastest call over all passes (and earlier rounds,
    through `samples`): on a shared or virtualized machine, single calls are slowed 2-10x at
    random by other work, and the per-query minimum is the stable estimate of what a call costs.
    """
    nq = w.queries.shape[0]
    s = samples or Samples(np.full(nq, math.inf))
    clock = time.perf_counter

    def one_pass() -> tuple[float, np.ndarray, list[np.ndarray]]:
        latency, rows = np.empty(nq), []
        start = clock()
        for i, q in enumerate(w.queries):
            t0 = clock()
            rows.append(peer.search_one(q, k, params))
            latency[i] = clock() - t0
        return clock() - start, latency, rows

    spent, passes = 0.0, 0
    while passes < plan.repeats or (spent < plan.min_seconds and passes < MAX_PASSES):
        took, latency, rows = one_pass()
        np.minimum(s.latency_s, latency, out=s.latency_s)
        s.pass_s = min(s.pass_s, took)
        spent, passes = spent + took, passes + 1
    batched, found = best_time(lambda: peer.search(w.queries, k, params, threads), plan.repeats,
                               plan.min_seconds)
    s.batched_s = min(s.batched_s, batched.wall_s)
    point = Point(dict(params), recall_at_k(_ids(rows, nq, k), w.truth, k), nq / float(s.latency_s.sum()),
                  nq / s.pass_s, recall_at_k(_ids(found, nq, k), w.truth, k), nq / s.batched_s)
    return point, s


def saturated(points: list[Point], params: Params) -> bool:
    """True when a point searched with no larger parameter already reached SATURATED_RECALL:
    more effort cannot buy recall there, only time."""
    return any(p.recall >= SATURATED_RECALL and all(p.params[key] <= params[key] for key in params)
               for p in points)


@dataclass
class _Run:
    """One built index and what its sweep has measured so far."""

    peer: Peer
    result: IndexResult
    sweep: list[Params]
    points: dict[int, Point] = field(default_factory=dict)
    samples: dict[int, Samples] = field(default_factory=dict)


def build(peer: Peer, w: Workload, threads: int) -> IndexResult:
    built, _ = best_time(lambda: peer.build(w.base, w.metric, threads), 1, 0.0)
    memory = peer.memory_bytes()
    log.info("%s: built in %.1f s (%.1f CPU s), %s", peer.name, built.wall_s, built.cpu_s,
             "memory unknown" if memory is None else f"{memory / 2**20:.1f} MiB")
    return IndexResult(peer.name, peer.description, type(peer).version(), peer.codes_only,
                       built.wall_s, built.cpu_s, memory)


def sweep_once(run: _Run, w: Workload, k: int, threads: int, timing: TimingPlan, first: bool,
               step: Any) -> None:
    """One round over an index's sweep; the first round also decides which points to skip."""
    for i, params in enumerate(run.sweep):
        step()
        if (first and saturated(list(run.points.values()), params)) or (not first and i not in run.points):
            continue
        run.points[i], run.samples[i] = measure(run.peer, w, k, params, threads, timing, run.samples.get(i))


def compare(w: Workload, names: list[str], setup: Setup, k: int = 10, threads: int = 0,
            timing: TimingPlan | None = None, progress: bool = True) -> dict[str, Any]:
    """Builds every available peer, then measures all their sweeps `timing.rounds` times over,
    keeping the fastest times: rounds interleave the indexes, so each point is timed at moments
    minutes apart and a burst of other work on the machine spoils only some of its samples.
    All indexes are held in memory together. Returns the report that write_report saves."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    timing = timing or TimingPlan()
    started = time.time()
    kinds, skipped = peers_mod.available(names, w.metric)
    machine = machine_info(kinds)
    runs: list[_Run] = []
    with logging_redirect_tqdm():
        for kind in tqdm(kinds, desc=f"{w.name}: build", unit="index", file=sys.stderr,
                         disable=not progress):
            peer = kind(setup)
            try:
                runs.append(_Run(peer, build(peer, w, threads), peer.sweep(k)))
            except Exception as e:  # noqa: BLE001 - one broken peer must not sink the run
                log.exception("%s failed to build; skipping it", kind.name)
                skipped[kind.name] = f"build failed: {type(e).__name__}: {e}"
        bar = tqdm(total=sum(len(r.sweep) for r in runs) * timing.rounds, desc=f"{w.name}: search",
                   unit="point", file=sys.stderr, disable=not progress)
        for round_ in range(timing.rounds):
            for run in list(runs):
                bar.set_postfix_str(f"round {round_ + 1}/{timing.rounds}, {run.peer.name}")
                try:
                    sweep_once(run, w, k, threads, timing, round_ == 0, bar.update)
                except Exception as e:  # noqa: BLE001
                    log.exception("%s failed to search; skipping it", run.peer.name)
                    skipped[run.peer.name] = f"search failed: {type(e).__name__}: {e}"
                    runs.remove(run)
        bar.close()
    results = []
    for run in runs:
        run.result.points = [run.points[i] for i in sorted(run.points)]
        best = max(run.result.points, key=lambda p: p.recall)
        log.info("%s: %d points, best recall@%d %.4f at %s (%.0f QPS one thread)",
                 run.peer.name, len(run.result.points), k, best.recall, best.params, best.qps)
        results.append(run.result)
    del runs
    gc.collect()
    machine["load_average_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return {
        "dataset": {"name": w.name, "source": w.source, "n": int(w.base.shape[0]), "n_full": w.n_full,
                    "nq": int(w.queries.shape[0]), "dim": int(w.base.shape[1]), "metric": w.metric,
                    "k": k, "quick": w.quick},
        "setup": {**dataclasses.asdict(setup), "threads": threads or os.cpu_count(),
                  "timing": dataclasses.asdict(timing)},
        "machine": machine,
        "indexes": [dataclasses.asdict(r) for r in results],
        "skipped": skipped,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "elapsed_s": round(time.time() - started, 1),
    }


# --- reporting ------------------------------------------------------------------------------


def _fmt_qps(q: float | None) -> str:
    return "—" if q is None else f"{q:,.0f}"


def _fmt_load(load: list[float] | None) -> str:
    return "?" if not load else ", ".join(f"{x:.2f}" for x in load)


def summary_table(report: dict[str, Any]) -> str:
    """Per index: best QPS at the recall targets (one thread, and batched at 0.90), build, memory."""
    k = report["dataset"]["k"]
    head = (["index", "build s (CPU s)", "memory MiB"] + [f"1-thread QPS @R{k}≥{t:.2f}" for t in RECALL_TARGETS]
            + [f"batched QPS @R{k}≥0.90", f"max recall@{k}", "codes-only max recall"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report["indexes"]:
        pts = r["points"]
        mem = "—" if r["memory_bytes"] is None else f"{r['memory_bytes'] / 2**20:,.1f}"
        top = max((p["recall"] for p in pts), default=float("nan"))
        cells = ([r["name"], f"{r['build_s']:.1f} ({r['build_cpu_s']:.0f})", mem]
                 + [_fmt_qps(best_qps(pts, t)) for t in RECALL_TARGETS]
                 + [_fmt_qps(best_qps(pts, 0.90, "qps_batched", "recall_batched")), f"{top:.4f}",
                    f"{top:.4f}" if r["codes_only"] else "—"])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def equal_params_tables(report: dict[str, Any]) -> str:
    """Indexes searched with the same parameters side by side: recall@k / one-thread QPS."""
    k = report["dataset"]["k"]
    nlist = report["setup"]["nlist"]
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in report["indexes"]:
        if r["points"]:
            groups.setdefault(tuple(r["points"][0]["params"]), []).append(r)
    sections = []
    titles = {("nprobe",): f"Equal partitions searched (nprobe of nlist={nlist}): "
                           f"codes-only recall@{k} / one-thread QPS",
              ("nprobe", "reorder_k"): f"Equal partitions and reorder_k: recall@{k} / one-thread QPS"}
    for keys, members in groups.items():
        if len(members) < 2:
            continue
        combos = sorted({tuple(p["params"][key] for key in keys) for r in members for p in r["points"]})
        head = list(keys) + [r["name"] + (" (codes)" if r["codes_only"] else "") for r in members]
        lines = [f"### {titles.get(keys, ' and '.join(keys))}", "",
                 "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for combo in combos:
            cells = [str(c) for c in combo]
            for r in members:
                p = next((p for p in r["points"] if tuple(p["params"][key] for key in keys) == combo), None)
                cells.append("—" if p is None else f"{p['recall']:.4f} / {p['qps']:,.0f}")
            lines.append("| " + " | ".join(cells) + " |")
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


def markdown(report: dict[str, Any]) -> str:
    d, m, s = report["dataset"], report["machine"], report["setup"]
    t = s["timing"]
    k = d["k"]
    sub = f" (quick: {d['n']:,} of {d['n_full']:,} base vectors)" if d["quick"] else ""
    lines = [
        f"# {d['name']}: recall@{k} against queries/s",
        "",
        f"{d['n']:,} x {d['dim']} vectors, metric {d['metric']}, {d['nq']:,} queries{sub}; "
        f"nlist (ScaNN num_leaves) {s['nlist']} for every IVF peer, 4-bit codes over "
        f"{s['sub_dim']} dimensions each.",
        f"Machine: {m['cpu']}, {m['cores']} cores, anisoscan SIMD {m['anisoscan_simd_level']}; "
        f"load average at start / end {_fmt_load(m.get('load_average_at_start'))} / "
        f"{_fmt_load(m.get('load_average_at_end'))}.",
        "1-thread QPS: one query per call from Python (per-call overhead included), each query "
        "counted at its fastest call over all passes (the JSON also has qps_pass, the fastest whole pass); "
        f"batched: all queries in one call on {s['threads']} threads, fastest call. Passes per point: "
        f"{t['rounds']} round(s) over all sweeps, each at least {t['repeats']} pass(es) and {t['min_seconds']} s "
        f"(at most {MAX_PASSES} passes).",
        "",
        summary_table(report),
    ]
    if report["skipped"]:
        lines += ["", "Skipped: " + "; ".join(f"{n} ({why})" for n, why in report["skipped"].items())]
    tables = equal_params_tables(report)
    if tables:
        lines += ["", tables]
    lines += ["", "### Indexes", ""]
    lines += [f"- **{r['name']}** {r['version']}: {r['description']}" for r in report["indexes"]]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> bool:
    """One thread and batched side by side."""
    d = report["dataset"]
    panels = (Panel("qps", "recall", "one thread, one query per call"),
              Panel("qps_batched", "recall_batched", f"batched, {report['setup']['threads']} threads"))
    return plot_recall_qps(path, report["indexes"], panels, d["k"], "queries/s",
                           f"{d['name']} ({d['n']:,} x {d['dim']}, {d['metric']}), {report['machine']['cpu']}")


def write_report(report: dict[str, Any], out: Path) -> list[Path]:
    return write_outputs(report, out, output_stem(report["dataset"]["name"]), markdown, plot)


# --- command line ---------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # "Loading faiss with AVX512 ..."
    names = ([n.strip() for n in args.peers.split(",") if n.strip()] if args.peers
             else [n for n in PEERS if n not in peers_mod.ABLATIONS])
    if not args.dataset and not args.generate:
        raise SystemExit("compare: give --dataset PATH and/or --generate N,DIM")
    timing = TimingPlan.default(args.quick)
    timing = TimingPlan(args.rounds or timing.rounds, args.repeats or timing.repeats,
                        timing.min_seconds if args.min_seconds is None else args.min_seconds)
    for w in workloads(args):
        setup = Setup(nlist=args.nlist or peers_mod.default_nlist(w.base.shape[0]),
                      quick=args.quick or args.short_sweeps)
        log.info("%s: %d x %d, %s, %d queries, nlist %d, peers %s", w.name, w.base.shape[0], w.base.shape[1],
                 w.metric, w.queries.shape[0], setup.nlist, ",".join(names))
        report = compare(w, names, setup, args.k, args.threads, timing, progress=not args.no_progress)
        paths = write_report(report, Path(args.out))
        print(markdown(report))
        log.info("wrote %s (%.0f s)", ", ".join(map(str, paths)), report["elapsed_s"])
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", action="append", metavar="SOURCE", help=f"{SOURCE_HELP} (repeatable)")
    p.add_argument("--generate", action="append", type=parse_generate, metavar="N,DIM",
                   help="clustered synthetic data with N vectors of DIM dimensions (repeatable)")
    p.add_argument("--metric", choices=["IP", "L2", "COSINE"], default="IP", help="metric of --generate data")
    p.add_argument("--peers", default=None,
                   help=f"comma-separated indexes to run: {','.join(PEERS)} "
                   f"(default all but the ablations and variants {','.join(peers_mod.ABLATIONS)})")
    p.add_argument("--quick", action="store_true",
                   help=f"subsample to {QUICK_BASE:,} vectors and {QUICK_QUERIES} queries, short sweeps")
    p.add_argument("--short-sweeps", action="store_true",
                   help="the short sweeps of --quick on the whole data (for large n, e.g. scaling runs)")
    p.add_argument("--out", default="bench/results", help="output folder (default bench/results)")
    p.add_argument("--k", type=int, default=10, help=option_help("k", "of every search and of recall@k (default 10)"))
    p.add_argument("--nlist", type=int, default=None,
                   help=option_help("nlist", "of every IVF peer (default ~3.2 sqrt(n), two significant digits)"))
    p.add_argument("--threads", type=int, default=0, help=option_help("threads", "also for batched search (default 0)"))
    p.add_argument("--rounds", type=int, default=None,
                   help="times each index's sweep is run, fastest times kept (default 4; 2 with --quick)")
    p.add_argument("--repeats", type=int, default=None, help="passes over the queries per point and round")
    p.add_argument("--min-seconds", type=float, default=None,
                   help=f"more passes (at most {MAX_PASSES}) per point and round until they add up to this "
                   "(default 0.05)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run)
