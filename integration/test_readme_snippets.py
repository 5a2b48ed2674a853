"""The README's Python snippets run top to bottom as written, one namespace for all, with
the servers its shell commands start: `anisoscan serve` (the node) and `anisoscan front`
before a real Milvus server."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from anisoscan.milvus.front import FrontServer, Settings
from server_process import ServerProcess

README = Path(__file__).resolve().parents[1] / "README.md"
NODE_ADDRESS = "127.0.0.1:19531"  # where the README's `anisoscan serve` listens
FRONT_ADDRESS = "127.0.0.1:19540"  # where the README's `anisoscan front` listens


def _python_snippets() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def test_snippets_run_top_to_bottom(tmp_path, monkeypatch, milvus_server_uri):
    pytest.importorskip("milvus_lite", reason="milvus-lite is not installed (pip install '.[test]')")
    snippets = _python_snippets()
    assert len(snippets) >= 6, "the README lost its Python snippets"
    monkeypatch.chdir(tmp_path)
    # The README's servers listen on fixed ports; here they take free ones.
    node = ServerProcess(tmp_path / "node")
    node.start()
    front = FrontServer.start(Settings(milvus_server_uri, tmp_path / "front", port=0))
    namespace: dict = {}
    try:
        for number, code in enumerate(snippets, 1):
            code = code.replace(NODE_ADDRESS, node.address).replace(FRONT_ADDRESS, f"127.0.0.1:{front.port}")
            try:
                exec(compile(code, f"README python snippet {number}", "exec"), namespace)  # noqa: S102
            except Exception as e:
                raise AssertionError(f"README python snippet {number} failed: {e!r}\n{code}") from e
        hits = namespace["hits"]  # the last snippet's: the front's filtered search with output fields
        assert len(hits) == 5 and all(len(h) == 10 for h in hits)
        assert all(hit["entity"]["category"] == "news" for h in hits for hit in h)
        ids = namespace["ids"]  # the node's search of x[:5] after deleting ids 0 and 1
        assert ids.shape == (5, 10) and not np.isin(ids, [0, 1]).any()
        np.testing.assert_array_equal(ids[2:, 0], [2, 3, 4])  # each query finds itself first
    finally:
        client = namespace.get("client")
        if client is not None:
            if "docs" in client.list_collections():
                client.drop_collection("docs")
            client.close()
        front.stop()
        node.stop()
