"""The IndexNode service against a real server process on a free localhost port."""

from __future__ import annotations

import threading

import grpc
import numpy as np
import pytest
from anisoscan import Client, Index, exact_search, recall_at_k
from anisoscan.datasets import make_clustered
from anisoscan.v1 import index_node_pb2 as pb
from anisoscan.v1 import index_node_pb2_grpc as pb_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from server_process import ServerProcess

SCANN = {"index_type": "SCANN", "metric_type": "IP", "params": {"nlist": 16, "with_raw_data": True}}


@pytest.fixture(scope="module")
def data():
    return make_clustered(3000, 24, n_queries=50, n_clusters=30, metric="IP", seed=2)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ServerProcess(tmp_path_factory.mktemp("node") / "data")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(server):
    with Client(server.address) as c:
        yield c


def code_of(excinfo) -> grpc.StatusCode:
    return excinfo.value.code()


def test_full_lifecycle_matches_in_process(client, data):
    info = client.create_index("docs", 24, SCANN, vectors=data.base, ids=np.arange(3000) + 100, wait=True)
    assert info["state"] == "Finished" and info["num_rows"] == 3000 and info["progress"] == 1.0
    assert info["params"] == {"nlist": "16", "with_raw_data": "true"}
    assert "docs" in client.list_indexes()
    local = Index(24, "IP", nlist=16).build(data.base, np.arange(3000) + 100)
    remote = client.search("docs", data.queries, limit=10, search_params={"nprobe": 4, "reorder_k": 40})
    np.testing.assert_array_equal(remote[0], local.search(data.queries, 10, nprobe=4, reorder_k=40)[0])
    np.testing.assert_allclose(remote[1], local.search(data.queries, 10, nprobe=4, reorder_k=40)[1])

    assert client.insert("docs", -data.base[:5], np.arange(5) + 10_000) == 3005
    np.testing.assert_allclose(client.get_vectors("docs", [10_002]), -data.base[2:3])
    assert client.delete("docs", [10_000, 100]) == 3003
    ids, _ = client.search("docs", data.base[:1], limit=5, search_params={"params": {"nprobe": 16}})
    assert 100 not in ids
    allowed = np.arange(100, 200)
    ids, _ = client.search("docs", data.queries, limit=5, allowed_ids=allowed)
    assert np.isin(ids, allowed).all()

    client.release_index("docs")
    assert client.describe_index("docs")["loaded"] is False
    with pytest.raises(grpc.RpcError) as e:
        client.search("docs", data.queries)
    assert code_of(e) == grpc.StatusCode.FAILED_PRECONDITION
    client.load_index("docs")
    assert client.describe_index("docs")["num_rows"] == 3003
    client.drop_index("docs")
    assert "docs" not in client.list_indexes()


def test_flat_index_is_exact(client, data):
    client.create_index("flat", 24, {"index_type": "FLAT", "metric_type": "L2"}, vectors=data.base)
    ids, dist = client.search("flat", data.queries, limit=10)
    truth, truth_dist = exact_search(data.base, data.queries, 10, "L2")
    np.testing.assert_array_equal(ids, truth)
    np.testing.assert_allclose(dist, truth_dist, rtol=1e-5)


def test_health_and_reflection(server):
    with grpc.insecure_channel(server.address) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="anisoscan.v1.IndexNode"), timeout=5)
        assert status.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name for r in responses for s in r.list_services_response.service}
        assert "anisoscan.v1.IndexNode" in names


def test_error_codes(client, server, data):
    client.create_index("errs", 24, SCANN, vectors=data.base)
    cases = [
        (lambda: client.search("nope", data.queries), grpc.StatusCode.NOT_FOUND),
        (lambda: client.create_index("errs", 24, SCANN, vectors=data.base), grpc.StatusCode.ALREADY_EXISTS),
        (lambda: client.search("errs", data.queries[:, :10]), grpc.StatusCode.INVALID_ARGUMENT),
        (lambda: client.search("errs", data.queries, search_params={"nprobe": 999}), grpc.StatusCode.INVALID_ARGUMENT),
        (lambda: client.search("errs", data.queries, search_params={"bogus": 1}), grpc.StatusCode.INVALID_ARGUMENT),
        (lambda: client.search("errs", data.queries, limit=10, search_params={"reorder_k": 5}),
         grpc.StatusCode.INVALID_ARGUMENT),
        (lambda: client.delete("errs", [123456789]), grpc.StatusCode.INVALID_ARGUMENT),
        (lambda: client.insert("errs", data.base[:1], [0]), grpc.StatusCode.INVALID_ARGUMENT),
        (lambda: client.create_index("../x", 24, SCANN, vectors=data.base), grpc.StatusCode.INVALID_ARGUMENT),
        (lambda: client.describe_index("../../etc"), grpc.StatusCode.INVALID_ARGUMENT),
        (lambda: client.create_index("bad", 24, {"index_type": "HNSW"}, vectors=data.base),
         grpc.StatusCode.INVALID_ARGUMENT),
    ]
    for call, expected in cases:
        with pytest.raises(grpc.RpcError) as e:
            call()
        assert code_of(e) == expected, (e.value.details(), expected)
    # Malformed bytes: a vector payload that is not whole rows.
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.IndexNodeStub(channel)
        bad = pb.SearchRequest(index_name="errs", queries=pb.Vectors(dim=24, data=b"\x00" * 10), limit=3)
        with pytest.raises(grpc.RpcError) as e:
            stub.Search(bad, timeout=10)
        assert code_of(e) == grpc.StatusCode.INVALID_ARGUMENT and "whole number of rows" in e.value.details()
    # Too large a message for the server's limit.
    with pytest.raises(grpc.RpcError) as e, Client(server.address, max_message_bytes=512 << 20) as big:
        big.search("errs", np.zeros((3_000_000, 24), np.float32))
    assert code_of(e) == grpc.StatusCode.RESOURCE_EXHAUSTED
    # A failed build shows up as Failed, and searching it is a precondition error.
    client.create_index("toofew", 24, {"index_type": "SCANN", "params": {"nlist": 5000}}, vectors=data.base[:10],
                        wait=False)
    with pytest.raises(RuntimeError, match="nlist"):
        client.wait_for_index("toofew", timeout=30)
    with pytest.raises(grpc.RpcError) as e:
        client.search("toofew", data.queries)
    assert code_of(e) == grpc.StatusCode.FAILED_PRECONDITION
    assert client.describe_index("errs")["state"] == "Finished"  # the server is still fine


