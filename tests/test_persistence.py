"""Save/load round trips and damaged files."""

from __future__ import annotations

import numpy as np
import pytest
from anisoscan import Index, IndexFileError


@pytest.fixture(scope="module", params=[True, False], ids=["raw", "codes-only"])
def saved(request, tmp_path_factory):
    x = np.random.default_rng(3).normal(size=(1500, 20)).astype(np.float32)
    index = Index(20, "COSINE", nlist=16, with_raw_data=request.param).build(x, ids=np.arange(1500) * 3)
    path = tmp_path_factory.mktemp("idx") / "index.anisoscan"
    index.save(path)
    return index, path, x


def test_round_trip_gives_identical_results(saved):
    index, path, x = saved
    loaded = Index.load(path)
    assert len(loaded) == len(index) and loaded.params == index.params
    assert loaded.memory_bytes == pytest.approx(index.memory_bytes, rel=0.01)
    a = index.search(x[:50], 10, nprobe=4, reorder_k=30)
    b = loaded.search(x[:50], 10, nprobe=4, reorder_k=30)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not path.with_name(path.name + ".tmp").exists()


def damage(path, tmp_path, fn):
    data = bytearray(path.read_bytes())
    out = tmp_path / "damaged.idx"
    out.write_bytes(bytes(fn(data)))
    return out


def flip(data, pos):
    data[pos] ^= 0xFF
    return data


def test_truncated_file(saved, tmp_path):
    bad = damage(saved[1], tmp_path, lambda d: d[: len(d) // 2])
    with pytest.raises(IndexFileError, match=f"{bad.name}.*truncated"):
        Index.load(bad)


def test_flipped_byte_fails_checksum(saved, tmp_path):
    bad = damage(saved[1], tmp_path, lambda d: flip(d, len(d) // 2))
    with pytest.raises(IndexFileError, match="checksum"):
        Index.load(bad)


def test_wrong_magic(saved, tmp_path):
    bad = damage(saved[1], tmp_path, lambda d: flip(d, 0))
    with pytest.raises(IndexFileError, match="wrong magic"):
        Index.load(bad)


def test_wrong_version(saved, tmp_path):
    bad = damage(saved[1], tmp_path, lambda d: flip(d, 8))
    with pytest.raises(IndexFileError, match="format version"):
        Index.load(bad)


def test_missing_file(tmp_path):
    with pytest.raises(IndexFileError, match="cannot open"):
        Index.load(tmp_path / "nope.idx")
    assert issubclass(IndexFileError, ValueError)
