"""The gRPC IndexNode server: `anisoscan serve --data-dir DIR --port N`."""

from __future__ import annotations

import argparse
import hmac
import logging
import signal
import ssl
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ..v1 import index_node_pb2 as pb
from ..v1 import index_node_pb2_grpc as pb_grpc
from . import wire
from .errors import AlreadyExists, FailedPrecondition, NotFound, ResourceExhausted, StorageError
from .index_node import IndexNode, IndexService
from .limits import Limits

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["IndexNode"].full_name
STATES = {"InProgress": pb.IN_PROGRESS, "Finished": pb.FINISHED, "Failed": pb.FAILED}
_MAX_ERROR_CHARS = 1000


class ConfigError(ValueError):
    """A start-up configuration the server refuses; the message names the missing or wrong piece."""


@dataclass
class ServerConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 19531
    token: str | None = None  # None: no authentication; "" is refused, never taken as "off"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # set: clients must present a certificate it signed
    max_message_bytes: int = 256 << 20
    workers: int = 16
    limits: Limits = field(default_factory=Limits)

    def check(self) -> None:
        """Refuses configurations that would silently serve less securely than asked."""
        if self.token is not None and not self.token.strip():
            raise ConfigError("--token/--token-file: the token is empty; give a non-empty token or none")
        if self.tls_cert and not self.tls_key:
            raise ConfigError("--tls-cert is set without --tls-key: TLS needs both")
        if self.tls_key and not self.tls_cert:
            raise ConfigError("--tls-key is set without --tls-cert: TLS needs both")
        if self.tls_client_ca and not self.tls_cert:
            raise ConfigError("--tls-client-ca is set without --tls-cert and --tls-key: mutual TLS needs TLS")
        for flag, path in (("--tls-cert", self.tls_cert), ("--tls-key", self.tls_key),
                           ("--tls-client-ca", self.tls_client_ca)):
            if path is not None and not path.is_file():
                raise ConfigError(f"{flag}: {path} is not a readable file")
        if self.tls_cert and self.tls_key:
            try:
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(self.tls_cert, self.tls_key)
            except (ssl.SSLError, ValueError) as e:
                raise ConfigError(f"--tls-cert {self.tls_cert} and --tls-key {self.tls_key} do not make a "
                                  f"certificate and its key: {e}") from None
        if self.tls_client_ca:
            try:
                ssl.create_default_context(cafile=str(self.tls_client_ca))
            except ssl.SSLError as e:
                raise ConfigError(f"--tls-client-ca {self.tls_client_ca} is not a PEM CA certificate: {e}") from None
        for name in ("max_reply_bytes", "max_get_ids", "max_insert_rows"):
            if getattr(self.limits, name) < 1:
                raise ConfigError(f"{name}: must be at least 1")
        if self.limits.max_reply_bytes > self.max_message_bytes:
            raise ConfigError("--max-reply-mb is larger than --max-message-mb: such a reply could never be sent")


def _errors(method: Callable) -> Callable:
    """Maps the node's exceptions to gRPC status codes; nothing escapes as UNKNOWN, no message is unbounded."""

    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except (ValueError, TypeError) as e:
            code, message = grpc.StatusCode.INVALID_ARGUMENT, str(e)
        except NotFound as e:
            code, message = grpc.StatusCode.NOT_FOUND, str(e)
        except AlreadyExists as e:
            code, message = grpc.StatusCode.ALREADY_EXISTS, str(e)
        except (FailedPrecondition, RuntimeError) as e:
            code, message = grpc.StatusCode.FAILED_PRECONDITION, str(e)
        except ResourceExhausted as e:
            code, message = grpc.StatusCode.RESOURCE_EXHAUSTED, str(e)
        except MemoryError as e:
            code, message = grpc.StatusCode.RESOURCE_EXHAUSTED, f"out of memory: {e}"
        except StorageError as e:
            code, message = grpc.StatusCode.UNAVAILABLE, str(e)
        except Exception as e:  # noqa: BLE001 - a bug: logged in full, answered as INTERNAL
            log.exception("%s failed", method.__name__)
            code, message = grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}"
        if len(message) > _MAX_ERROR_CHARS:
            message = message[:_MAX_ERROR_CHARS] + "..."
        context.abort(code, message)

    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    return wrapper


def _check_dim(name: str, got: int, want: int) -> None:
    if got != want:
        raise ValueError(f"{name}: dimension {got} does not match the index dimension {want}")


