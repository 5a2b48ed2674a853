"""Issue #17: one test per numbered defect, each reproducing the report, plus fault injection.

Nodes run in child processes (node_process.py) so that a test can SIGKILL them or crash them
at a crash point (anisoscan.node.faults) and then recover from what is on disk.
"""

from __future__ import annotations

import errno
import logging
import shutil
import sqlite3
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from anisoscan.cli import main as cli_main
from anisoscan.flat import FlatIndex
from anisoscan.node import IndexNode, faults, index_types
from anisoscan.node.errors import FailedPrecondition, ResourceExhausted
from anisoscan.node.limits import Limits
from anisoscan.node.salvage import main as salvage_main
from anisoscan.node.salvage import salvage
from anisoscan.node.store import DB_NAME, DELETE, Record
from node_process import NodeError, NodeProcess

DIM = 8


def rows(n: int, value: float) -> np.ndarray:
    return np.full((n, DIM), value, np.float32)


def folder(data_dir: Path, name: str) -> Path:
    (path,) = data_dir.glob(f"{name}.*")
    return path


def present(node: NodeProcess, name: str, ids: np.ndarray) -> np.ndarray:
    """Which of ids the index holds, by an exact search restricted to them."""
    found, _ = node.search(name, rows(1, 0.0), len(ids), {}, np.asarray(ids, np.int64), None)
    return np.isin(ids, found[0])


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def start_with_flat(data_dir: Path, name: str = "a", n: int = 20) -> NodeProcess:
    node = NodeProcess(data_dir)
    node.create(name, "FLAT", "L2", DIM, {}, rows(n, 1.0), np.arange(n))
    assert node.wait_finished(name).state == "Finished"
    return node


@pytest.mark.parametrize("damage", ["truncate_one_byte", "append_garbage", "append_zeros"])
def test_defect01_writes_acknowledged_after_a_damaged_log_tail_survive_the_next_restart(data_dir, damage):
    node = start_with_flat(data_dir)
    node.insert("a", rows(5, 2.0), np.arange(100, 105), False)
    node.kill()
    wal = folder(data_dir, "a") / f"{DB_NAME}-wal"
    with open(wal, "r+b") as f:
        if damage == "truncate_one_byte":
            f.truncate(wal.stat().st_size - 1)
        else:
            f.seek(0, 2)
            f.write(bytes(100) if damage == "append_zeros" else np.random.default_rng(0).bytes(100))
    node = NodeProcess(data_dir)
    assert node.describe("a").state == "Finished"
    acked = np.arange(1000, 1050)
    for i in acked:
        node.insert("a", rows(1, 3.0), np.array([i]), False)
    node.kill()
    node = NodeProcess(data_dir)
    assert present(node, "a", acked).all()
    node.close()


def test_defect02_full_disk_leaves_the_index_unchanged_and_acknowledged_writes_survive(data_dir):
    node = start_with_flat(data_dir)
    node.inject("log.append", errno.ENOSPC)
    with pytest.raises(NodeError) as e:
        node.insert("a", rows(1000, 2.0), np.arange(100, 1100), False)
    assert e.value.kind == "ResourceExhausted" and "disk is full" in e.value.message
    assert node.describe("a").num_rows == 20
    assert not present(node, "a", np.arange(100, 1100)).any()
    node.inject("log.append", None)  # space freed
    node.insert("a", rows(1000, 2.0), np.arange(100, 1100), False)  # a retry: not "already in the index"
    node.insert("a", rows(100, 4.0), np.arange(5000, 5100), False)
    node.kill()
    node = NodeProcess(data_dir)
    assert node.describe("a").num_rows == 1120
    assert present(node, "a", np.arange(5000, 5100)).all()
    node.close()


@pytest.mark.parametrize("crash_at", ["snapshot.write", "checkpoint.snapshot_written", "checkpoint.commit",
                                      "checkpoint.committed"])
