"""Dataset readers: the shared/data folder, ann-benchmarks HDF5, VectorDBBench Parquet, and the
download of a public set (tested offline through a file:// URL)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from anisoscan import datasets


@pytest.fixture()
def arrays():
    rng = np.random.default_rng(0)
    base, queries = rng.normal(size=(50, 6)).astype(np.float32), rng.normal(size=(4, 6)).astype(np.float32)
    truth = np.argsort(-(queries @ base.T), axis=1)[:, :10]
    return base, queries, truth


def test_a_shared_data_folder(tmp_path, arrays):
    base, queries, truth = arrays
    np.save(tmp_path / "base.npy", base)
    np.save(tmp_path / "query.npy", queries)
    np.save(tmp_path / "gt_ip.npy", truth)
    (tmp_path / "meta.json").write_text(json.dumps({"name": "tiny"}))
    d = datasets.load(tmp_path)
    assert (d.name, d.metric) == ("tiny", "IP")
    np.testing.assert_array_equal(d.base, base)
    np.testing.assert_array_equal(d.ground_truth, truth)


@pytest.mark.parametrize("distance, metric", [("angular", "COSINE"), ("euclidean", "L2"), (b"dot", "IP")])
def test_an_ann_benchmarks_file(tmp_path, arrays, distance, metric):
    h5py = pytest.importorskip("h5py", reason="h5py is not installed (pip install '.[test]')")
    base, queries, truth = arrays
    path = tmp_path / "tiny-6-x.hdf5"
    with h5py.File(path, "w") as f:
        f.attrs["distance"] = distance
        f["train"], f["test"], f["neighbors"] = base.astype(np.float64), queries, truth
    d = datasets.load(path)
    assert (d.name, d.metric, d.base.dtype) == ("tiny-6-x", metric, np.float32)
    np.testing.assert_array_equal(d.base, base)
    np.testing.assert_array_equal(d.queries, queries)
    np.testing.assert_array_equal(d.ground_truth, truth)


def test_a_vectordbbench_folder_maps_ids_to_rows(tmp_path, arrays):
    pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed (pip install '.[test]')")
    import pyarrow.parquet as pq

    base, queries, truth = arrays
    ids = np.arange(len(base)) * 7 + 100  # ids are not row numbers, and the file is shuffled
    order = np.random.default_rng(1).permutation(len(base))
    pq.write_table(pa.table({"id": ids[order], "emb": [list(map(float, v)) for v in base[order]]}),
                   tmp_path / "train.parquet")
    pq.write_table(pa.table({"id": np.arange(len(queries)), "emb": [list(map(float, v)) for v in queries]}),
                   tmp_path / "test.parquet")
    pq.write_table(pa.table({"id": np.arange(len(queries)), "neighbors_id": [list(ids[t]) for t in truth]}),
                   tmp_path / "neighbors.parquet")
    d = datasets.load(tmp_path, metric="ip")
    assert d.metric == "IP"
    np.testing.assert_allclose(d.base, base, rtol=1e-6)
    np.testing.assert_array_equal(d.ground_truth, truth)


def test_a_dataset_written_for_vectordbbench_reads_back(tmp_path, arrays):
    pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed (pip install '.[test]')")
    import pyarrow.parquet as pq

    base, queries, truth = arrays
    datasets.save_vectordbbench(datasets.Dataset("tiny", base, queries, "IP", truth), tmp_path / "vdb", k=5)
    schema = pq.read_schema(tmp_path / "vdb" / "train.parquet")
    emb = schema.field("emb").type  # what VectorDBBench reads: int64 ids, lists of float32
    assert schema.field("id").type == pa.int64() and pa.types.is_list(emb) and emb.value_type == pa.float32()
    d = datasets.load(tmp_path / "vdb", metric="IP")
    np.testing.assert_array_equal(d.base, base)
    np.testing.assert_array_equal(d.queries, queries)
    np.testing.assert_array_equal(d.ground_truth, truth[:, :5])
    with pytest.raises(ValueError, match="ground truth"):
        datasets.save_vectordbbench(datasets.Dataset("none", base, queries, "IP", None), tmp_path / "x")


def test_a_public_name_is_downloaded_once(tmp_path, monkeypatch, arrays):
    h5py = pytest.importorskip("h5py", reason="h5py is not installed (pip install '.[test]')")
    base, queries, truth = arrays
    source = tmp_path / "served.hdf5"
    with h5py.File(source, "w") as f:
        f.attrs["distance"] = "euclidean"
        f["train"], f["test"], f["neighbors"] = base, queries, truth
    monkeypatch.setitem(datasets.PUBLIC, "tiny-6-euclidean", source.as_uri())
    monkeypatch.setattr(datasets, "CACHE", tmp_path / "cache")
    d = datasets.load("tiny-6-euclidean")
    cached = tmp_path / "cache" / "tiny-6-euclidean.hdf5"
    assert cached.exists() and d.metric == "L2" and len(d.base) == 50
    source.unlink()  # a second load reads the cache, never the URL
    assert len(datasets.load("tiny-6-euclidean").queries) == 4


def test_an_unknown_source_names_the_choices(tmp_path):
    with pytest.raises(FileNotFoundError, match="glove-100-angular"):
        datasets.load(tmp_path / "nothing-here")
