"""The README a newcomer reads: its parameter tables are the core's schema, and its Python
snippets run top to bottom as written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from anisoscan import params
from server_process import ServerProcess

README = Path(__file__).resolve().parents[1] / "README.md"
NODE_ADDRESS = "127.0.0.1:19531"  # where the README's `anisoscan serve` command listens


def _python_snippets() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


@pytest.mark.parametrize("phase", ["build", "search"])
def test_parameter_tables_are_the_core_schema(phase):
    table = params.markdown_table(phase)
    assert table in README.read_text(), f"README's {phase} table differs from the schema; paste:\n{table}"
    names = [s.name for s in params.SCHEMA if s.phase == phase]
    assert names and all(f"| `{name}` |" in table for name in names)


def test_snippets_run_top_to_bottom(tmp_path, monkeypatch):
    pytest.importorskip("milvus_lite", reason="milvus-lite is not installed (pip install '.[test]')")
    snippets = _python_snippets()
    assert len(snippets) >= 5, "the README lost its Python snippets"
    monkeypatch.chdir(tmp_path)
    # The README starts the node with `anisoscan serve --port 19531`; here it takes a free port.
    server = ServerProcess(tmp_path / "node")
    server.start()
    namespace: dict = {}
    try:
        for number, code in enumerate(snippets, 1):
            code = code.replace(NODE_ADDRESS, server.address)
            try:
                exec(compile(code, f"README python snippet {number}", "exec"), namespace)  # noqa: S102
            except Exception as e:
                raise AssertionError(f"README python snippet {number} failed: {e!r}\n{code}") from e
    finally:
        namespace.get("client") and namespace["client"].close()
        server.stop()
    hits = namespace["hits"]  # the last snippet's: attach's filtered search with output fields
    assert len(hits) == 5 and all(len(h) == 10 for h in hits)
    assert all(hit["entity"]["category"] == "news" for h in hits for hit in h)
    ids = namespace["ids"]  # the node's search of x[:5] after deleting ids 0 and 1
    assert ids.shape == (5, 10) and not np.isin(ids, [0, 1]).any()
    np.testing.assert_array_equal(ids[2:, 0], [2, 3, 4])  # each query finds itself first