def test_concurrent_searches_while_inserting(client, data):
    client.create_index("busy", 24, SCANN, vectors=data.base)
    truth, _ = exact_search(data.base, data.queries, 10, "IP")
    errors, recalls = [], []

    def searcher():
        try:
            with Client(client_address(client)) as c:
                for _ in range(15):
                    ids, _ = c.search("busy", data.queries, limit=10, search_params={"nprobe": 16, "reorder_k": 3000},
                                      excluded_ids=np.arange(50_000, 60_000))
                    recalls.append(recall_at_k(ids, truth, 10))
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    def inserter():
        try:
            with Client(client_address(client)) as c:
                for i in range(20):
                    c.insert("busy", -data.base[i * 10:(i + 1) * 10], np.arange(10) + 50_000 + i * 10)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=searcher) for _ in range(3)] + [threading.Thread(target=inserter)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert recalls and min(recalls) == 1.0
    assert client.describe_index("busy")["num_rows"] == 3200


def client_address(client: Client) -> str:
    return client._channel._channel.target().decode()  # noqa: SLF001 - the test reuses the address


def test_acknowledged_inserts_survive_sigkill(tmp_path, data):
    proc = ServerProcess(tmp_path / "data")
    proc.start()
    acked: list[int] = []
    try:
        with Client(proc.address) as c:
            c.create_index("durable", 24, SCANN, vectors=data.base)
            stop = threading.Event()

            def writer():
                i = 0
                while not stop.is_set():
                    try:
                        c.insert("durable", data.base[i % 3000: i % 3000 + 1] * 0.5, [100_000 + i])
                    except grpc.RpcError:
                        return
                    acked.append(100_000 + i)
                    i += 1

            t = threading.Thread(target=writer)
            t.start()
            while len(acked) < 40:
                threading.Event().wait(0.01)
            proc.kill()
            stop.set()
            t.join()
        proc.start()
        with Client(proc.address) as c:
            info = c.describe_index("durable")
            assert info["state"] == "Finished" and info["loaded"]
            assert info["num_rows"] >= 3000 + len(acked)
            got = c.get_vectors("durable", acked)
            np.testing.assert_allclose(got, data.base[np.arange(len(acked)) % 3000] * 0.5, rtol=1e-6)
            ids, _ = c.search("durable", data.queries, limit=5)
            assert (ids >= 0).all()
    finally:
        proc.stop()


def test_token_is_required_when_configured(tmp_path, data):
    proc = ServerProcess(tmp_path / "data", "--token", "s3cret")
    proc.start()
    try:
        for token in (None, "wrong"):
            with Client(proc.address, token=token) as c, pytest.raises(grpc.RpcError) as e:
                c.list_indexes()
            assert code_of(e) == grpc.StatusCode.UNAUTHENTICATED
            with Client(proc.address, token=token) as c, pytest.raises(grpc.RpcError) as e:
                c.create_index("t", 24, SCANN, vectors=data.base)
            assert code_of(e) == grpc.StatusCode.UNAUTHENTICATED
        with Client(proc.address, token="s3cret") as c:
            c.create_index("t", 24, SCANN, vectors=data.base)
            assert c.list_indexes() == ["t"]
    finally:
        proc.stop()


def test_indexes_are_reloaded_after_restart(tmp_path, data):
    proc = ServerProcess(tmp_path / "data")
    proc.start()
    try:
        with Client(proc.address) as c:
            c.create_index("keep", 24, SCANN, vectors=data.base)
            c.create_index("cold", 24, {"index_type": "FLAT", "metric_type": "IP"}, vectors=data.base)
            c.release_index("cold")
            before = c.search("keep", data.queries, limit=10)
        proc.stop()
        proc.start()
        with Client(proc.address) as c:
            assert sorted(c.list_indexes()) == ["cold", "keep"]
            np.testing.assert_array_equal(c.search("keep", data.queries, limit=10)[0], before[0])
            assert c.describe_index("cold")["loaded"] is False
            c.load_index("cold")
            assert c.describe_index("cold")["num_rows"] == 3000
    finally:
        proc.stop()
