"""The front's forwarding: any method, streaming both ways, metadata, codes and details passed through."""

from __future__ import annotations

import time
from concurrent import futures

import grpc
import pytest

pytest.importorskip("pymilvus", reason="the front needs pymilvus (pip install '.[milvus]')")

from anisoscan.milvus.front import FrontServer, Settings  # noqa: E402
from anisoscan.milvus.front.proxy import SERVICE, FrontHandler, Upstream  # noqa: E402
from pymilvus.grpc_gen import milvus_pb2  # noqa: E402
from server_process import free_port  # noqa: E402

STREAM = f"/{SERVICE}/SomeFutureStream"  # a method this pymilvus does not know


class FakeMilvus(grpc.GenericRpcHandler):
    """Echoes each request reversed, reports the caller's dbname header, and fails on b"fail"."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method == STREAM:
            return grpc.stream_stream_rpc_method_handler(self._echo)
        if details.method == f"/{SERVICE}/AllocTimestamp":
            return grpc.unary_unary_rpc_method_handler(self._unimplemented)
        return None

    @staticmethod
    def _echo(requests, context):
        dbname = dict(context.invocation_metadata()).get("dbname", "")
        context.send_initial_metadata((("x-upstream", "yes"),))
        for request in requests:
            if request == b"fail":
                context.set_trailing_metadata((("x-seen-db", dbname),))
                context.abort(grpc.StatusCode.NOT_FOUND, "no such thing in " + dbname)
            yield request[::-1]
        context.set_trailing_metadata((("x-seen-db", dbname),))

    @staticmethod
    def _unimplemented(request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "AllocTimestamp is not served here")


def serve(handler: grpc.GenericRpcHandler) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


@pytest.fixture()
def front_to(request):
    """A front in front of `upstream_port`; yields a channel to it."""
    servers = []

    def make(upstream_port: int) -> grpc.Channel:
        upstream = Upstream.connect(f"http://127.0.0.1:{upstream_port}", 2.0, 4 << 20)
        server, port = serve(FrontHandler(upstream, {}))
        servers.append((server, upstream))
        return grpc.insecure_channel(f"127.0.0.1:{port}")

    yield make
    for server, upstream in servers:
        server.stop(0)
        upstream.close()


def test_streams_metadata_and_statuses_pass_through(front_to):
    upstream, port = serve(FakeMilvus())
    try:
        stream = front_to(port).stream_stream(STREAM)
        call = stream(iter([b"abc", b"12"]), metadata=(("dbname", "books"),))
        assert list(call) == [b"cba", b"21"]
        assert ("x-upstream", "yes") in call.initial_metadata()
        assert ("x-seen-db", "books") in call.trailing_metadata()
        failing = stream(iter([b"ok", b"fail"]), metadata=(("dbname", "films"),))
        with pytest.raises(grpc.RpcError) as caught:
            list(failing)
        assert (caught.value.code(), caught.value.details()) == (grpc.StatusCode.NOT_FOUND, "no such thing in films")
        assert ("x-seen-db", "films") in caught.value.trailing_metadata()
        alloc = front_to(port).unary_unary(f"/{SERVICE}/AllocTimestamp")
        with pytest.raises(grpc.RpcError) as caught:
            alloc(b"")
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED  # pymilvus then uses a client timestamp
    finally:
        upstream.stop(0)


def test_an_unreachable_upstream_is_a_milvus_status(front_to):
    channel = front_to(free_port())
    show = channel.unary_unary(f"/{SERVICE}/ShowCollections",
                               request_serializer=milvus_pb2.ShowCollectionsRequest.SerializeToString,
                               response_deserializer=milvus_pb2.ShowCollectionsResponse.FromString)
    reply = show(milvus_pb2.ShowCollectionsRequest(), timeout=10)
    assert reply.status.code == 2 and "is unavailable" in reply.status.reason
    with pytest.raises(grpc.RpcError) as caught:  # a method without a Milvus status keeps gRPC's code
        list(channel.stream_stream(STREAM)(iter([b"x"]), timeout=10))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_idle_clients_keepalive_pings_are_allowed(tmp_path):
    """Milvus lets clients ping every 5 s with no call open (its Go server's enforcement policy);
    gRPC's default server takes the third such ping as abuse and sends GOAWAY (too_many_pings).
    Go's gRPC clients (the Go SDK, Attu) have no cap on pings without data; C-core has one."""
    upstream, upstream_port = serve(FakeMilvus())
    running = FrontServer.start(Settings(f"127.0.0.1:{upstream_port}", tmp_path, port=0, reconcile_interval_s=0))
    # pymilvus's keepalive options, pinging at 6 s instead of 10 s so that four pings fit in 26 s,
    # and with no cap on pings without data, as a Go client pings
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}", options=[
        ("grpc.keepalive_time_ms", 6000), ("grpc.keepalive_timeout_ms", 5000),
        ("grpc.keepalive_permit_without_calls", True), ("grpc.http2.max_pings_without_data", 0)])
    states = []
    try:
        stream = channel.stream_stream(STREAM)
        assert list(stream(iter([b"ab"]))) == [b"ba"]
        channel.subscribe(states.append)
        time.sleep(26)
        assert list(stream(iter([b"cd"]))) == [b"dc"]
        assert set(states) == {grpc.ChannelConnectivity.READY}  # never dropped: no GOAWAY, no reconnect
    finally:
        channel.close()
        running.stop(0)
        upstream.stop(0)
