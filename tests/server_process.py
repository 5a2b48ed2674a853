"""Starts `anisoscan serve` as a real process on a free localhost port, for tests."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from anisoscan.bench.servers import free_port  # the one helper; other tests import it from here
from grpc_health.v1 import health_pb2, health_pb2_grpc


def terminate(proc: subprocess.Popen | None, timeout: float) -> None:
    """SIGTERM (a graceful stop), then SIGKILL if the process has not exited within `timeout`."""
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class ServerProcess:
    def __init__(self, data_dir: Path, *extra: str, port: int | None = None, memory_limit: int | None = None) -> None:
        self.data_dir, self.extra, self.memory_limit = data_dir, extra, memory_limit
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, channel_credentials: grpc.ChannelCredentials | None = None, timeout: float = 30.0) -> None:
        log = open(self.data_dir.parent / f"server-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "anisoscan.cli", "serve", "--data-dir", str(self.data_dir),
             "--port", str(self.port), *self.extra],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=self._limit_memory if self.memory_limit else None,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "MALLOC_ARENA_MAX": "2"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early: {self.log()}")
            channel = (grpc.secure_channel(self.address, channel_credentials,
                                           options=[("grpc.ssl_target_name_override", "localhost")])
                       if channel_credentials else grpc.insecure_channel(self.address))
            try:
                status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
                if status.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                time.sleep(0.1)
            finally:
                channel.close()
        raise RuntimeError(f"server did not become healthy: {self.log()}")

    def _limit_memory(self) -> None:
        """Address space, so that an allocation past it fails (or the process dies) as on a small machine."""
        resource.setrlimit(resource.RLIMIT_AS, (self.memory_limit, self.memory_limit))

    def log(self) -> str:
        path = self.data_dir.parent / f"server-{self.port}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        terminate(self.proc, timeout=20)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
