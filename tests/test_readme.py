"""The README's parameter tables are the core's schema (its snippets run in
integration/test_readme_snippets.py, beside a real Milvus server)."""

from __future__ import annotations

from pathlib import Path

import pytest
from anisoscan import params

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("phase", ["build", "search"])
def test_parameter_tables_are_the_core_schema(phase):
    table = params.markdown_table(phase)
    assert table in README.read_text(), f"README's {phase} table differs from the schema; paste:\n{table}"
    names = [s.name for s in params.SCHEMA if s.phase == phase]
    assert names and all(f"| `{name}` |" in table for name in names)
