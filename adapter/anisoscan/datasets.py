"""Datasets: synthetic clustered vectors, and folders in the benchmark format
(base.npy, query.npy, gt_ip.npy or gt_l2.npy, meta.json)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Dataset:
    name: str
    base: np.ndarray  # float32 [n, d]
    queries: np.ndarray  # float32 [nq, d]
    metric: str  # "IP" or "L2" ("angular" data is unit-norm, searched by IP)
    ground_truth: np.ndarray | None = None  # int [nq, >=k] exact ids, best first

    @property
    def dim(self) -> int:
        return int(self.base.shape[1])


def make_clustered(n: int, dim: int, n_queries: int = 200, n_clusters: int = 64, spread: float = 0.35,
                   metric: str = "IP", seed: int = 0) -> Dataset:
    """Gaussian clusters around random centers; unit-norm for IP/COSINE like embedding data."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_clusters, dim)).astype(np.float32)

    def draw(count: int) -> np.ndarray:
        x = centers[rng.integers(0, n_clusters, count)]
        x = x + spread * rng.normal(size=(count, dim)).astype(np.float32)
        if metric != "L2":
            x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x.astype(np.float32)

    return Dataset(f"clustered-{n}x{dim}", draw(n), draw(n_queries), metric)


SHIPPED = Path(__file__).resolve().parent / "data" / "glove-10k-50.npz"


def load_shipped() -> Dataset:
    """10,000 GloVe word vectors and 200 queries (unit length, inner product), shipped with the package."""
    with np.load(SHIPPED) as f:
        return Dataset("glove-10k-50", f["base"], f["query"], "IP")


def load_folder(path: str | Path, mmap: bool = True) -> Dataset:
    """Reads a dataset folder in the format of shared/data (see its README)."""
    folder = Path(path)
    if not (folder / "base.npy").exists() or not (folder / "query.npy").exists():
        raise FileNotFoundError(f"{folder}: expected base.npy and query.npy (the shared/data format)")
    meta = json.loads((folder / "meta.json").read_text()) if (folder / "meta.json").exists() else {}
    mode = "r" if mmap else None
    base = np.load(folder / "base.npy", mmap_mode=mode)
    queries = np.load(folder / "query.npy")
    gt_file = next((folder / f for f in ("gt_ip.npy", "gt_l2.npy") if (folder / f).exists()), None)
    metric = "L2" if (gt_file is not None and gt_file.name == "gt_l2.npy") else "IP"
    gt = np.load(gt_file) if gt_file is not None else None
    return Dataset(meta.get("name", folder.name), base, queries, metric, gt)
