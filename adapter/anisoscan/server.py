"""The gRPC IndexNode server: `anisoscan serve --data-dir DIR --port N`."""

from __future__ import annotations

import hmac
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from . import index_types, wire
from .node import AlreadyExists, FailedPrecondition, IndexNode, NotFound
from .v1 import index_node_pb2 as pb
from .v1 import index_node_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["IndexNode"].full_name
STATES = {"InProgress": pb.IN_PROGRESS, "Finished": pb.FINISHED, "Failed": pb.FAILED}


@dataclass
class ServerConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 19531
    token: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # set: clients must present a certificate it signed
    max_message_bytes: int = 256 << 20
    workers: int = 16


def _errors(method: Callable) -> Callable:
    """Maps the node's exceptions to gRPC status codes; nothing escapes as UNKNOWN."""

    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except (ValueError, TypeError) as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except NotFound as e:
            context.abort(grpc.StatusCode.NOT_FOUND, str(e))
        except AlreadyExists as e:
            context.abort(grpc.StatusCode.ALREADY_EXISTS, str(e))
        except FailedPrecondition as e:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
        except MemoryError as e:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"out of memory: {e}")
        except RuntimeError as e:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))

    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    return wrapper


def _check_dim(name: str, got: int, want: int) -> None:
    if got != want:
        raise ValueError(f"{name}: dimension {got} does not match the index dimension {want}")


class IndexNodeServicer(pb_grpc.IndexNodeServicer):
    def __init__(self, node: IndexNode) -> None:
        self.node = node

    @_errors
    def CreateIndex(self, request_iterator: Iterator[pb.CreateIndexRequest], context):  # noqa: N802
        first: pb.CreateIndexRequest | None = None
        parts, id_parts = [], []
        for req in request_iterator:
            first = first or req
            if req.HasField("vectors") and req.vectors.data:
                _check_dim("vectors", req.vectors.dim, first.dim)
                parts.append(wire.unpack_vectors(req.vectors))
                if req.ids or id_parts:
                    id_parts.append(wire.unpack_ids(req.ids))
        if first is None or not first.index_name:
            raise ValueError("index_name: the first CreateIndex message must name the index")
        if first.dim == 0:
            raise ValueError("dim: must be positive")
        vectors = np.concatenate(parts) if parts else np.empty((0, first.dim), np.float32)
        ids = np.concatenate(id_parts) if id_parts else np.arange(len(vectors), dtype=np.int64)
        if len(ids) != len(vectors):
            raise ValueError(f"ids: got {len(ids)} ids for {len(vectors)} vectors; send one per vector or none")
        self.node.create(first.index_name, first.index_type or "SCANN", first.metric_type or "IP", first.dim,
                         dict(first.params), vectors, ids)
        return pb.CreateIndexResponse(index_name=first.index_name, num_rows=len(vectors))

    @_errors
    def DescribeIndex(self, request, context):  # noqa: N802
        entry = self.node.get(request.index_name)
        m, index = entry.meta, entry.index
        return pb.IndexDescription(
            index_name=m.name, index_type=m.index_type, metric_type=m.metric, dim=m.dim, state=STATES[m.state],
            progress=entry.progress, error=m.error, num_rows=len(index) if index is not None else 0,
            memory_bytes=index.memory_bytes if index is not None else 0, loaded=index is not None, params=m.params)

    @_errors
    def ListIndexes(self, request, context):  # noqa: N802
        return pb.ListIndexesResponse(index_names=self.node.names())

    @_errors
    def LoadIndex(self, request, context):  # noqa: N802
        self.node.load(request.index_name)
        return pb.Empty()

    @_errors
    def ReleaseIndex(self, request, context):  # noqa: N802
        self.node.release(request.index_name)
        return pb.Empty()

    @_errors
    def DropIndex(self, request, context):  # noqa: N802
        self.node.drop(request.index_name)
        return pb.Empty()

    @_errors
    def Insert(self, request_iterator, context):  # noqa: N802
        name, upsert, inserted, rows = "", False, 0, 0
        batches = []
        for req in request_iterator:
            name = name or req.index_name
            upsert = upsert or req.upsert
            batches.append((wire.unpack_vectors(req.vectors), wire.unpack_ids(req.ids)))
        entry = self.node.serving(name)
        for vectors, ids in batches:
            _check_dim("vectors", vectors.shape[1], entry.meta.dim)
            if len(ids) != len(vectors):
                raise ValueError(f"ids: got {len(ids)} ids for {len(vectors)} vectors; send one id per vector")
        vectors = np.concatenate([b[0] for b in batches]) if batches else np.empty((0, entry.meta.dim), np.float32)
        ids = np.concatenate([b[1] for b in batches]) if batches else np.empty(0, np.int64)
        if len(ids):
            rows = self.node.insert(name, vectors, ids, upsert)
            inserted = len(ids)
        return pb.InsertResponse(inserted=inserted, num_rows=rows)

    @_errors
    def Delete(self, request, context):  # noqa: N802
        ids = wire.unpack_ids(request.ids)
        rows = self.node.delete(request.index_name, ids)
        return pb.DeleteResponse(deleted=len(ids), num_rows=rows)

    @_errors
    def Search(self, request, context):  # noqa: N802
        entry = self.node.serving(request.index_name)
        queries = wire.unpack_vectors(request.queries, "queries")
        _check_dim("queries", queries.shape[1], entry.meta.dim)
        options = index_types.lookup(entry.meta.index_type).search_options(dict(request.search_params))
        allowed = wire.unpack_ids(request.allowed_ids, "allowed_ids") if request.has_allowed_ids else None
        excluded = wire.unpack_ids(request.excluded_ids, "excluded_ids") if request.excluded_ids else None
        limit = request.limit or 10
        ids, dist = entry.index.search(queries, limit, allowed_ids=allowed, excluded_ids=excluded, **options)
        return pb.SearchResponse(num_queries=len(queries), limit=limit, ids=wire.pack_ids(ids),
                                 distances=np.ascontiguousarray(dist, wire.F32).tobytes())

    @_errors
    def GetVectors(self, request, context):  # noqa: N802
        entry = self.node.serving(request.index_name)
        vectors = entry.index.get_vectors(wire.unpack_ids(request.ids))
        return pb.GetVectorsResponse(vectors=pb.Vectors(dim=entry.meta.dim, data=vectors.astype(wire.F32).tobytes()))


