"""Starting and stopping the front: one gRPC server, the upstream channel, the node and the store."""

from __future__ import annotations

import logging
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc

from ...node import IndexNode
from ...params import INDEX_TYPE
from .owned import Front
from .proxy import FrontHandler, Upstream
from .reconcile import Reconciler
from .store import FrontStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    milvus: str  # the upstream's URI: http://host:port or host:port
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 19530
    upstream_timeout_s: float = 30.0
    index_types: tuple[str, ...] = (INDEX_TYPE,)
    max_message_mb: int = 256
    workers: int = 32
    reconcile_interval_s: float = 30.0  # 0: no reconciliation of writes that bypass the front


@dataclass
class FrontServer:
    settings: Settings
    server: grpc.Server
    port: int
    front: Front
    upstream: Upstream
    node: IndexNode
    store: FrontStore
    reconciler: Reconciler

    @classmethod
    def start(cls, settings: Settings) -> FrontServer:
        max_bytes = settings.max_message_mb << 20
        upstream = Upstream.connect(settings.milvus, settings.upstream_timeout_s, max_bytes)
        node = IndexNode(settings.data_dir / "node")
        store = FrontStore(settings.data_dir)
        front = Front(upstream, node, store, settings.index_types)
        server = grpc.server(ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="front"),
                             handlers=[FrontHandler(upstream, front.methods())],
                             options=[("grpc.max_send_message_length", max_bytes),
                                      ("grpc.max_receive_message_length", max_bytes),
                                      # Milvus's proxy allows pings every 5 s with no call open; so does the
                                      # front (gRPC's default: GOAWAY too_many_pings at the third)
                                      ("grpc.keepalive_permit_without_calls", 1),
                                      ("grpc.http2.min_ping_interval_without_data_ms", 5000)])
        port = server.add_insecure_port(f"{settings.host}:{settings.port}")
        server.start()
        reconciler = Reconciler(front.syncer, front.collections)
        if settings.reconcile_interval_s > 0:
            reconciler.start(settings.reconcile_interval_s)
        log.info("anisoscan front on %s:%d in front of Milvus at %s (data in %s)", settings.host, port,
                 upstream.target, settings.data_dir)
        return cls(settings, server, port, front, upstream, node, store, reconciler)

    def stop(self, grace: float = 2.0) -> None:
        self.reconciler.stop()
        self.server.stop(grace).wait()
        self.front.syncer.stop()
        self.node.close()
        self.store.close()
        self.upstream.close()


def serve(settings: Settings) -> None:
    """Serves until SIGINT or SIGTERM."""
    running = FrontServer.start(settings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    finally:
        running.stop()
        log.info("front stopped")
