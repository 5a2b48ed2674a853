"""What every benchmark reports the same way: the machine, recall/QPS frontiers and plots, and
result files written whole (a stopped run never leaves half a file)."""

from __future__ import annotations

import json
import logging
import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import _core

log = logging.getLogger(__name__)


def machine_info(kinds: list[Any]) -> dict[str, Any]:
    """CPU, cores, SIMD levels, library versions: what a reader needs to compare runs."""
    cpu: str | None = None
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and cpu is None:
                cpu = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for kind in kinds:
        try:
            versions[kind.package] = kind.version()
        except Exception as e:  # noqa: BLE001 - versions are informative only
            versions[kind.package] = f"unknown ({e})"
    info: dict[str, Any] = {
        "cpu": cpu or platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "simd_flags": sorted(f for f in flags if f.startswith(("avx", "sse4", "fma", "f16c"))),
        "anisoscan_simd_level": _core.simd_level(),
        "anisoscan_detected_simd_level": _core.detected_simd_level(),
        "platform": platform.platform(),
        "versions": versions,
        "thread_env": {v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")},
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if any(kind.package == "faiss" for kind in kinds):
        import faiss

        info["faiss_compile_options"] = faiss.get_compile_options()
    return info


def frontier(points: list[dict[str, Any]], qps_key: str = "qps", recall_key: str = "recall"
             ) -> list[tuple[float, float]]:
    """(recall, qps) Pareto frontier, by increasing recall: no other point is both better and faster."""
    best: list[tuple[float, float]] = []
    for p in sorted(points, key=lambda p: (-p[recall_key], -p[qps_key])):
        if not best or p[qps_key] > best[-1][1]:
            best.append((p[recall_key], p[qps_key]))
    return best[::-1]


def best_qps(points: list[dict[str, Any]], target: float, qps_key: str = "qps",
             recall_key: str = "recall") -> float | None:
    ok = [p[qps_key] for p in points if p[recall_key] >= target]
    return max(ok) if ok else None


@dataclass(frozen=True)
class Panel:
    qps_key: str
    recall_key: str
    title: str


def plot_recall_qps(path: Path, indexes: list[dict[str, Any]], panels: tuple[Panel, ...], k: int, ylabel: str,
                    title: str) -> bool:
    """Each index's recall@k/QPS frontier (log QPS), one panel per timing, dashed where codes only.

    indexes: dicts with "name", "points" and "codes_only". False when matplotlib is missing.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no %s", path.name)
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(13, 5.5), sharex=True)
    lowest = 1.0
    for ax, panel in zip(axes, panels):
        for r in indexes:
            line = frontier(r["points"], panel.qps_key, panel.recall_key)
            if line:
                x, y = zip(*line)
                lowest = min(lowest, min(x))
                ax.plot(x, y, "--" if r["codes_only"] else "-", marker="o", markersize=3, label=r["name"])
        ax.set_yscale("log")
        ax.set_xlabel(f"recall@{k}")
        ax.set_ylabel(ylabel)
        ax.set_title(panel.title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_xlim(max(0.0, lowest - 0.02), 1.0)
    axes[-1].legend(loc="lower left", fontsize=8)
    fig.suptitle(title + "; dashed: codes only", fontsize=10)
    fig.tight_layout()
    write_atomically(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)
    return True


def write_atomically(path: Path, write: Any) -> None:
    """Writes through a .tmp file and a rename, so a stopped run never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def output_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name)


def write_outputs(report: dict[str, Any], out: Path, stem: str, to_markdown: Any, to_plot: Any) -> list[Path]:
    """<out>/<stem>.json, .md and .png (no .png without matplotlib)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.json", out / f"{stem}.md"]
    write_atomically(paths[0], lambda p: p.write_text(json.dumps(report, indent=1) + "\n"))
    write_atomically(paths[1], lambda p: p.write_text(to_markdown(report)))
    if to_plot(report, out / f"{stem}.png"):
        paths.append(out / f"{stem}.png")
    return paths
