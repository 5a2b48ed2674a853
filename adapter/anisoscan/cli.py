"""Command line: `anisoscan demo` (the main job) and `anisoscan bench`."""

from __future__ import annotations

import argparse
import logging
import sys
import time

import numpy as np

from . import _core
from .datasets import make_clustered
from .index import Index, exact_search
from .metrics import recall_at_k


def demo(args: argparse.Namespace) -> int:
    """Builds an index over generated clustered data and compares it with exact search."""
    data = make_clustered(args.n, args.dim, n_queries=args.queries, metric=args.metric, seed=args.seed)
    print(f"anisoscan demo: {data.name}, metric {args.metric}, SIMD level {_core.simd_level()}")
    t0 = time.perf_counter()
    truth, _ = exact_search(data.base, data.queries, args.k, args.metric)
    exact_qps = len(data.queries) / (time.perf_counter() - t0)
    print(f"  exact search: {exact_qps:,.0f} queries/s (ground truth)")
    for with_raw in (True, False):
        index = Index(args.dim, args.metric, nlist=args.nlist, with_raw_data=with_raw)
        t0 = time.perf_counter()
        index.build(data.base)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ids, _ = index.search(data.queries, args.k, nprobe=args.nprobe, reorder_k=4 * args.k, threads=1)
        qps = len(data.queries) / (time.perf_counter() - t0)
        recall = recall_at_k(ids, truth, args.k)
        print(f"  SCANN with_raw_data={with_raw!s:5}: recall@{args.k} {recall:.3f}, {qps:,.0f} queries/s "
              f"(one thread, nprobe {args.nprobe}), build {build_s:.1f} s, "
              f"{index.memory_bytes / 2**20:.1f} MiB")
    return 0


def bench(args: argparse.Namespace) -> int:
    """`anisoscan bench ...` is `python -m anisoscan.bench ...` (kernel, compare)."""
    from .bench.__main__ import main as bench_main

    return bench_main(args.bench_args)


def serve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .server import ServerConfig
    from .server import serve as run_server

    token = args.token
    if args.token_file:
        token = Path(args.token_file).read_text().strip()
    def path(value: str | None) -> Path | None:
        return Path(value) if value else None

    run_server(ServerConfig(
        data_dir=Path(args.data_dir), host=args.host, port=args.port, token=token,
        tls_cert=path(args.tls_cert), tls_key=path(args.tls_key), tls_client_ca=path(args.tls_client_ca),
        max_message_bytes=args.max_message_mb << 20))
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(prog="anisoscan", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="build, search and compare with exact search on generated data")
    p.add_argument("--n", type=int, default=50_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--metric", choices=["IP", "L2", "COSINE"], default="IP")
    p.add_argument("--nlist", type=int, default=256)
    p.add_argument("--nprobe", type=int, default=16)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=demo)
    # prefix_chars="+": every argument after "bench", options included, goes to the bench parser.
    p = sub.add_parser("bench", help="benchmarks: anisoscan bench {kernel,compare} --help",
                       prefix_chars="+", add_help=False)
    p.add_argument("bench_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=bench)
    s = sub.add_parser("serve", help="run the gRPC IndexNode server")
    s.add_argument("--data-dir", required=True, help="where indexes live; reloaded on restart")
    s.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    s.add_argument("--port", type=int, default=19531)
    s.add_argument("--token", help="require 'authorization: Bearer TOKEN' on every RPC")
    s.add_argument("--token-file", help="read the token from a file instead")
    s.add_argument("--tls-cert", help="server certificate (PEM); enables TLS with --tls-key")
    s.add_argument("--tls-key", help="server private key (PEM)")
    s.add_argument("--tls-client-ca", help="CA (PEM) that client certificates must chain to: mutual TLS")
    s.add_argument("--max-message-mb", type=int, default=256)
    s.set_defaults(func=serve)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())
