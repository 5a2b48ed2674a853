"""Command line: `anisoscan demo` (the main job), `anisoscan lite`, `anisoscan front`, `anisoscan serve` and
`anisoscan bench`."""

from __future__ import annotations

import argparse
import logging
import sys

from . import demo
from .node.limits import Limits


def bench(args: argparse.Namespace) -> int:
    """`anisoscan bench ...` is `python -m anisoscan.bench ...` (compare, kernel, milvus, scaling, grpc)."""
    from .bench.__main__ import main as bench_main

    return bench_main(args.bench_args)


def serve(args: argparse.Namespace) -> int:
    from .node.server import main as serve_main

    return serve_main(args)


def lite(args: argparse.Namespace) -> int:
    from .milvus import quiet_library_logs

    quiet_library_logs()  # before Milvus Lite loads faiss
    from .milvus.lite import serve as serve_lite

    serve_lite(args.db, args.host, args.port)
    return 0


def show_params(args: argparse.Namespace) -> int:
    from . import params

    sys.stdout.write(f"{params.markdown_table('build')}\n\n{params.markdown_table('search')}\n")
    return 0


def front(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .milvus import quiet_library_logs
    from .milvus.front import Settings, serve

    quiet_library_logs()
    serve(Settings(args.milvus, Path(args.data_dir), args.host, args.port, args.upstream_timeout,
                   tuple(args.index_type) if args.index_type else Settings.index_types, args.max_message_mb,
                   reconcile_interval_s=args.reconcile_interval))
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(prog="anisoscan", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo.add_arguments(sub.add_parser("demo", help="Milvus Lite + anisoscan on real vectors: recall and speed",
                                      description=demo.__doc__))
    # prefix_chars="+": every argument after "bench", options included, goes to the bench parser.
    p = sub.add_parser("bench", help="benchmarks: anisoscan bench {kernel,compare,lite,milvus,scaling,grpc} --help",
                       prefix_chars="+", add_help=False)
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="a bench subcommand and its options")
    p.set_defaults(func=bench)
    sub.add_parser("params", help="every index parameter: default, range, meaning (the README's tables)"
                   ).set_defaults(func=show_params)
    m = sub.add_parser("lite", help="serve a Milvus Lite database, with anisoscan as its SCANN index, "
                                    "to any Milvus client (pymilvus, Attu, VectorDBBench, other SDKs)")
    m.add_argument("db", help="the database folder, the path MilvusClient(path) opens in-process")
    m.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    m.add_argument("--port", type=int, default=19530, help="Milvus's port by default; 0 picks a free one (logged)")
    m.set_defaults(func=lite)
    f = sub.add_parser("front", help="a Milvus-protocol server in front of a Milvus server: fields indexed as "
                                     "SCANN are served by anisoscan, everything else is forwarded")
    f.add_argument("--milvus", required=True, help="the upstream Milvus server, e.g. http://127.0.0.1:19530")
    f.add_argument("--port", type=int, default=19530, help="listen port (default 19530); 0 picks a free one (logged)")
    f.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    f.add_argument("--data-dir", required=True, help="where the SCANN indexes and key maps live; kept across restarts")
    f.add_argument("--upstream-timeout", type=float, default=30.0,
                   help="seconds the front waits on each upstream call it makes to answer an owned RPC or for "
                        "itself (default 30); forwarded RPCs keep the client's deadline")
    f.add_argument("--index-type", action="append", default=None,
                   help="index_type names the front serves; repeat for several (default: SCANN)")
    f.add_argument("--max-message-mb", type=int, default=256, help="largest gRPC message either way (default 256)")
    f.add_argument("--reconcile-interval", type=float, default=30.0,
                   help="seconds between rounds catching writes that bypass the front (default 30; 0: off)")
    f.set_defaults(func=front)
    s = sub.add_parser("serve", help="run the gRPC IndexNode server")
    s.add_argument("--data-dir", required=True, help="where indexes live; reloaded on restart")
    s.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    s.add_argument("--port", type=int, default=19531, help="listen port (default 19531)")
    s.add_argument("--token", help="require 'authorization: Bearer TOKEN' on every RPC")
    s.add_argument("--token-file", help="read the token from a file instead")
    s.add_argument("--tls-cert", help="server certificate (PEM); enables TLS with --tls-key")
    s.add_argument("--tls-key", help="server private key (PEM)")
    s.add_argument("--tls-client-ca", help="CA (PEM) that client certificates must chain to: mutual TLS")
    s.add_argument("--max-message-mb", type=int, default=256,
                   help="largest gRPC message, request or reply (default 256)")
    s.add_argument("--max-reply-mb", type=int, default=Limits.max_reply_bytes >> 20,
                   help="largest Search/GetVectors reply, checked before searching")
    s.add_argument("--max-get-ids", type=int, default=Limits.max_get_ids, help="most ids in one GetVectors")
    s.add_argument("--max-insert-rows", type=int, default=Limits.max_insert_rows, help="most rows in one Insert")
    s.set_defaults(func=serve)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