def test_defect03_replay_is_idempotent_across_a_checkpoint(data_dir, crash_at):
    node = start_with_flat(data_dir)
    node.insert("a", rows(1, 2.0), np.array([900001]), False)
    node.delete("a", np.array([900001]))
    node.insert("a", rows(2, 3.0), np.array([900001, 900002]), False)
    node.crash_at(crash_at)
    node.send("checkpoint", "a")
    node.kill()
    node = NodeProcess(data_dir)
    d = node.describe("a")
    assert d.state == "Finished" and d.num_rows == 22
    assert present(node, "a", np.array([900001, 900002])).all()
    np.testing.assert_array_equal(node.get_vectors("a", np.array([900001])), rows(1, 3.0))
    assert len(list(folder(data_dir, "a").glob("0*-index.flat.npz"))) == 1  # no orphan snapshot left
    node.close()


def test_defect03_a_record_that_does_not_apply_fails_the_index_instead_of_being_skipped(data_dir):
    node = start_with_flat(data_dir)
    node.insert("a", rows(1, 2.0), np.array([500]), False)
    node.close()
    db = folder(data_dir, "a") / DB_NAME
    record = Record(2, DELETE, np.array([777], np.int64))  # deletes an id that is not there
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO log VALUES (?, ?, ?, ?, ?, ?)",
                     (2, DELETE, False, record.ids.tobytes(), None, record.crc()))
    node = NodeProcess(data_dir)
    d = node.describe("a")
    assert d.state == "Failed" and str(db) in d.error and "log record 2" in d.error
    node.close()


def test_defect04_oversized_replies_and_requests_are_refused_before_allocating(tmp_path, monkeypatch):
    node = IndexNode(tmp_path / "data", limits=Limits(max_reply_bytes=1 << 20, max_get_ids=1000,
                                                     max_insert_rows=500))
    node.create("a", "FLAT", "L2", DIM, {}, rows(20, 1.0), None)
    node.close()  # waits for the build
    node = IndexNode(tmp_path / "data", limits=Limits(max_reply_bytes=1 << 20, max_get_ids=1000,
                                                     max_insert_rows=500))

    def must_not_run(*args, **kwargs):
        raise AssertionError("the cap must be checked before the index allocates")

    monkeypatch.setattr(FlatIndex, "search", must_not_run)
    monkeypatch.setattr(FlatIndex, "get_vectors", must_not_run)
    with pytest.raises(ResourceExhausted, match="max_reply_bytes"):
        node.search("a", rows(150, 0.0), 1 << 20, {}, None, None)
    with pytest.raises(ResourceExhausted, match="max_get_ids"):
        node.get_vectors("a", np.zeros(4_000_000, np.int64))
    with pytest.raises(ResourceExhausted, match="max_insert_rows"):
        node.insert("a", rows(501, 2.0), np.arange(100, 601), False)
    assert node.describe("a").num_rows == 20
    node.close()


def test_defect05_a_build_of_a_dropped_index_cannot_bring_it_back(tmp_path, monkeypatch):
    real_build = index_types.FlatType.build
    release_first, second_started, release_second = threading.Event(), threading.Event(), threading.Event()
    calls: list[int] = []

    def gated_build(self, *args):
        calls.append(1)
        if len(calls) == 1:
            release_first.wait(30)
        else:
            second_started.set()
            release_second.wait(30)
        return real_build(self, *args)

    monkeypatch.setattr(index_types.FlatType, "build", gated_build)
    first = IndexNode(tmp_path / "data")  # one build worker: the second build waits for the first
    first.create("d", "FLAT", "IP", DIM, {}, rows(20, 1.0), None)
    first.drop("d")
    first.create("d", "FLAT", "L2", DIM, {}, rows(5, 1.0), None)
    release_first.set()  # the dropped index's build finishes late and writes what it wrote
    assert second_started.wait(30)
    recovered = IndexNode(tmp_path / "data")  # as after kill -9 with the second build unfinished
    d = recovered.describe("d")
    assert (d.metric, d.state) == ("L2", "Failed") and "interrupted" in d.error
    release_second.set()
    first.close()
    recovered.close()