class TokenInterceptor(grpc.ServerInterceptor):
    """Requires `authorization: Bearer <token>` on every RPC except health checks."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

        def deny(request: Any, context: grpc.ServicerContext) -> None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")

        self._deny = grpc.unary_unary_rpc_method_handler(deny)
        self._deny_stream = grpc.stream_unary_rpc_method_handler(deny)

    def intercept_service(self, continuation, handler_call_details):
        if handler_call_details.method.startswith("/grpc.health.v1.Health/"):
            return continuation(handler_call_details)
        metadata = dict(handler_call_details.invocation_metadata or ())
        given = str(metadata.get("authorization", "")).encode()
        if hmac.compare_digest(given, self._expected):
            return continuation(handler_call_details)
        streaming = handler_call_details.method.endswith(("/CreateIndex", "/Insert"))
        return self._deny_stream if streaming else self._deny


def build_server(config: ServerConfig, node: IndexNode) -> tuple[grpc.Server, int]:
    options = [("grpc.max_receive_message_length", config.max_message_bytes),
               ("grpc.max_send_message_length", config.max_message_bytes)]
    interceptors = [TokenInterceptor(config.token)] if config.token else []
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=config.workers), options=options,
                         interceptors=interceptors)
    pb_grpc.add_IndexNodeServicer_to_server(IndexNodeServicer(node), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection([SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    address = f"{config.host}:{config.port}"
    if config.tls_cert and config.tls_key:
        client_ca = config.tls_client_ca.read_bytes() if config.tls_client_ca else None
        credentials = grpc.ssl_server_credentials(
            [(config.tls_key.read_bytes(), config.tls_cert.read_bytes())],
            root_certificates=client_ca, require_client_auth=client_ca is not None)
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return server, port


def serve(config: ServerConfig) -> None:
    """Runs until SIGINT/SIGTERM, then stops gracefully (in-flight RPCs get 10 s)."""
    node = IndexNode(config.data_dir)
    server, port = build_server(config, node)
    server.start()
    log.info("anisoscan IndexNode listening on %s:%d (data in %s)", config.host, port, config.data_dir)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    log.info("shutting down")
    server.stop(grace=10).wait()
    node.close()