class IndexNodeServicer(pb_grpc.IndexNodeServicer):
    """Unpacks the wire format and calls the node; every rule on the data lives in the node."""

    def __init__(self, node: IndexService) -> None:
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
        ids = np.concatenate(id_parts) if id_parts else None
        if ids is not None and len(ids) != len(vectors):
            raise ValueError(f"ids: got {len(ids)} ids for {len(vectors)} vectors; send one per vector or none")
        self.node.create(first.index_name, first.index_type or "SCANN", first.metric_type or "IP", first.dim,
                         dict(first.params), vectors, ids)
        return pb.CreateIndexResponse(index_name=first.index_name, num_rows=len(vectors))

    @_errors
    def DescribeIndex(self, request, context):  # noqa: N802
        d = self.node.describe(request.index_name)
        return pb.IndexDescription(
            index_name=d.name, index_type=d.index_type, metric_type=d.metric, dim=d.dim, state=STATES[d.state],
            progress=d.progress, error=d.error, num_rows=d.num_rows, memory_bytes=d.memory_bytes, loaded=d.loaded,
            params=d.params)

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
        name, upsert, dim, rows = "", False, 0, 0
        batches = []
        for req in request_iterator:
            if not name:
                name = req.index_name
                dim = self.node.dim(name)
            upsert = upsert or req.upsert
            vectors, ids = wire.unpack_vectors(req.vectors), wire.unpack_ids(req.ids)
            _check_dim("vectors", vectors.shape[1], dim)
            if len(ids) != len(vectors):
                raise ValueError(f"ids: got {len(ids)} ids for {len(vectors)} vectors; send one id per vector")
            rows += len(ids)
            self.node.limits.check_insert(rows, dim)  # while streaming, before holding more
            batches.append((vectors, ids))
        if not name:
            raise ValueError("index_name: the first Insert message must name the index")
        vectors = np.concatenate([b[0] for b in batches])
        ids = np.concatenate([b[1] for b in batches])
        num_rows = self.node.insert(name, vectors, ids, upsert)
        return pb.InsertResponse(inserted=len(ids), num_rows=num_rows)

    @_errors
    def Delete(self, request, context):  # noqa: N802
        ids = wire.unpack_ids(request.ids)
        rows = self.node.delete(request.index_name, ids)
        return pb.DeleteResponse(deleted=len(ids), num_rows=rows)

    @_errors
    def Search(self, request, context):  # noqa: N802
        queries = wire.unpack_vectors(request.queries, "queries")
        allowed = wire.unpack_ids(request.allowed_ids, "allowed_ids") if request.has_allowed_ids else None
        excluded = wire.unpack_ids(request.excluded_ids, "excluded_ids") if request.excluded_ids else None
        limit = request.limit or 10
        ids, dist = self.node.search(request.index_name, queries, limit, dict(request.search_params), allowed,
                                     excluded)
        return pb.SearchResponse(num_queries=len(queries), limit=limit, ids=wire.pack_ids(ids),
                                 distances=np.ascontiguousarray(dist, wire.F32).tobytes())

    @_errors
    def GetVectors(self, request, context):  # noqa: N802
        vectors = self.node.get_vectors(request.index_name, wire.unpack_ids(request.ids))
        return pb.GetVectorsResponse(vectors=pb.Vectors(dim=vectors.shape[1], data=vectors.astype(wire.F32).tobytes()))


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


def build_server(config: ServerConfig, node: IndexService) -> tuple[grpc.Server, int]:
    options = [("grpc.max_receive_message_length", config.max_message_bytes),
               ("grpc.max_send_message_length", config.max_message_bytes)]
    interceptors = [TokenInterceptor(config.token)] if config.token is not None else []
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
    config.check()
    node = IndexNode(config.data_dir, limits=config.limits)
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


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    token = args.token
    if args.token_file:
        if token is not None:
            raise ConfigError("--token and --token-file: give one")
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as e:
            raise ConfigError(f"--token-file: {e}") from None
        if not token:
            raise ConfigError(f"--token-file: {args.token_file} is empty; write the token into it")

    def path(value: str | None) -> Path | None:
        return Path(value) if value is not None else None

    return ServerConfig(
        data_dir=Path(args.data_dir), host=args.host, port=args.port, token=token,
        tls_cert=path(args.tls_cert), tls_key=path(args.tls_key), tls_client_ca=path(args.tls_client_ca),
        max_message_bytes=args.max_message_mb << 20,
        limits=Limits(args.max_reply_mb << 20, args.max_get_ids, args.max_insert_rows))


def main(args: argparse.Namespace) -> int:
    """`anisoscan serve`: 2 and one line naming the problem for a configuration it refuses."""
    try:
        config = config_from_args(args)
        config.check()
    except ConfigError as e:
        log.error("anisoscan serve: %s", e)
        return 2
    serve(config)
    return 0
