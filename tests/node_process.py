"""An IndexNode in a child process that a test can SIGKILL at any moment or crash at a crash point.

Children fork from a forkserver that has already imported the node, so a start costs
milliseconds, not an interpreter start-up: hundreds of kill-and-recover cycles stay fast.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

_ctx = mp.get_context("forkserver")
_ctx.set_forkserver_preload(["numpy", "anisoscan.node"])


class NodeError(Exception):
    """The node raised: kind is the exception's class name."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind, self.message = kind, message


class Crashed(Exception):
    """The child died before answering."""


def _serve(conn: Connection, data_dir: str, crash_at: str, inject: dict[str, int]) -> None:
    from anisoscan.node import IndexNode, faults

    faults.crash_at(crash_at)
    for point, errno in inject.items():
        faults.inject(point, errno)
    node = IndexNode(data_dir)
    conn.send(("ok", None))
    while True:
        try:
            method, args = conn.recv()
        except EOFError:
            os._exit(0)
        if method == "close":
            node.close()
            conn.send(("ok", None))
            os._exit(0)
        try:
            if method == "inject":
                result = faults.inject(*args)
            elif method == "crash_at":
                result = faults.crash_at(*args)
            else:
                result = getattr(node, method)(*args)
            conn.send(("ok", result))
        except Exception as e:  # noqa: BLE001 - sent to the test, which asserts on it
            conn.send(("error", (type(e).__name__, str(e))))


class NodeProcess:
    def __init__(self, data_dir: Path, crash_at: str = "", inject: dict[str, int] | None = None) -> None:
        self._conn, child = _ctx.Pipe()
        self._proc = _ctx.Process(target=_serve, args=(child, str(data_dir), crash_at, inject or {}), daemon=True)
        self._proc.start()
        child.close()
        self._receive()

    def _receive(self) -> Any:
        try:
            status, value = self._conn.recv()
        except (EOFError, ConnectionResetError):  # the pipe is a socket pair: a dying peer may reset it
            self._proc.join()
            raise Crashed(f"the node exited with {self._proc.exitcode}") from None
        if status == "error":
            raise NodeError(*value)
        return value

    def __getattr__(self, method: str) -> Any:
        def call(*args: Any) -> Any:
            self.send(method, *args)
            return self._receive()

        return call

    def send(self, method: str, *args: Any) -> None:
        """Sends a call without waiting for its answer (to kill the node while it runs)."""
        try:
            self._conn.send((method, args))
        except (BrokenPipeError, ConnectionResetError):
            self._proc.join()
            raise Crashed(f"the node exited with {self._proc.exitcode}") from None

    def wait_finished(self, name: str, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            d = self.describe(name)
            if d.state != "InProgress" or time.monotonic() > deadline:
                return d
            time.sleep(0.01)

    def kill(self) -> None:
        self._proc.kill()
        self._proc.join()
        self._conn.close()

    def close(self) -> None:
        self._conn.send(("close", ()))
        self._receive()
        self._proc.join()
        self._conn.close()
