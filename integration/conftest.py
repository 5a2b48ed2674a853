"""Milvus tiers for the integration tests: embedded Milvus Lite, a real Milvus standalone
server (PyPI `milvus` 2.3.5, started here), and a Docker deployment reached via MILVUS_URI."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # server_process helper

from server_process import free_port  # noqa: E402

pymilvus = pytest.importorskip("pymilvus", reason="pymilvus is not installed (pip install '.[test]')")


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory):
    """A real Milvus 2.3.5 standalone server in a temporary directory, stopped at the end."""
    try:
        from milvus import MilvusServer
    except ImportError as e:
        pytest.skip(f"the PyPI package 'milvus' (a Milvus 2.3.5 server) is not installed: {e}")
    server = MilvusServer()
    server.set_base_dir(str(tmp_path_factory.mktemp("milvus-server")))
    server.listen_port = free_port()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def docker_milvus_uri() -> str:
    """MILVUS_URI, the Docker Milvus 2.6 deployment; skips the tests that need it where it is not set."""
    uri = os.environ.get("MILVUS_URI")
    if not uri:
        pytest.skip("MILVUS_URI is not set: run integration/docker-compose.yml on a machine with a Docker "
                    "engine (none here) and set MILVUS_URI=http://127.0.0.1:19530")
    return uri


@pytest.fixture(scope="module")
def milvus_server_uri(milvus_server):
    """Per module: a test that restarts the server may find it on another port afterwards."""
    return f"http://127.0.0.1:{milvus_server.listen_port}"


@pytest.fixture()
def milvus_lite(tmp_path):
    """Embedded Milvus Lite, for tests whose subject does not depend on the Milvus tier."""
    from pymilvus import MilvusClient

    pytest.importorskip("milvus_lite", reason="milvus-lite is not installed (pip install '.[test]')")
    client = MilvusClient(str(tmp_path / "lite.db"))
    yield client
    client.close()


@pytest.fixture(params=["lite", "server", "docker"])
def milvus(request, tmp_path):
    """A MilvusClient on each tier; the tier is request.param."""
    from pymilvus import MilvusClient

    if request.param == "lite":
        pytest.importorskip("milvus_lite", reason="milvus-lite is not installed (pip install '.[test]')")
        client = MilvusClient(str(tmp_path / "lite.db"))
    elif request.param == "server":
        client = MilvusClient(request.getfixturevalue("milvus_server_uri"))
    else:
        client = MilvusClient(request.getfixturevalue("docker_milvus_uri"))
    client.tier = request.param
    yield client
    for name in client.list_collections():
        if name.startswith("anisoscan_test_"):
            client.drop_collection(name)
    client.close()
