"""Inserts, deletes, upserts, compaction and raw-vector access after build."""

from __future__ import annotations

import numpy as np
import pytest
from anisoscan import Index, exact_search, recall_at_k


@pytest.fixture()
def data(clustered):
    return clustered["IP"]


def test_inserts_and_deletes_match_a_fresh_build(data):
    n = len(data.base)
    ids = np.arange(n, dtype=np.int64) + 10_000
    keep = np.ones(n, bool)
    keep[::5] = False  # delete a fifth of the data
    grown = Index(data.dim, "IP", nlist=32, seed=3).build(data.base[: n // 2], ids[: n // 2])
    grown.add(data.base[n // 2:], ids[n // 2:])
    grown.delete(ids[~keep])
    assert len(grown) == keep.sum()

    fresh = Index(data.dim, "IP", nlist=32, seed=3).build(data.base[keep], ids[keep])
    truth_rows, _ = exact_search(data.base[keep], data.queries, 10, "IP")
    truth = ids[keep][truth_rows]
    got_grown, _ = grown.search(data.queries, 10, nprobe=8, reorder_k=40)
    got_fresh, _ = fresh.search(data.queries, 10, nprobe=8, reorder_k=40)
    assert not np.isin(got_grown, ids[~keep]).any(), "a deleted id came back"
    assert recall_at_k(got_grown, truth, 10) >= recall_at_k(got_fresh, truth, 10) - 0.05
    exact_grown, _ = grown.search(data.queries, 10, nprobe=32, reorder_k=len(data.base))
    np.testing.assert_array_equal(exact_grown, truth)


def test_deleted_ids_never_come_back_even_when_nearest(data):
    index = Index(data.dim, "IP", nlist=16).build(data.base)
    nearest, _ = index.search(data.queries, 1, nprobe=16, reorder_k=100)
    index.delete(np.unique(nearest[:, 0]))
    again, _ = index.search(data.queries, 10, nprobe=16, reorder_k=200)
    assert not np.isin(again, nearest[:, 0]).any()


def test_unknown_id_on_delete_changes_nothing(data):
    index = Index(data.dim, "IP", nlist=16).build(data.base)
    before = len(index)
    with pytest.raises(ValueError, match=r"1 id\(s\) not in the index, e.g. \[999999\]; nothing was changed"):
        index.delete([3, 4, 999999])
    assert len(index) == before
    assert index.get_vectors([3, 4]).shape == (2, data.dim)


def test_duplicate_id_on_add_is_rejected_and_upsert_replaces(data):
    index = Index(data.dim, "IP", nlist=16).build(data.base)
    new_vec = -data.base[:1]
    with pytest.raises(ValueError, match=r"1 id\(s\) already in the index, e.g. \[0\]"):
        index.add(new_vec, [0])
    index.upsert(new_vec, [0])
    assert len(index) == len(data.base)
    np.testing.assert_allclose(index.get_vectors([0]), new_vec, rtol=1e-6)
    ids, _ = index.search(new_vec, 1, nprobe=16, reorder_k=50)
    assert ids[0, 0] == 0


def test_get_vectors_in_request_order_and_normalized_for_cosine(clustered):
    data = clustered["COSINE"]
    index = Index(data.dim, "COSINE", nlist=8).build(data.base * 3.0)
    got = index.get_vectors([5, 1, 5])
    expect = data.base[[5, 1, 5]] / np.linalg.norm(data.base[[5, 1, 5]], axis=1, keepdims=True)
    np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="not in the index"):
        index.get_vectors([len(data.base) + 7])


def test_get_vectors_without_raw_data_is_a_clear_error(data):
    index = Index(data.dim, "IP", nlist=8, with_raw_data=False).build(data.base)
    with pytest.raises(ValueError, match="keeps no raw vectors.*with_raw_data=true"):
        index.get_vectors([1])


def test_compact_reclaims_memory(data):
    index = Index(data.dim, "IP", nlist=8).build(data.base)
    full = index.memory_bytes
    index.delete(np.arange(len(data.base) // 2))
    index.compact()
    assert index.memory_bytes < 0.6 * full


def test_memory_without_raw_data_is_codes_plus_ids():
    rng = np.random.default_rng(0)
    n, d = 20000, 768
    x = rng.normal(size=(n, d)).astype(np.float32)
    index = Index(d, "IP", nlist=16, sub_dim=2, with_raw_data=False, pq_iterations=1,
                  training_sample_size=2000, kmeans_iters=3).build(x)
    codes = n * (d // 2) // 2
    centers_and_tables = 16 * d * 4 * 2 + d // 2 * 16 * 2 * 4
    assert index.memory_bytes <= 1.1 * (codes + 8 * n) + centers_and_tables
    assert index.memory_bytes < x.nbytes / 14


def ids_sharing_hash_bits(count: int, rng: np.random.Generator) -> np.ndarray:
    """Ids whose hash (splitmix64's finalizer, as the id map's) has the same low 14 bits, the
    bits its slots keep to skip other ids' keys: among these only the key tells them apart."""
    found: list[np.ndarray] = []
    with np.errstate(over="ignore"):
        while sum(map(len, found)) < count:
            x = rng.integers(0, 1 << 46, 1 << 22, dtype=np.uint64)
            h = x ^ (x >> np.uint64(30))
            h *= np.uint64(0xBF58476D1CE4E5B9)
            h ^= h >> np.uint64(27)
            h *= np.uint64(0x94D049BB133111EB)
            h ^= h >> np.uint64(31)
            found.append(x[(h & np.uint64(0x3FFF)) == 0])
    ids = np.unique(np.concatenate(found)).astype(np.int64)
    return rng.permutation(ids)[:count]


@pytest.mark.parametrize("mapped,shared_hash_bits", [(False, False), (True, False), (False, True)])
def test_every_id_stays_findable_through_random_updates(tmp_path, mapped, shared_hash_bits):
    """The id map against a dict model: adds, deletes, upserts, compaction, a mapped reload;
    also with ids whose hashes share the bits the map keeps in its slots."""
    rng = np.random.default_rng(7)
    d = 8
    pool = iter(ids_sharing_hash_bits(900, rng).tolist()) if shared_hash_bits else None

    def new_ids(count: int, low: int) -> np.ndarray:
        if pool is None:
            return rng.integers(low, 2 * low, count)
        return np.array([next(pool) for _ in range(count)], dtype=np.int64)

    model = {int(i): rng.normal(size=d).astype(np.float32)
             for i in (new_ids(600, 0) if pool is not None else rng.choice(1 << 40, 600, replace=False))}
    never_added = new_ids(20, 1 << 45) if pool is not None else None
    index = Index(d, "L2", nlist=8).build(np.stack(list(model.values())), np.array(list(model)))
    if mapped:
        index.save(tmp_path / "i.anisoscan")
        index = Index.load(tmp_path / "i.anisoscan", mmap=True)
    for step in range(60):
        present = np.array(sorted(model), dtype=np.int64)
        op = step % 4
        if op == 0:  # delete a handful, in one call
            gone = rng.choice(present, 7, replace=False)
            index.delete(gone)
            for i in gone:
                del model[int(i)]
        elif op == 1:  # add new ids
            new = new_ids(9, 1 << 41)
            vecs = rng.normal(size=(9, d)).astype(np.float32)
            index.add(vecs, new)
            model.update({int(i): v for i, v in zip(new, vecs)})
        elif op == 2:  # upsert a mix of present and new ids
            ids = np.concatenate([rng.choice(present, 3, replace=False), new_ids(2, 1 << 43)])
            vecs = rng.normal(size=(5, d)).astype(np.float32)
            index.upsert(vecs, ids)
            model.update({int(i): v for i, v in zip(ids, vecs)})
        elif step % 8 == 3:
            index.compact()
        present = np.array(sorted(model), dtype=np.int64)
        np.testing.assert_array_equal(index.get_vectors(present), np.stack([model[int(i)] for i in present]))
        absent = never_added if never_added is not None else rng.integers(1 << 45, 1 << 46, 20)
        assert index.contains(present).all() and not index.contains(absent).any()
        assert len(index) == len(model)
    with pytest.raises(ValueError, match="not in the index"):
        index.delete([int(absent[0])])
    allowed = rng.choice(present, 5, replace=False)
    ids, _ = index.search(np.stack([model[int(i)] for i in allowed]), 5, nprobe=1, allowed_ids=np.sort(allowed))
    assert set(ids.ravel()) == set(allowed.tolist())  # only the allowed ids, all found
