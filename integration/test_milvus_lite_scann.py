"""SCANN inside Milvus Lite, driven with plain pymilvus code against `anisoscan lite` servers,
plus the one registration line for the in-process database."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("milvus_lite", reason="milvus-lite is not installed (pip install '.[test]')")

from anisoscan.datasets import make_clustered  # noqa: E402
from lite_server import LiteServer  # noqa: E402
from pymilvus import DataType, MilvusClient, MilvusException  # noqa: E402

N, DIM, BATCH, FLUSH_EVERY = 100_000, 32, 10_000, 20_000
NQ, LIMIT = 50, 10
SEARCH = {"nprobe": 32, "reorder_k": 100}
INDEX = {"nlist": 128, "with_raw_data": True}


@dataclass
class Coll:
    mc: MilvusClient
    name: str
    metric: str
    pks: list
    vectors: np.ndarray
    queries: np.ndarray

    def search(self, queries=None, params=SEARCH, limit=LIMIT, expr="", fields=("tag",)):
        data = (self.queries if queries is None else queries).tolist()
        return self.mc.search(self.name, data=data, limit=limit, filter=expr, output_fields=list(fields),
                              search_params={"metric_type": self.metric, "params": params})


def pk_values(pk_type: str, start: int, count: int) -> list:
    keys = range(start, start + count)
    return [f"doc-{i}" for i in keys] if pk_type == "varchar" else list(keys)


def exact(coll: Coll, queries: np.ndarray, limit: int, rows: np.ndarray | None = None) -> np.ndarray:
    """Row numbers of the exact top-limit (numpy), over `rows` when given."""
    base = coll.vectors if rows is None else coll.vectors[rows]
    if coll.metric == "L2":
        d = ((queries[:, None, :] - base[None]) ** 2).sum(-1)
    else:
        b = base / np.linalg.norm(base, axis=1, keepdims=True) if coll.metric == "COSINE" else base
        d = -queries @ b.T
    top = np.argsort(d, axis=1, kind="stable")[:, :limit]
    return top if rows is None else rows[top]


def recall(coll: Coll, hits, truth_rows: np.ndarray) -> float:
    row_of = {pk: i for i, pk in enumerate(coll.pks)}
    found = sum(len({row_of[h.id] for h in hit} & set(t)) for hit, t in zip(hits, truth_rows))
    return found / truth_rows.size


def make_collection(mc: MilvusClient, name: str, metric: str, pk_type: str, n: int, flush_every: int,
                    index: dict | None = None, index_type: str = "SCANN", seed: int = 1) -> Coll:
    data = make_clustered(n, DIM, n_queries=NQ, metric="L2" if metric == "L2" else "IP", seed=seed)
    schema = mc.create_schema(auto_id=False)
    if pk_type == "varchar":
        schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=32)
    else:
        schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("tag", DataType.INT64)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    ip = mc.prepare_index_params()
    ip.add_index("vector", index_type=index_type, metric_type=metric, params=INDEX if index is None else index)
    mc.create_collection(name, schema=schema, index_params=ip, consistency_level="Strong")
    pks = pk_values(pk_type, 0, n)
    for start in range(0, n, BATCH):
        stop = min(n, start + BATCH)
        mc.insert(name, [{"pk": pks[i], "tag": i % 100, "vector": data.base[i].tolist()} for i in range(start, stop)])
        if stop % flush_every == 0 or stop == n:
            mc.flush(name)
    return Coll(mc, name, metric, pks, data.base, data.queries)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = LiteServer(tmp_path_factory.mktemp("lite") / "scann.db").start()
    yield s
    s.stop()


@pytest.fixture(scope="module", params=[("int64", "IP"), ("varchar", "L2"), ("int64", "COSINE")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def coll(server, request):
    pk_type, metric = request.param
    mc = MilvusClient(server.uri)
    c = make_collection(mc, f"c_{pk_type}_{metric.lower()}", metric, pk_type, N, FLUSH_EVERY)
    yield c
    mc.close()


def test_describe_index_shows_scann_and_its_params(coll):
    info = coll.mc.describe_index(coll.name, "vector")
    assert info["index_type"] == "SCANN" and info["metric_type"] == coll.metric
    params = info.get("params", info)
    assert int(params["nlist"]) == INDEX["nlist"] and str(params["with_raw_data"]).lower() == "true"
    assert coll.mc.get_collection_stats(coll.name)["row_count"] == N


def test_search_finds_the_exact_neighbours_with_milvus_distances(coll):
    hits = coll.search()
    assert recall(coll, hits, exact(coll, coll.queries, LIMIT)) >= 0.9
    row_of = {pk: i for i, pk in enumerate(coll.pks)}
    for q, row in zip(coll.queries, hits):
        assert len(row) == LIMIT
        v = coll.vectors[[row_of[h.id] for h in row]]
        if coll.metric == "L2":
            want = ((v - q) ** 2).sum(1)  # squared, smaller first
        elif coll.metric == "COSINE":
            want = v @ q / np.linalg.norm(v, axis=1) / np.linalg.norm(q)
        else:
            want = v @ q
        got = np.array([h["distance"] for h in row])
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
        assert np.all(np.diff(got) >= -1e-5) if coll.metric == "L2" else np.all(np.diff(got) <= 1e-5)


@pytest.mark.parametrize("percent", [1, 10, 50])
def test_filters_apply_inside_the_scan(coll, percent):
    expr = f"tag < {percent}"
    hits = coll.search(expr=expr)
    rows = np.flatnonzero(np.arange(N) % 100 < percent)
    for row in hits:
        assert len(row) == LIMIT  # limit hits whenever limit rows pass
        assert all(h["entity"]["tag"] < percent for h in row)
    assert recall(coll, hits, exact(coll, coll.queries, LIMIT, rows)) >= 0.9


def test_a_filter_passing_fewer_rows_than_limit_returns_them_all(coll):
    chosen = [coll.pks[i] for i in (3, 30_001, 77_777)]
    hits = coll.search(expr=f"pk in {json.dumps(chosen)}")
    for row in hits:
        assert sorted(h.id for h in row) == sorted(chosen)


def test_deleted_rows_vanish_and_upserts_are_found(coll):
    before = coll.search(queries=coll.queries[:5], fields=())
    gone = sorted({row[0].id for row in before}, key=str)
    coll.mc.delete(coll.name, ids=gone)
    after = coll.search(queries=coll.queries[:5], fields=())
    assert not {h.id for row in after for h in row} & set(gone)
    assert all(len(row) == LIMIT for row in after)
    # upsert one deleted key back with the first query's own vector: it becomes that query's best hit
    coll.mc.upsert(coll.name, [{"pk": gone[0], "tag": 0, "vector": coll.queries[0].tolist()}])
    top = coll.search(queries=coll.queries[:1], fields=())[0][0]
    assert top.id == gone[0]
    assert coll.mc.query(coll.name, filter="tag >= 0", output_fields=["count(*)"])[0]["count(*)"] \
        == N - len(gone) + 1


def _data_files(db: Path, name: str) -> tuple[set[str], set[str]]:
    folder = next(p for p in (db / "collections").rglob(name) if p.is_dir())
    data = {p.stem for p in folder.rglob("*.parquet") if p.parent.name == "data"}
    sidecars = {p.name.split(".")[0] for p in folder.rglob("*.vector.scann.idx")}
    return data, sidecars


def test_compaction_merges_segments_and_rebuilds_their_indexes(server, coll):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        data, sidecars = _data_files(server.db, coll.name)
        if len(data) < N // FLUSH_EVERY and data <= sidecars:
            break
        time.sleep(0.5)
    data, sidecars = _data_files(server.db, coll.name)
    assert len(data) < N // FLUSH_EVERY, f"no compaction: {sorted(data)}"
    assert data <= sidecars, f"segments without a SCANN index: {sorted(data - sidecars)}"
    assert any(int(m.group(2)) - int(m.group(1)) >= 2 * FLUSH_EVERY
               for m in (re.search(r"_(\d+)_(\d+)$", d) for d in data) if m)
    assert recall(coll, coll.search(), exact(coll, coll.queries, LIMIT)) >= 0.9


def test_bad_input_is_a_milvus_error_and_the_server_keeps_serving(coll):
    count = coll.mc.get_collection_stats(coll.name)["row_count"]
    cases = [
        lambda: coll.search(queries=np.zeros((1, DIM + 3), np.float32)),  # dimension mismatch
        lambda: coll.search(queries=np.full((1, DIM), np.nan, np.float32)),  # NaN query
        lambda: coll.search(params={"nprobe": 8, "reorder_k": LIMIT - 1}),  # reorder_k < limit
        lambda: coll.search(params={"nprobe": 0}),
    ]
    for case in cases:
        with pytest.raises(MilvusException) as e:
            case()
        assert e.value.code == 6 and "SCANN search" in e.value.message  # Milvus's IllegalArgument
    assert len(coll.search()[0]) == LIMIT
    assert coll.mc.get_collection_stats(coll.name)["row_count"] == count


@pytest.mark.parametrize("params, field", [({"nlist": 0}, "nlist"), ({"nlist": "many"}, "nlist"),
                                           ({"with_raw_data": "maybe"}, "with_raw_data"),
                                           ({"sub_dim": 64}, "sub_dim"), ({"bogus": 1}, "bogus")])
def test_invalid_scann_params_fail_at_create_index(server, params, field):
    mc = MilvusClient(server.uri)
    schema = mc.create_schema(auto_id=False)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    mc.create_collection("bad_params", schema=schema)
    try:
        ip = mc.prepare_index_params()
        ip.add_index("vector", index_type="SCANN", metric_type="IP", params=params)
        with pytest.raises(MilvusException) as e:
            mc.create_index("bad_params", ip)
        assert e.value.code == 6 and field in e.value.message  # Milvus's IllegalArgument, naming the key
        assert mc.list_indexes("bad_params") == []  # nothing was stored
    finally:
        mc.drop_collection("bad_params")
        mc.close()


def test_exhaustive_search_equals_flat(server):
    """A 600-row segment (the exact path) and a 2,400-row one (IVF) at nprobe >= nlist, re-ranking all."""
    mc = MilvusClient(server.uri)
    try:
        scann = make_collection(mc, "exh_scann", "L2", "varchar", 3_000, 600, index={"nlist": 16}, seed=5)
        flat = make_collection(mc, "exh_flat", "L2", "varchar", 3_000, 600, index={}, index_type="FLAT", seed=5)
        a = scann.search(params={"nprobe": 65536, "reorder_k": 3_000}, fields=())
        b = flat.search(params={}, fields=())
        assert [[h.id for h in row] for row in a] == [[h.id for h in row] for row in b]
        np.testing.assert_allclose([[h["distance"] for h in r] for r in a], [[h["distance"] for h in r] for r in b],
                                   rtol=1e-4)
    finally:
        for name in ("exh_scann", "exh_flat"):
            mc.drop_collection(name)
        mc.close()


def test_restart_loads_the_sidecars_instead_of_rebuilding(server, coll):
    before = coll.search(fields=())
    files = {p: p.stat().st_mtime_ns for p in server.db.rglob("*.scann.idx")}
    server.stop()
    server.start()
    coll.mc = MilvusClient(server.uri)
    coll.mc.load_collection(coll.name)
    after = coll.search(fields=())
    assert [[h.id for h in r] for r in after] == [[h.id for h in r] for r in before]
    log = server.log()
    assert "SCANN segment index loaded" in log and "SCANN segment index built" not in log
    assert all(p.stat().st_mtime_ns == t for p, t in files.items() if p.exists())


def test_in_process_and_served_results_agree(tmp_path):
    """MilvusClient("./x.db") in this process, then the same database served to a second process."""
    import anisoscan.milvus.lite  # noqa: F401 - the registration line
    from milvus_lite.server_manager import server_manager_instance

    db = tmp_path / "local.db"
    local = make_collection(MilvusClient(str(db)), "local", "IP", "int64", 5_000, 2_500, seed=9)
    local.mc.load_collection("local")
    here = local.search(fields=())
    local.mc.close()
    server_manager_instance.release_server(str(db))  # closes the in-process database
    served = LiteServer(db).start()
    try:
        remote = MilvusClient(served.uri)
        remote.load_collection("local")
        local.mc = remote
        there = local.search(fields=())
        assert [[h.id for h in r] for r in there] == [[h.id for h in r] for r in here]
        np.testing.assert_allclose([[h["distance"] for h in r] for r in there],
                                   [[h["distance"] for h in r] for r in here], rtol=1e-5)
        remote.close()
    finally:
        served.stop()


def test_a_damaged_sidecar_is_set_aside_and_rebuilt(tmp_path):
    served = LiteServer(tmp_path / "damaged.db").start()
    try:
        c = make_collection(MilvusClient(served.uri), "d", "IP", "int64", 5_000, 5_000, seed=11)
        c.mc.load_collection("d")
        before = c.search(fields=())
        served.stop()
        (sidecar,) = served.db.rglob("*.scann.idx")
        raw = bytearray(sidecar.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        sidecar.write_bytes(bytes(raw))
        served.start()
        c.mc = MilvusClient(served.uri)
        c.mc.load_collection("d")
        assert [[h.id for h in r] for r in c.search(fields=())] == [[h.id for h in r] for r in before]
        assert sidecar.exists() and Path(f"{sidecar}.damaged").exists()
        assert "moved to" in served.log() and "SCANN segment index built" in served.log()
    finally:
        served.stop()


def test_a_pymilvus_2_6_client_reaches_scann(tmp_path):
    """The served database through pymilvus 2.6 (nested "params" JSON on the wire), in its own venv."""
    import subprocess
    import sys

    venv = tmp_path / "pymilvus26"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "pymilvus>=2.6,<2.7"], capture_output=True,
                         text=True)
    if pip.returncode != 0:
        pytest.skip(f"pymilvus 2.6 could not be installed (offline?): {pip.stderr[-300:]}; "
                    "pymilvus 3 covers the same calls above")
    served = LiteServer(tmp_path / "old.db").start()
    try:
        run = subprocess.run([str(venv / "bin" / "python"), str(Path(__file__).parent / "old_client_check.py"),
                              served.uri], capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr[-2000:]
        assert run.stdout.startswith("pymilvus 2.6")
    finally:
        served.stop()