def damage_the_log(data_dir: Path, damage: str) -> Path:
    """Ten one-row inserts into index "a" (values 100..109, seqs 1..10), then the damage; returns the file named."""
    node = start_with_flat(data_dir)
    node.create("b", "FLAT", "L2", DIM, {}, rows(10, 1.0), None)
    node.wait_finished("b")
    for i in range(10):
        node.insert("a", rows(1, 100.0 + i), np.array([1000 + i]), False)
    db = folder(data_dir, "a") / DB_NAME
    if damage == "flip_a_byte_early_in_sqlites_wal":
        node.kill()  # the commits stay in index.db-wal, one frame each
        wal = db.with_name(f"{DB_NAME}-wal")
        content = bytearray(wal.read_bytes())
        content[32 + (24 + 4096) + 24 + 200] ^= 0x01  # inside the second frame's page: the first insert
        wal.write_bytes(bytes(content))
        return wal
    node.close()  # SQLite moves its WAL into index.db
    if damage == "flip_a_byte_of_a_middle_record":
        content = bytearray(db.read_bytes())
        at = content.find(rows(1, 105.0).tobytes())
        assert at >= 0
        content[at + 5] ^= 0x40
        db.write_bytes(bytes(content))
    elif damage == "delete_a_middle_record":
        with sqlite3.connect(db) as conn:
            conn.execute("DELETE FROM log WHERE seq = 5")
    elif damage == "delete_the_database":
        db.unlink()
    else:
        db.write_bytes(b"")
    return db


@pytest.mark.parametrize("damage", ["flip_a_byte_of_a_middle_record", "delete_a_middle_record", "delete_the_database",
                                    "empty_the_database", "flip_a_byte_early_in_sqlites_wal"])
def test_defect06_damage_inside_the_log_fails_that_index_loudly_and_spares_the_others(data_dir, damage):
    named = damage_the_log(data_dir, damage)
    node = NodeProcess(data_dir)
    d = node.describe("a")
    assert d.state == "Failed" and str(named) in d.error, d
    assert node.describe("b").state == "Finished"
    node.insert("b", rows(1, 2.0), np.array([99]), False)
    with pytest.raises(NodeError, match="Failed"):
        node.search("a", rows(1, 0.0), 3, {}, None, None)
    node.drop("a")  # the way out for the operator after salvaging what they need
    node.close()


@pytest.mark.parametrize("damage, expected", [("flip_a_byte_of_a_middle_record", (5, 25, 5)),
                                              ("delete_a_middle_record", (4, 24, 5)),
                                              ("flip_a_byte_early_in_sqlites_wal", None)])
def test_defect06_salvage_keeps_what_precedes_the_damage_and_says_what_it_drops(data_dir, damage, expected):
    """expected: (last record kept, rows, records dropped)."""
    damage_the_log(data_dir, damage)
    index_folder = folder(data_dir, "a")
    dry = salvage(index_folder)
    assert dry.dropped + dry.lost_transactions > 0 and dry.reason
    if expected is not None:
        assert (dry.kept_through, dry.rows, dry.dropped) == expected
    assert salvage_main([str(index_folder), "--apply"]) == 0
    node = NodeProcess(data_dir)
    d = node.describe("a")
    assert d.state == "Finished" and d.num_rows == dry.rows
    node.insert("a", rows(1, 7.0), np.array([4242]), False)
    node.close()


def test_defect07_zero_bytes_at_the_log_tail_leave_the_index_usable(data_dir):
    node = start_with_flat(data_dir)
    node.insert("a", rows(3, 2.0), np.arange(100, 103), False)
    node.kill()
    wal = folder(data_dir, "a") / f"{DB_NAME}-wal"
    with open(wal, "ab") as f:
        f.write(bytes(8))
    node = NodeProcess(data_dir)
    d = node.describe("a")
    assert d.state == "Finished" and d.num_rows == 23
    node.close()


def test_defect08_stray_and_damaged_folders_do_not_stop_the_node(data_dir, caplog):
    node = start_with_flat(data_dir, "good")
    node.close()
    (data_dir / "junk").mkdir()
    (data_dir / "junk" / "meta.json").write_text("{not json")
    (data_dir / "notes.txt").write_text("hello")
    (data_dir / "bad.0123456789abcdef").mkdir()
    (data_dir / "bad.0123456789abcdef" / DB_NAME).write_bytes(b"garbage" * 1000)
    with caplog.at_level(logging.WARNING):
        node = IndexNode(data_dir)
    assert node.names() == ["bad", "good"]
    bad = node.describe("bad")
    assert bad.state == "Failed" and str(data_dir / "bad.0123456789abcdef" / DB_NAME) in bad.error
    assert node.describe("good").state == "Finished"
    assert node.search("good", rows(1, 1.0), 3, {}, None, None)[0].shape == (1, 3)
    assert "junk" in caplog.text
    node.drop("bad")
    node.close()


