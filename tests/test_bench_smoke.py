"""The benchmark commands run end to end on tiny inputs and write what they promise."""

from __future__ import annotations

import json

import pytest
from anisoscan.bench.__main__ import main as bench_main
from anisoscan.cli import main as cli_main


def test_compare_writes_json_table_and_plot(tmp_path):
    peers = {"anisoscan", "anisoscan-noraw", "anisoscan-soar-sq8", "faiss-ivfpqfs-refine-sq8"}
    assert bench_main(["compare", "--generate", "3000,16", "--quick", "--peers", ",".join(sorted(peers)),
                       "--out", str(tmp_path), "--no-progress"]) == 0
    stem = tmp_path / "clustered-3000x16-quick"
    report = json.loads(stem.with_suffix(".json").read_text())
    assert {r["name"] for r in report["indexes"]} == peers
    for r in report["indexes"]:
        assert r["points"] and all(0.0 <= p["recall"] <= 1.0 for p in r["points"])
    assert report["machine"]
    table = stem.with_suffix(".md").read_text()
    assert "| anisoscan |" in table and "recall@10" in table
    assert stem.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_kernel_benchmark_json_shape(capsys):
    assert bench_main(["kernel", "--dim", "32", "--seconds", "0.01", "--memory-mb", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dim"] == 32
    assert "scalar" in report["levels"]
    for level in report["levels"].values():
        assert level["in_cache_vectors_per_s"] > 0 and level["in_memory_vectors_per_s"] > 0
        assert level["batched_in_cache_vectors_per_s"] > 0 and level["batched_in_memory_vectors_per_s"] > 0
    assert report["queries_per_pass"] == 4


def test_cli_forwards_bench_arguments(capsys):
    with pytest.raises(SystemExit) as e:
        cli_main(["bench", "--help"])
    assert e.value.code == 0
    assert "kernel" in capsys.readouterr().out
