"""Datasets: synthetic clustered vectors; the shipped GloVe sample; folders in the benchmark format
(base.npy, query.npy, gt_ip.npy or gt_l2.npy, meta.json); ann-benchmarks HDF5 files; VectorDBBench
Parquet folders; and public ann-benchmarks sets by name, downloaded once.

`load(source)` takes any of them: None (the shipped sample), a path, or a name in PUBLIC."""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# ann-benchmarks sets (HDF5: train, test, neighbors, and a "distance" attribute).
PUBLIC = {name: f"http://ann-benchmarks.com/{name}.hdf5" for name in (
    "glove-25-angular", "glove-50-angular", "glove-100-angular", "glove-200-angular", "nytimes-256-angular",
    "sift-128-euclidean", "gist-960-euclidean", "fashion-mnist-784-euclidean", "mnist-784-euclidean",
    "deep-image-96-angular", "lastfm-64-dot")}
CACHE = Path(os.environ.get("ANISOSCAN_DATA", Path.home() / ".cache" / "anisoscan"))
# What a --dataset option takes, for every command that has one.
SOURCE_HELP = ("a folder in the shared/data format, an ann-benchmarks .hdf5 file, a VectorDBBench folder "
               "(train/test/neighbors.parquet, searched by COSINE), or a public ann-benchmarks name such as "
               "glove-100-angular (downloaded once into $ANISOSCAN_DATA, default ~/.cache/anisoscan)")
_HDF5_METRICS = {"angular": "COSINE", "euclidean": "L2", "dot": "IP"}


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


def load(source: str | Path | None, metric: str = "COSINE") -> Dataset:
    """None: the shipped GloVe sample. A folder: the shared/data format, or VectorDBBench's
    (train.parquet, test.parquet, neighbors.parquet; `metric` says how to search it, as its
    files do not). A .hdf5 file: ann-benchmarks'. A name in PUBLIC: that set, downloaded into
    CACHE ($ANISOSCAN_DATA) on first use."""
    if source is None:
        return load_shipped()
    path = Path(source)
    if not path.exists() and str(source) in PUBLIC:
        path = download(PUBLIC[str(source)], CACHE / f"{source}.hdf5")
    if path.suffix in (".hdf5", ".h5"):
        return load_hdf5(path)
    if (path / "train.parquet").exists():
        return load_vectordbbench(path, metric)
    if path.is_dir():
        return load_folder(path)
    raise FileNotFoundError(f"{source}: no such dataset folder or file, and not one of the public sets "
                            f"({', '.join(sorted(PUBLIC))})")


def load_hdf5(path: str | Path) -> Dataset:
    """An ann-benchmarks file: train (base), test (queries), neighbors (exact ids), distance."""
    import h5py  # the bench extra brings it

    with h5py.File(path, "r") as f:
        distance = f.attrs.get("distance", "angular")
        distance = distance.decode() if isinstance(distance, bytes) else str(distance)
        if distance not in _HDF5_METRICS:
            raise ValueError(f"{path}: distance {distance!r} is not one of {sorted(_HDF5_METRICS)}")
        gt = np.asarray(f["neighbors"]) if "neighbors" in f else None
        return Dataset(Path(path).stem, np.asarray(f["train"], np.float32), np.asarray(f["test"], np.float32),
                       _HDF5_METRICS[distance], gt)


def load_vectordbbench(folder: str | Path, metric: str = "COSINE") -> Dataset:
    """A VectorDBBench dataset folder: train.parquet and test.parquet (id, emb), and
    neighbors.parquet (id, neighbors_id) when present. Rows are ordered by id."""
    import pyarrow.parquet as pq

    folder = Path(folder)

    def vectors(name: str) -> tuple[np.ndarray, np.ndarray]:
        table = pq.read_table(folder / name, columns=["id", "emb"]).sort_by("id")
        emb = table.column("emb").combine_chunks()
        dim = len(emb[0]) if len(emb) else 0
        return table.column("id").to_numpy(), np.asarray(emb.values.to_numpy(), np.float32).reshape(-1, dim)

    ids, base = vectors("train.parquet")
    _, queries = vectors("test.parquet")
    gt = None
    if (folder / "neighbors.parquet").exists():
        table = pq.read_table(folder / "neighbors.parquet").sort_by("id")
        neighbors = np.stack([np.asarray(row, np.int64) for row in table.column("neighbors_id").to_pylist()])
        gt = np.searchsorted(ids, neighbors)  # ids -> row numbers
    return Dataset(folder.name, base, queries, metric.upper(), gt)


def save_vectordbbench(ds: Dataset, folder: str | Path, k: int = 100) -> Path:
    """Writes `ds` as a VectorDBBench custom dataset (what load_vectordbbench reads): rows keep
    their numbers as ids; neighbors.parquet holds the first `k` ground-truth ids of each query."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if ds.ground_truth is None:
        raise ValueError(f"{ds.name}: a VectorDBBench dataset needs ground truth; this one has none")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    def vectors(x: np.ndarray) -> pa.Table:
        x = np.ascontiguousarray(x, np.float32)
        emb = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1]).cast(pa.list_(pa.float32()))
        return pa.table({"id": np.arange(len(x), dtype=np.int64), "emb": emb})

    pq.write_table(vectors(ds.base), folder / "train.parquet")
    pq.write_table(vectors(ds.queries), folder / "test.parquet")
    gt = np.asarray(ds.ground_truth, np.int64)[:, :k]
    pq.write_table(pa.table({"id": np.arange(len(gt), dtype=np.int64),
                             "neighbors_id": pa.array(list(gt), pa.list_(pa.int64()))}), folder / "neighbors.parquet")
    return folder


def download(url: str, dest: Path) -> Path:
    """Fetches url to dest once (through a .part file and a rename), with a progress bar."""
    if dest.exists():
        return dest
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    log.info("downloading %s to %s", url, dest)
    with urllib.request.urlopen(url) as response, open(part, "wb") as out:  # noqa: S310 - a fixed list or a user URL
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                bar.update(len(chunk))
    os.replace(part, dest)
    return dest