def test_defect09_a_checkpoint_makes_the_snapshot_durable_before_emptying_the_log(tmp_path, monkeypatch):
    import anisoscan.node.index_node as node_module
    from anisoscan.node.store import IndexStore

    events: list[str] = []
    real_file, real_dir, real_checkpoint = node_module.fsync_file, node_module.fsync_dir, IndexStore.checkpoint
    monkeypatch.setattr(node_module, "fsync_file", lambda p: (events.append(f"fsync {Path(p).name}"), real_file(p)))
    monkeypatch.setattr(node_module, "fsync_dir", lambda p: (events.append(f"fsync dir {Path(p).name}"), real_dir(p)))
    monkeypatch.setattr(IndexStore, "checkpoint",
                        lambda self, meta: (events.append("empty log"), real_checkpoint(self, meta)))
    node = IndexNode(tmp_path / "data")
    node.create("a", "FLAT", "L2", DIM, {}, rows(20, 1.0), None)
    node.close()
    node = IndexNode(tmp_path / "data")
    node.insert("a", rows(2, 2.0), np.array([100, 101]), False)
    events.clear()
    node.checkpoint("a")
    directory = folder(tmp_path / "data", "a").name
    assert events == ["fsync 0000000000000001-index.flat.npz", f"fsync dir {directory}", "empty log"]
    node.close()


def _pki(tmp_path: Path) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make test certificates")
    for name in ("a", "b"):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
                        "-out", f"{name}.pem", "-days", "1", "-subj", "/CN=localhost"],
                       cwd=tmp_path, check=True, capture_output=True)
    return tmp_path


@pytest.mark.parametrize("flags, names", [
    (["--tls-cert", "a.pem"], "--tls-key"),
    (["--tls-key", "a.key"], "--tls-cert"),
    (["--tls-client-ca", "a.pem"], "--tls-cert"),
    (["--token", ""], "token is empty"),
    (["--token-file", "empty.txt"], "is empty"),
    (["--tls-cert", "a.pem", "--tls-key", "b.key"], "do not make a certificate and its key"),
    (["--max-reply-mb", "512"], "larger than --max-message-mb"),
])
def test_defect10_incomplete_security_configurations_are_refused(tmp_path, caplog, monkeypatch, flags, names):
    pki = _pki(tmp_path) if any(f.endswith((".pem", ".key")) for f in flags) else tmp_path
    (tmp_path / "empty.txt").write_text("\n")
    monkeypatch.chdir(pki)

    def serve_anyway(config):
        raise AssertionError(f"started with an incomplete configuration: {config}")

    monkeypatch.setattr("anisoscan.node.server.serve", serve_anyway)  # a regression fails instead of serving forever
    with caplog.at_level(logging.ERROR):
        assert cli_main(["serve", "--data-dir", str(tmp_path / "data"), "--port", "0", *flags]) == 2
    assert names in caplog.text


def test_defect11_bad_names_values_and_full_disk_are_answered_up_front(tmp_path):
    node = IndexNode(tmp_path / "data")
    for name in ("abc\n", "a-b", "x" * 10_000, "", "1abc", "a.b", "é"):
        with pytest.raises(ValueError) as e:
            node.create(name, "FLAT", "L2", DIM, {}, rows(5, 1.0), None)
        assert len(str(e.value)) < 300
    assert list((tmp_path / "data").iterdir()) == []
    for bad in (np.nan, np.inf, 3e38, 1e17):
        x = rows(5, 1.0)
        x[2, 3] = bad
        with pytest.raises(ValueError, match="row 2"):
            node.create("a", "FLAT", "L2", DIM, {}, x, None)
    node.create("a", "FLAT", "L2", DIM, {}, rows(5, 1e15), None)
    node.close()
    node = IndexNode(tmp_path / "data")
    with pytest.raises(ValueError, match="row 0"):
        node.insert("a", rows(1, 3e38), np.array([9]), False)
    with pytest.raises(ValueError, match="row 0"):
        node.search("a", rows(1, -3e38), 3, {}, None, None)
    assert np.isfinite(node.search("a", rows(1, -1e16), 3, {}, None, None)[1]).all()
    faults.inject("meta.write", errno.ENOSPC)
    try:
        with pytest.raises(ResourceExhausted):
            node.release("a")
    finally:
        faults.inject("meta.write", None)
    assert node.describe("a").loaded
    node.close()


