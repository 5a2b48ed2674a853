"""FastScan kernel throughput on one core, per SIMD level, in cache and from memory."""

from __future__ import annotations

import argparse
import json
import logging
import math

import numpy as np

from .. import _core
from ..params import option_help

log = logging.getLogger(__name__)

LEVELS = ("scalar", "avx2", "avx512")
# DESIGN.md: one core, compute-bound, d=128 with AVX2 on this class of machine.
CEILING_VECTORS_PER_S = 1e9


def supported_levels() -> list[str]:
    best = LEVELS.index(_core.detected_simd_level())
    return list(LEVELS[: best + 1])


# Batched search scans a partition for up to this many queries per pass over its codes.
QUERIES_PER_PASS = 4


def measure(dim: int, sub_dim: int = 2, k: int = 10, in_cache_bytes: int = 256 << 10,
            in_memory_bytes: int = 512 << 20, seconds: float = 0.5, seed: int = 0) -> dict:
    """Vectors scanned per second per query: one query per pass (the *_vectors_per_s keys)
    and QUERIES_PER_PASS queries sharing each pass (the batched_* keys)."""
    m = math.ceil(dim / sub_dim)
    rng = np.random.default_rng(seed)
    tables = np.stack([_core.testing.fastscan_quantize_lut(rng.normal(size=(m, 16)).astype(np.float32))[0]
                       for _ in range(QUERIES_PER_PASS)])
    bytes_per_vector = (m + 1) // 2
    results: dict[str, dict[str, float]] = {}
    for where, budget in (("in_cache", in_cache_bytes), ("in_memory", in_memory_bytes)):
        n = max(32, budget // bytes_per_vector // 32 * 32)
        codes = rng.integers(0, 16, size=(n, m), dtype=np.uint8)
        packed = _core.testing.fastscan_pack(codes)
        for level in supported_levels():
            for key, t in ((f"{where}_vectors_per_s", tables[0]), (f"batched_{where}_vectors_per_s", tables)):
                rate = _core.testing.fastscan_benchmark(level, packed, t, n, m, k, seconds)
                results.setdefault(level, {})[key] = rate
                log.info("%-6s %-28s %6.3g vectors/s", level, key, rate)
    return {
        "dim": dim,
        "sub_dim": sub_dim,
        "k": k,
        "active_level": _core.simd_level(),
        "ceiling_vectors_per_s": CEILING_VECTORS_PER_S,
        "queries_per_pass": QUERIES_PER_PASS,
        "levels": results,
    }


def table(report: dict) -> str:
    lines = [f"FastScan, one core, dim={report['dim']} sub_dim={report['sub_dim']} top-{report['k']} "
             f"(ceiling ~{report['ceiling_vectors_per_s']:.1e} vectors/s at d=128, AVX2)",
             f"{'level':8} {'in cache':>14} {'from memory':>14} {'vs scalar':>10}   "
             f"{report['queries_per_pass']} queries per pass: {'in cache':>10} {'from memory':>12}"]
    scalar = report["levels"]["scalar"]["in_cache_vectors_per_s"]
    for level, r in report["levels"].items():
        lines.append(f"{level:8} {r['in_cache_vectors_per_s']:14.3g} {r['in_memory_vectors_per_s']:14.3g} "
                     f"{r['in_cache_vectors_per_s'] / scalar:9.1f}x   {'':19}"
                     f"{r['batched_in_cache_vectors_per_s']:10.3g} {r['batched_in_memory_vectors_per_s']:12.3g}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO, format="%(message)s")
    report = measure(args.dim, args.sub_dim, in_memory_bytes=args.memory_mb << 20, seconds=args.seconds)
    print(json.dumps(report, indent=2) if args.json else table(report))
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dim", type=int, default=128, help="vector dimensions (default 128)")
    p.add_argument("--sub-dim", type=int, default=2, help=option_help("sub_dim", "default 2"))
    p.add_argument("--seconds", type=float, default=0.5, help="time per measurement")
    p.add_argument("--memory-mb", type=int, default=512, help="codes scanned 'from memory' (well past the caches)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run)
