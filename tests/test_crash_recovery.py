"""Kill-and-recover: random writes, SIGKILL or a crash point at any step, then check what survived.

ANISOSCAN_CRASH_CYCLES (default 200) sets the cycles, ANISOSCAN_CRASH_SEED the seed. After
every restart the index must hold exactly the acknowledged writes, plus or minus the single
write in flight at the crash, all of it or none of it: nothing acknowledged is lost, nothing
unacknowledged shows up, and a deleted id never comes back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from node_process import Crashed, NodeProcess

DIM = 4
UNIVERSE = np.arange(48, dtype=np.int64)
CRASH_POINTS = ["log.append", "log.appended", "snapshot.write", "checkpoint.snapshot_written", "checkpoint.commit",
                "checkpoint.committed", "meta.write"]


@dataclass(frozen=True)
class Op:
    method: str
    ids: tuple[int, ...] = ()
    value: float = 0.0

    def call(self) -> tuple:
        """The node's method and arguments (release_load: its first call)."""
        ids = np.array(self.ids, np.int64)
        vectors = np.full((len(ids), DIM), self.value, np.float32)
        if self.method in ("insert", "upsert"):
            return ("insert", "c", vectors, ids, self.method == "upsert")
        if self.method == "delete":
            return ("delete", "c", ids)
        return ("release" if self.method == "release_load" else self.method, "c")

    def applied_to(self, state: dict[int, float]) -> dict[int, float]:
        after = dict(state)
        if self.method in ("insert", "upsert"):
            after.update({i: self.value for i in self.ids})
        elif self.method == "delete":
            for i in self.ids:
                del after[i]
        return after


def random_op(rng: np.random.Generator, state: dict[int, float], value: float) -> Op:
    absent = [int(i) for i in UNIVERSE if int(i) not in state]
    kind = rng.choice(["insert", "upsert", "delete", "checkpoint", "release_load"], p=[.35, .2, .25, .12, .08])
    if kind == "insert" and absent:
        return Op("insert", tuple(rng.choice(absent, min(len(absent), int(rng.integers(1, 4))), replace=False)),
                  value)
    if kind == "delete" and len(state) > 1:
        return Op("delete", tuple(rng.choice(sorted(state), int(rng.integers(1, 3)), replace=False)))
    if kind in ("checkpoint", "release_load"):
        return Op(str(kind))
    return Op("upsert", tuple(rng.choice(UNIVERSE, int(rng.integers(1, 4)), replace=False)), value)


def stored(node: NodeProcess) -> dict[int, float]:
    d = node.describe("c")
    assert d.state == "Finished", d
    if not d.loaded:  # killed between release and load
        node.load("c")
        d = node.describe("c")
    found, _ = node.search("c", np.zeros((1, DIM), np.float32), len(UNIVERSE), {}, UNIVERSE, None)
    ids = found[0][found[0] >= 0]
    vectors = node.get_vectors("c", ids) if len(ids) else np.empty((0, DIM), np.float32)
    assert len(ids) == d.num_rows
    return {int(i): float(row[0]) for i, row in zip(ids, vectors)}


def run(node: NodeProcess, op: Op) -> None:
    method, *args = op.call()
    getattr(node, method)(*args)
    if op.method == "release_load":
        node.load("c")


def test_random_kill_and_recover(tmp_path: Path):
    cycles = int(os.environ.get("ANISOSCAN_CRASH_CYCLES", "200"))
    rng = np.random.default_rng(int(os.environ.get("ANISOSCAN_CRASH_SEED", "17")))
    data_dir = tmp_path / "data"
    node = NodeProcess(data_dir)
    node.create("c", "FLAT", "L2", DIM, {}, np.full((8, DIM), 0.5, np.float32), UNIVERSE[:8])
    assert node.wait_finished("c").state == "Finished"
    node.close()
    acked = {int(i): 0.5 for i in UNIVERSE[:8]}
    in_flight: Op | None = None
    value = 1.0
    crashes = 0
    for cycle in range(cycles):
        crash_at = f"{rng.choice(CRASH_POINTS)}:{rng.integers(1, 4)}" if rng.random() < 0.5 else ""
        node = NodeProcess(data_dir, crash_at=crash_at)
        got = stored(node)
        if in_flight is not None and got != acked:
            acked = in_flight.applied_to(acked)  # the write in flight took effect, all of it
        assert got == acked, f"cycle {cycle}: after a crash during {in_flight}"
        in_flight = None
        try:
            for _ in range(int(rng.integers(1, 10))):
                op = random_op(rng, acked, value)
                value += 1.0
                if rng.random() < 0.1:  # SIGKILL with this write in flight
                    in_flight = op
                    node.send(*op.call())
                    break
                in_flight = op
                run(node, op)
                acked, in_flight = op.applied_to(acked), None
        except Crashed:
            crashes += 1
        node.kill()
    assert crashes > 0


@pytest.mark.parametrize("crash_at, survives", [("create.rename", False), ("build.saved", True),
                                                ("drop.retired", False)])
def test_crash_at_each_step_of_create_build_and_drop(tmp_path: Path, crash_at: str, survives: bool):
    data_dir = tmp_path / "data"
    node = NodeProcess(data_dir, crash_at=crash_at)
    x = np.ones((5, DIM), np.float32)
    try:
        node.create("c", "FLAT", "L2", DIM, {}, x, None)
        node.wait_finished("c")
        node.drop("c")
    except Crashed:
        pass
    node.kill()
    node = NodeProcess(data_dir)
    if survives:  # acknowledged, then the build was cut short: Failed with the reason, and droppable
        d = node.describe("c")
        assert d.state == "Failed" and "interrupted" in d.error
        node.drop("c")
    assert node.names() == []
    assert sorted(p.name for p in data_dir.iterdir()) in ([], [".trash"])
    node.create("c", "FLAT", "L2", DIM, {}, x, None)
    assert node.wait_finished("c").state == "Finished"
    node.close()


@pytest.mark.parametrize("crash_at, logged", [("log.append", False), ("log.appended", True)])
def test_crash_at_each_step_of_a_write(tmp_path: Path, crash_at: str, logged: bool):
    data_dir = tmp_path / "data"
    node = NodeProcess(data_dir)
    node.create("c", "FLAT", "L2", DIM, {}, np.ones((5, DIM), np.float32), None)
    node.wait_finished("c")
    node.crash_at(crash_at)
    with pytest.raises(Crashed):
        node.insert("c", np.full((2, DIM), 2.0, np.float32), np.array([10, 11]), False)
    node = NodeProcess(data_dir)
    assert node.describe("c").num_rows == (7 if logged else 5)
    node.close()