def test_issue14_release_racing_searches_is_a_precondition_error(tmp_path):
    node = IndexNode(tmp_path / "data")
    node.create("a", "FLAT", "L2", DIM, {}, rows(200, 1.0), None)
    node.close()
    node = IndexNode(tmp_path / "data")
    errors: list[BaseException] = []
    stop = threading.Event()

    def searcher():
        while not stop.is_set():
            try:
                node.search("a", rows(4, 0.5), 5, {}, None, None)
            except FailedPrecondition:
                pass
            except BaseException as e:  # noqa: BLE001 - asserted below
                errors.append(e)

    threads = [threading.Thread(target=searcher) for _ in range(3)]
    for t in threads:
        t.start()
    for _ in range(30):
        node.release("a")
        node.load("a")
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    node.close()


@pytest.mark.parametrize("index_type, params", [("FLAT", {}), ("SCANN", {"nlist": "4", "with_raw_data": "true"})])
def test_the_log_is_checkpointed_as_it_grows_and_a_failed_checkpoint_keeps_the_write(tmp_path, monkeypatch, caplog,
                                                                                      index_type, params):
    import anisoscan.node.index_node as node_module

    monkeypatch.setattr(node_module, "CHECKPOINT_LOG_BYTES", 1000)  # ~3 inserts of 10 rows
    x = np.random.default_rng(3).standard_normal((300, DIM)).astype(np.float32)
    node = IndexNode(tmp_path / "data")
    node.create("a", index_type, "L2", DIM, params, x[:200], None)
    node.close()
    node = IndexNode(tmp_path / "data")
    for i in range(200, 260, 10):
        node.insert("a", x[i:i + 10], np.arange(i, i + 10), False)
    (snapshot,) = folder(tmp_path / "data", "a").glob("0*-*")
    assert int(snapshot.name.split("-")[0]) > 0  # the log was folded into a newer snapshot
    faults.inject("snapshot.write", errno.ENOSPC)
    try:
        with caplog.at_level(logging.WARNING):
            for i in range(260, 300, 10):
                node.insert("a", x[i:i + 10], np.arange(i, i + 10), False)  # acknowledged all the same
    finally:
        faults.inject("snapshot.write", None)
    assert "checkpoint failed" in caplog.text
    node.close()
    node = IndexNode(tmp_path / "data")
    np.testing.assert_array_equal(node.get_vectors("a", np.arange(300)), x)
    node.close()


@pytest.mark.parametrize("point, operation", [("log.append", "insert"), ("log.append", "delete"),
                                              ("meta.write", "release"), ("snapshot.write", "checkpoint"),
                                              ("checkpoint.commit", "checkpoint"), ("create.rename", "create")])
def test_full_disk_at_each_write_point_changes_nothing_until_space_is_freed(data_dir, point, operation):
    node = start_with_flat(data_dir)
    node.insert("a", rows(2, 2.0), np.array([100, 101]), False)
    calls = {"insert": ("insert", "a", rows(1, 3.0), np.array([102]), False),
             "delete": ("delete", "a", np.array([100])), "release": ("release", "a"), "checkpoint": ("checkpoint", "a"),
             "create": ("create", "b", "FLAT", "L2", DIM, {}, rows(3, 1.0), None)}
    method, *args = calls[operation]
    before = sorted(p.name for p in folder(data_dir, "a").iterdir())
    node.inject(point, errno.ENOSPC)
    with pytest.raises(NodeError) as e:
        getattr(node, method)(*args)
    assert e.value.kind == "ResourceExhausted"
    d = node.describe("a")
    assert (d.state, d.loaded, d.num_rows) == ("Finished", True, 22)
    assert node.names() == ["a"] and sorted(p.name for p in data_dir.iterdir()) == [folder(data_dir, "a").name]
    assert sorted(p.name for p in folder(data_dir, "a").iterdir()) == before
    node.inject(point, None)
    getattr(node, method)(*args)
    node.kill()
    node = NodeProcess(data_dir)
    expected = {"insert": 23, "delete": 21}.get(operation, 22)
    d = node.describe("a")
    if operation == "release":
        assert not d.loaded
        node.load("a")
    assert node.describe("a").num_rows == expected
    node.close()
