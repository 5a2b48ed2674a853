"""Entry point of `python -m anisoscan.bench SUBCOMMAND`."""

from __future__ import annotations

import argparse
import sys

from . import compare, grpc_overhead, kernel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m anisoscan.bench")
    sub = parser.add_subparsers(dest="command", required=True)
    kernel.add_arguments(sub.add_parser("kernel", help="FastScan vectors/s per SIMD level, one core"))
    compare.add_arguments(sub.add_parser(
        "compare", help="recall@10 vs QPS, build time, memory: anisoscan against ScaNN, faiss, HNSW",
        description=compare.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    grpc_overhead.add_arguments(sub.add_parser("grpc", help="QPS through the gRPC node vs in-process"))
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
