"""Hostile requests against a real server: caps before allocating, checks up front, a real full disk."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
from anisoscan import Client
from anisoscan.node import wire
from anisoscan.v1 import index_node_pb2 as pb
from anisoscan.v1 import index_node_pb2_grpc as pb_grpc
from server_process import ServerProcess

DIM = 8
MEMORY_LIMIT = 1 << 30
FLAT = {"index_type": "FLAT", "metric_type": "L2"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ServerProcess(tmp_path_factory.mktemp("limits") / "data", "--max-insert-rows", "1000",
                         memory_limit=MEMORY_LIMIT)
    proc.start()
    with Client(proc.address) as c:
        c.create_index("a", DIM, FLAT, np.ones((50, DIM), np.float32))
    yield proc
    proc.stop()


def rpc_error(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as e:
        call()
    return e.value


def test_defect04_hostile_requests_under_a_memory_limit_are_refused_and_the_server_lives(server):
    """The report's 19 KB request asked for a 1.9 GB reply; the server runs with 1 GiB of address space."""
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.IndexNodeStub(channel)
        search = pb.SearchRequest(index_name="a", queries=wire.pack_vectors(np.zeros((150, DIM), np.float32)),
                                  limit=1 << 20)
        e = rpc_error(lambda: stub.Search(search, timeout=30))
        assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_reply_bytes" in e.details()
        get = pb.GetVectorsRequest(index_name="a", ids=wire.pack_ids(np.zeros(4_000_000, np.int64)))
        e = rpc_error(lambda: stub.GetVectors(get, timeout=30))
        assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_get_ids" in e.details()
    with Client(server.address) as c:
        e = rpc_error(lambda: c.insert("a", np.ones((1001, DIM), np.float32), np.arange(100, 1101)))
        assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_insert_rows" in e.details()
        assert c.describe_index("a")["num_rows"] == 50
        assert c.search("a", np.ones((2, DIM), np.float32), limit=5)[0].shape == (2, 5)


def test_defect11_bad_names_and_values_are_invalid_argument_and_never_echoed_whole(server):
    with Client(server.address) as c:
        for name in ("abc\n", "x" * 10_000, "a/b"):
            e = rpc_error(lambda name=name: c.create_index(name, DIM, FLAT, np.ones((5, DIM), np.float32)))
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and len(e.details()) < 300
            e = rpc_error(lambda name=name: c.describe_index(name))
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert not any("\n" in p.name for p in server.data_dir.iterdir())
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.IndexNodeStub(channel)
        for bad in (np.nan, 3e38):
            x = np.ones((5, DIM), np.float32)
            x[1, 1] = bad
            create = pb.CreateIndexRequest(index_name="n", dim=DIM, index_type="FLAT", vectors=wire.pack_vectors(x))
            e = rpc_error(lambda create=create: stub.CreateIndex(iter([create]), timeout=10))
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "row 1" in e.details()
            search = pb.SearchRequest(index_name="a", queries=wire.pack_vectors(x), limit=3)
            e = rpc_error(lambda search=search: stub.Search(search, timeout=10))
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
        e = rpc_error(lambda: stub.Search(pb.SearchRequest(index_name="a", queries=wire.pack_vectors(
            np.ones((1, DIM), np.float32)), search_params={"k" * 5000: "1"}), timeout=10))
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and len(e.details()) <= 1003


def _can_mount_tmpfs() -> str:
    if shutil.which("unshare") is None:
        return "unshare is not installed"
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            "d=$(mktemp -d) && mount -t tmpfs -o size=1m tmpfs $d && umount $d && rmdir $d"],
                           capture_output=True, text=True)
    return "" if probe.returncode == 0 else f"no tmpfs in a user namespace here: {probe.stderr.strip()[:200]}"


def test_defect02_real_full_disk_answers_resource_exhausted_and_loses_nothing_acknowledged(tmp_path):
    """A 4 MiB tmpfs in a user namespace; test_durability.py covers the same with an injected ENOSPC."""
    reason = _can_mount_tmpfs()
    if reason:
        pytest.skip(reason)
    out = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", sys.executable,
                          str(Path(__file__).with_name("full_disk_scenario.py")), str(tmp_path)],
                         capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["insert_on_full_disk"].startswith("RESOURCE_EXHAUSTED"), report
    assert report["rows_after_failed_insert"] == 100
    assert report["release_on_full_disk"].split(":")[0] in ("OK", "RESOURCE_EXHAUSTED"), report
    assert report["retry_after_freeing"] == "OK" and report["more"] == "OK"
    assert report["rows_after_restart"] == 5150 and report["vectors_intact"]
