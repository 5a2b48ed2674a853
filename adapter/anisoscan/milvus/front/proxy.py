"""Byte forwarding to the upstream Milvus: every RPC the front does not own, any cardinality.

A gRPC generic handler serves every method name, so RPCs added by newer Milvus releases
keep working. Unary and streaming calls share one path: on the wire a unary call is a stream
of one message each way, so each forwarded call is a stream-stream call with raw bytes both
ways. Request metadata (auth, db name) goes up; the upstream's initial and trailing
metadata, status code and details come back unchanged (pymilvus reads UNIMPLEMENTED on
AllocTimestamp as "use a client timestamp").

One exception: when the upstream cannot be reached at all, a MilvusService method whose
reply carries a Status gets a Milvus status (code 2, service unavailable) naming the
upstream, because pymilvus retries a gRPC UNAVAILABLE for minutes but fails at once on a
status.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.message import Message
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from . import translate
from .errors import SERVICE_UNAVAILABLE, MilvusError, check, reply_with

log = logging.getLogger(__name__)

SERVICE = "milvus.proto.milvus.MilvusService"
_HOP_HEADERS = ("user-agent", "content-type", "te", "grpc-", ":")  # set by each hop's own gRPC stack
Metadata = tuple[tuple[str, Any], ...]


def clean_metadata(metadata: Any) -> Metadata:
    return tuple((k, v) for k, v in (metadata or ()) if not k.startswith(_HOP_HEADERS))


def _timeout(context: grpc.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None or remaining > 1e8 else max(remaining, 0.0)


def _reply_types() -> dict[str, type[Message]]:
    """The reply type of each MilvusService method whose reply holds a Status (or is one)."""
    service = milvus_pb2.DESCRIPTOR.services_by_name["MilvusService"]
    types = {}
    for method in service.methods:
        reply = method.output_type
        if reply.full_name == common_pb2.Status.DESCRIPTOR.full_name or "status" in reply.fields_by_name:
            types[f"/{SERVICE}/{method.name}"] = message_factory.GetMessageClass(reply)
    return types


@dataclass
class Upstream:
    """The channel to the upstream Milvus, for forwarded bytes and the front's own typed calls."""

    target: str
    channel: grpc.Channel
    timeout: float  # for typed calls: owned RPCs' upstream calls and the front's own (exports, filters)
    _names_primary_key: bool | None = field(default=None, init=False, repr=False)

    @classmethod
    def connect(cls, uri: str, timeout: float, max_message_bytes: int) -> Upstream:
        target = uri.split("://", 1)[-1].rstrip("/")
        # Reconnect within a second of an upstream restart (gRPC's default backoff grows to 2 minutes).
        options = [("grpc.max_send_message_length", max_message_bytes),
                   ("grpc.max_receive_message_length", max_message_bytes),
                   ("grpc.initial_reconnect_backoff_ms", 200), ("grpc.max_reconnect_backoff_ms", 1000)]
        return cls(target, grpc.insecure_channel(target, options=options), timeout)

    def unavailable(self, e: grpc.RpcError) -> MilvusError:
        return MilvusError(SERVICE_UNAVAILABLE, f"upstream Milvus at {self.target} is unavailable: {e.details()}; "
                                                "check that it runs and that --milvus names it")

    def call(self, method: str, request: Message, reply_type: type[Message], metadata: Metadata = (),
             timeout: float | None = None) -> Any:
        """A typed unary call; a transport failure raises MilvusError (service unavailable)."""
        stub = self.channel.unary_unary(f"/{SERVICE}/{method}", request_serializer=type(request).SerializeToString,
                                        response_deserializer=reply_type.FromString)
        try:
            return stub(request, metadata=metadata, timeout=timeout or self.timeout)
        except grpc.RpcError as e:
            if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise self.unavailable(e) from e
            raise MilvusError(SERVICE_UNAVAILABLE, f"upstream Milvus at {self.target} failed {method}: "
                                                   f"{e.code().name} {e.details()}") from e

    def names_primary_key(self, metadata: Metadata = ()) -> bool:
        """Whether the upstream names the primary key in search results (GetVersion, asked until it
        succeeds, then kept: an upstream upgraded under a running front needs a front restart)."""
        if self._names_primary_key is None:
            reply = self.call("GetVersion", milvus_pb2.GetVersionRequest(), milvus_pb2.GetVersionResponse, metadata)
            check(reply.status)
            self._names_primary_key = translate.names_primary_key(reply.version)
            log.info("upstream Milvus %s at %s", reply.version or "(no version)", self.target)
        return self._names_primary_key

    def close(self) -> None:
        self.channel.close()


Owned = Callable[[Any, grpc.ServicerContext], Message]


@dataclass(frozen=True)
class OwnedMethod:
    request_type: type[Message]
    reply_type: type[Message]
    handler: Owned


class FrontHandler(grpc.GenericRpcHandler):
    """Routes the owned methods to their handlers and forwards every other one as bytes."""

    def __init__(self, upstream: Upstream, owned: dict[str, OwnedMethod]) -> None:
        self.upstream = upstream
        self.owned = {f"/{SERVICE}/{name}": method for name, method in owned.items()}
        self._reply_types = _reply_types()

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        owned = self.owned.get(method)
        if owned is not None:
            return grpc.unary_unary_rpc_method_handler(owned.handler, owned.request_type.FromString,
                                                       owned.reply_type.SerializeToString)
        return grpc.stream_stream_rpc_method_handler(lambda requests, context: self._forward(method, requests, context))

    def _forward(self, method: str, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        call = self.upstream.channel.stream_stream(method)(
            requests, metadata=clean_metadata(context.invocation_metadata()), timeout=_timeout(context))
        context.add_callback(call.cancel)
        replied = False
        try:
            context.send_initial_metadata(clean_metadata(call.initial_metadata()))
            for reply in call:
                replied = True
                yield reply
        except grpc.RpcError:
            pass  # the call's code and details are passed on below
        code = call.code()
        reply_type = self._reply_types.get(method)
        if code == grpc.StatusCode.UNAVAILABLE and not replied and reply_type is not None:
            log.warning("%s: upstream unavailable: %s", method, call.details())
            yield reply_with(reply_type, self.upstream.unavailable(call).status()).SerializeToString()
            return
        context.set_trailing_metadata(clean_metadata(call.trailing_metadata()))
        if code != grpc.StatusCode.OK:
            context.set_code(code)
            context.set_details(call.details() or "")
