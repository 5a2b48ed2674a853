"""The Milvus Lite SCANN plug-in's own rules: per-segment partitions, Milvus Lite's distance
convention, masks, sidecars and registration. End-to-end pymilvus tests are in integration/."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("milvus_lite", reason="milvus-lite is not installed (pip install '.[test]')")

from anisoscan.datasets import make_clustered  # noqa: E402
from anisoscan.milvus import lite  # noqa: E402
from anisoscan.milvus.segment_index import (  # noqa: E402
    EXACT_BELOW_ROWS,
    ROWS_PER_PARTITION,
    ScannSegmentIndex,
    index_params,
    segment_params,
)
from milvus_lite.exceptions import SchemaValidationError  # noqa: E402
from milvus_lite.index.brute_force import BruteForceIndex  # noqa: E402


@pytest.mark.parametrize("rows, nlist, want", [(10, 128, 1), (EXACT_BELOW_ROWS - 1, 128, 1),
                                                (EXACT_BELOW_ROWS, 128, EXACT_BELOW_ROWS // ROWS_PER_PARTITION),
                                                (5_000, 128, 50), (100_000, 128, 128), (100_000, 2_000, 1_000)])
def test_a_segment_gets_the_users_nlist_as_a_cap(rows, nlist, want):
    collection, _ = index_params(16, "IP", {"nlist": nlist, "with_raw_data": False})
    fitted = segment_params(collection, rows)
    assert fitted.nlist == want
    assert fitted.with_raw_data == (rows < EXACT_BELOW_ROWS)  # small segments keep raw vectors: exact


@pytest.mark.parametrize("metric", ["IP", "COSINE", "L2"])
@pytest.mark.parametrize("rows", [300, 4_000])  # the exact path and the IVF path
def test_results_match_milvus_lites_brute_force_convention(metric, rows):
    data = make_clustered(rows, 24, n_queries=20, metric="L2" if metric == "L2" else "IP", seed=3)
    ours = ScannSegmentIndex.build(data.base, metric, {"nlist": 32})
    ref = BruteForceIndex.build(data.base, metric)
    exhaustive = {"nprobe": 65536, "reorder_k": rows}
    ids, dist = ours.search(data.queries, 10, params=exhaustive)
    ref_ids, ref_dist = ref.search(data.queries, 10)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-4, atol=1e-4)
    assert ours.exhaustive == (rows < EXACT_BELOW_ROWS)
    assert (ours.metric, ours.num_vectors, ours.dim, ours.index_type) == (metric, rows, 24, "SCANN")


def test_the_valid_mask_filters_inside_the_scan_and_pads_the_rest():
    data = make_clustered(5_000, 16, n_queries=10, seed=4)
    index = ScannSegmentIndex.build(data.base, "IP", {"nlist": 50})
    mask = np.zeros(5_000, bool)
    mask[::100] = True  # 1%: 50 rows pass
    ids, dist = index.search(data.queries, 10, valid_mask=mask, params={"nprobe": 1})
    assert np.all(mask[ids]) and np.all(ids >= 0)  # 10 hits although one partition holds ~2 passing rows
    few = np.zeros(5_000, bool)
    few[[7, 4_000]] = True
    ids, dist = index.search(data.queries, 5, valid_mask=few, params={"nprobe": 1})
    assert np.all(np.sort(ids[:, :2], axis=1) == [7, 4_000])
    assert np.all(ids[:, 2:] == -1) and np.all(np.isinf(dist[:, 2:]))
    assert np.all(np.diff(dist[:, :2], axis=1) >= 0)  # smaller is closer


def test_search_errors_are_illegal_arguments():
    data = make_clustered(2_000, 8, n_queries=3, seed=5)
    index = ScannSegmentIndex.build(data.base, "L2", {})
    for params in ({"reorder_k": 5}, {"nprobe": 0}, {"nprobe": "many"}):
        with pytest.raises(SchemaValidationError, match="SCANN search"):
            index.search(data.queries, 10, params=params)
    with pytest.raises(SchemaValidationError, match="valid_mask"):
        index.search(data.queries, 10, valid_mask=np.ones(3, bool))
    assert index.search(data.queries, 10, params={"ef": 64})[0].shape == (3, 10)  # other types' keys: ignored


def test_a_sidecar_round_trips_and_checks_what_it_is_loaded_for(tmp_path):
    data = make_clustered(3_000, 16, n_queries=5, seed=6)
    index = ScannSegmentIndex.build(data.base, "COSINE", {"nlist": 16, "with_raw_data": False})
    path = str(tmp_path / "seg.vector.scann.idx")
    index.save(path)
    for mmap in (False, True):
        loaded = ScannSegmentIndex.load(path, "COSINE", 16, mmap=mmap)
        for a, b in zip(loaded.search(data.queries, 10), index.search(data.queries, 10)):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="COSINE, dim 16"):
        ScannSegmentIndex.load(path, "IP", 16)
    with pytest.raises(ValueError, match="dim 16"):
        ScannSegmentIndex.load(path, "COSINE", 32)


@pytest.mark.parametrize("params, key", [({"nlist": 0}, "nlist"), ({"mmap.enabled": "perhaps"}, "mmap.enabled"),
                                         ({"ef": 10}, "ef"), ({"sub_dim": 32}, "sub_dim")])
def test_index_params_name_the_bad_key(params, key):
    with pytest.raises((ValueError, TypeError), match=key):
        index_params(16, "IP", params)


def test_registration_is_idempotent_and_undone_by_unregister():
    from milvus_lite.engine import collection
    from milvus_lite.index import factory

    lite.register()
    assert lite.registered() and "SCANN" in factory.KNOWN_VECTOR_INDEX_TYPES
    assert collection.KNOWN_VECTOR_INDEX_TYPES is factory.KNOWN_VECTOR_INDEX_TYPES
    patched = factory.build_index_from_spec
    lite.register()
    assert factory.build_index_from_spec is patched
    lite.unregister()
    try:
        assert "SCANN" not in factory.KNOWN_VECTOR_INDEX_TYPES and not lite.registered()
        assert factory.build_index_from_spec is not patched
    finally:
        lite.register()


def test_an_unsupported_milvus_lite_fails_loudly(monkeypatch):
    lite.unregister()
    try:
        monkeypatch.setattr(lite.metadata, "version", lambda name: "3.3.0")
        with pytest.raises(lite.IncompatibleMilvusLite, match=r"3\.3\.0.*3\.2\.x"):
            lite.register()
        monkeypatch.undo()
        from milvus_lite.index import factory

        monkeypatch.delattr(factory, "load_index_from_spec")
        with pytest.raises(lite.IncompatibleMilvusLite, match="load_index_from_spec.*3.2.x"):
            lite.register()
        assert not lite.registered()  # nothing half-patched
    finally:
        monkeypatch.undo()
        lite.register()
