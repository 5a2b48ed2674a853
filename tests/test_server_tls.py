"""TLS and mutual TLS on the IndexNode server, with certificates made by openssl."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import grpc
import numpy as np
import pytest
from anisoscan import Client
from server_process import ServerProcess


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make test certificates")
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "1", "-subj", "/CN=anisoscan-test-ca", cwd=d)
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={'localhost' if name == 'server' else 'client'}", cwd=d)
        (d / f"{name}.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "1", "-extfile", f"{name}.ext", cwd=d)
    return d


def test_tls_and_mutual_tls(pki, tmp_path):
    x = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)
    proc = ServerProcess(tmp_path / "data", "--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"),
                         "--tls-client-ca", str(pki / "ca.pem"))
    creds = grpc.ssl_channel_credentials((pki / "ca.pem").read_bytes(), (pki / "client.key").read_bytes(),
                                         (pki / "client.pem").read_bytes())
    proc.start(channel_credentials=creds)
    try:
        with Client(proc.address, root_certificates=pki / "ca.pem", certificate_chain=pki / "client.pem",
                    private_key=pki / "client.key", server_name="localhost") as c:
            c.create_index("secure", 8, {"index_type": "FLAT", "metric_type": "L2"}, vectors=x)
            ids, _ = c.search("secure", x[:3], limit=1)
            assert ids[:, 0].tolist() == [0, 1, 2]
        # Without a client certificate the handshake is refused.
        with Client(proc.address, root_certificates=pki / "ca.pem", server_name="localhost", timeout=5) as c:
            with pytest.raises(grpc.RpcError) as e:
                c.list_indexes()
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        # A plaintext client cannot talk to a TLS server.
        with Client(proc.address, timeout=5) as c, pytest.raises(grpc.RpcError):
            c.list_indexes()
    finally:
        proc.stop()
