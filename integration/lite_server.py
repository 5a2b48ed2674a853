"""Runs `anisoscan lite DB` as a real process on a free port, for tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from server_process import free_port, terminate  # tests/, on the path via conftest


class LiteServer:
    def __init__(self, db: Path) -> None:
        self.db = db
        self.log_path = db.parent / f"{db.name}.server.log"
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> LiteServer:
        self.port = free_port()
        self.log_path.write_text("")
        with open(self.log_path, "ab") as log:
            command = [sys.executable, "-m", "anisoscan.cli", "lite", str(self.db), "--port", str(self.port)]
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"anisoscan lite exited early:\n{self.log()}")
            if f":{self.port}" in self.log():
                return self
            time.sleep(0.1)
        raise RuntimeError(f"anisoscan lite did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        terminate(self.proc, timeout=30)
