"""Save/load round trips and damaged files."""

from __future__ import annotations

import struct
import zlib

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


def test_every_header_byte_is_checked(saved, tmp_path):
    """Any single flipped bit of the 24-byte header (magic, version, reserved, length) is
    refused; the reserved bytes 12-15 were once outside the checksum."""
    for pos in range(24):
        for bit in (0, 7):
            bad = damage(saved[1], tmp_path, lambda d, p=pos, b=bit: d.__setitem__(p, d[p] ^ (1 << b)) or d)
            with pytest.raises(IndexFileError, match="damaged.idx"):
                Index.load(bad)


def test_a_failed_write_is_an_os_error_naming_the_file(saved, tmp_path):
    index = saved[0]
    with pytest.raises(OSError, match="nope") as e:
        index.save(tmp_path / "nope" / "index.anisoscan")
    assert e.value.errno == 2 and not isinstance(e.value, IndexFileError)


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
    with pytest.raises(IndexFileError, match="cannot open"):
        Index.load(tmp_path / "nope.idx", mmap=True)
    assert issubclass(IndexFileError, ValueError)


def test_mmap_load_searches_in_place_and_copies_on_write(saved, tmp_path):
    index, path, x = saved
    mapped = Index.load(path, mmap=True)
    a = index.search(x[:40], 10, nprobe=4, reorder_k=30)
    b = mapped.search(x[:40], 10, nprobe=4, reorder_k=30)
    np.testing.assert_array_equal(a[0], b[0])
    victims = np.unique(b[0][:, 0])
    mapped.delete(victims)
    mapped.add(x[:3] * 0.5, ids=[10**9, 10**9 + 1, 10**9 + 2])
    after, _ = mapped.search(x[:40], 10, nprobe=4, reorder_k=30)
    assert not np.isin(after, victims).any()
    assert len(mapped) == len(index) - len(victims) + 3
    np.testing.assert_array_equal(Index.load(path).search(x[:40], 10, nprobe=4, reorder_k=30)[0], a[0])
    out = tmp_path / "changed.idx"
    mapped.save(out)
    reloaded = Index.load(out, mmap=True)
    np.testing.assert_array_equal(reloaded.search(x[:40], 10, nprobe=4, reorder_k=30)[0], after)


def test_deletes_survive_a_round_trip(tmp_path):
    x = np.random.default_rng(8).normal(size=(800, 12)).astype(np.float32)
    index = Index(12, "L2", nlist=8).build(x)
    index.delete(np.arange(0, 800, 3))
    index.save(tmp_path / "a.idx")
    loaded = Index.load(tmp_path / "a.idx")
    assert len(loaded) == len(index)
    got, _ = loaded.search(x, 5, nprobe=8, reorder_k=50)
    assert not np.isin(got, np.arange(0, 800, 3)).any()


def test_truncated_file_with_mmap(saved, tmp_path):
    bad = damage(saved[1], tmp_path, lambda d: d[: len(d) - 100])
    with pytest.raises(IndexFileError, match="truncated"):
        Index.load(bad, mmap=True)
    empty = tmp_path / "empty.idx"
    empty.write_bytes(b"")
    with pytest.raises(IndexFileError, match="empty.idx"):
        Index.load(empty, mmap=True)


# Versions 1 to 4 stored these parameters in this order, after dim and metric.
_FIXED_PARAMS = [("nlist", "<Q"), ("with_raw_data", "<B"), ("training_sample_size", "<Q"), ("kmeans_iters", "<i"),
                 ("seed", "<Q"), ("sub_dim", "<Q"), ("anisotropic_threshold", "<d"), ("exact_eta", "<B"),
                 ("anisotropic_codebooks", "<B"), ("pq_iterations", "<i")]


def as_older_version(data: bytes, version: int) -> bytes:
    """Re-encodes a version-5 file (named parameters) as version 4 (a fixed list of them),
    3 (checksum over the payload alone), 2 (nor the by_residual byte) or 1 (nor alignment
    padding), following the format descriptions in kernels/index_file.h and
    kernels/params_file.h independently of the C++ reader."""
    header, align = 24, 64
    payload = data[header:-4]
    dim, metric = struct.unpack_from("<QI", payload, 0)
    count, = struct.unpack_from("<I", payload, 12)
    pos, params = 16, {}
    for _ in range(count):
        n = payload[pos]
        name = payload[pos + 1: pos + 1 + n].decode()
        kind, pos = payload[pos + 1 + n], pos + 2 + n
        params[name], = struct.unpack_from("<d" if kind == 2 else "<Q", payload, pos)
        pos += 8
    out = bytearray(struct.pack("<QI", dim, metric))
    for name, fmt in _FIXED_PARAMS:
        out += struct.pack(fmt, params[name])
    if version >= 3:
        out.append(params["by_residual"])
    else:
        assert params["by_residual"] == 1, "older versions know residual codes only"
    trained = payload[pos]
    out.append(trained)
    pos += 1

    def pad_to_alignment() -> None:
        if version >= 2:
            out.extend(bytes((align - (header + len(out)) % align) % align))

    if trained:
        sizes = [4, 4] + [8, 1, 4] * params["nlist"]  # element sizes: centers, codebooks, then per partition
        for size in sizes:
            n, = struct.unpack_from("<Q", payload, pos)
            pos += 8
            pos += (align - (header + pos) % align) % align
            out += struct.pack("<Q", n)
            pad_to_alignment()
            out += payload[pos: pos + n * size]
            pos += n * size
    assert pos == len(payload) and dim > 0 and params["sub_dim"] > 0 and params["with_raw_data"] in (0, 1)
    head = b"ANISOSCN" + struct.pack("<IIQ", version, 0, len(out))
    crc = zlib.crc32(head + bytes(out)) if version >= 4 else zlib.crc32(bytes(out))
    return head + bytes(out) + struct.pack("<I", crc)


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_older_versions_still_load(saved, tmp_path, version):
    index, path, x = saved
    old = tmp_path / f"v{version}.idx"
    old.write_bytes(as_older_version(path.read_bytes(), version))
    for mmap in (False, True):
        loaded = Index.load(old, mmap=mmap)
        assert loaded.params == index.params and loaded.params.by_residual
        np.testing.assert_array_equal(loaded.search(x[:30], 10, nprobe=4, reorder_k=30)[0],
                                      index.search(x[:30], 10, nprobe=4, reorder_k=30)[0])


@pytest.mark.parametrize("metric", ["L2", "IP"])
def test_direct_codes_survive_a_round_trip(tmp_path, metric):
    x = np.random.default_rng(9).normal(size=(900, 16)).astype(np.float32)
    index = Index(16, metric, nlist=12, by_residual=False).build(x)
    index.save(tmp_path / "direct.idx")
    for mmap in (False, True):
        loaded = Index.load(tmp_path / "direct.idx", mmap=mmap)
        assert loaded.params == index.params and not loaded.params.by_residual
        for reorder_k in (10, 60):
            a = loaded.search(x[:50], 10, nprobe=5, reorder_k=reorder_k)
            b = index.search(x[:50], 10, nprobe=5, reorder_k=reorder_k)
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])
