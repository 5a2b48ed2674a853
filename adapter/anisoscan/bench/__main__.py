"""Entry point of `python -m anisoscan.bench SUBCOMMAND`."""

from __future__ import annotations

import argparse
import sys

from . import (
    compare,
    front,
    grpc_overhead,
    inserts,
    kernel,
    milvus_lite,
    milvus_side_by_side,
    scaling,
    updates,
    upstream_memory,
    vdbbench,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m anisoscan.bench")
    sub = parser.add_subparsers(dest="command", required=True)
    kernel.add_arguments(sub.add_parser("kernel", help="FastScan vectors/s per SIMD level, one core"))
    compare.add_arguments(sub.add_parser(
        "compare", help="recall@10 vs QPS, build time, memory: anisoscan against ScaNN, faiss, HNSW",
        description=compare.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    grpc_overhead.add_arguments(sub.add_parser("grpc", help="QPS through the gRPC node vs in-process"))
    inserts.add_arguments(sub.add_parser("inserts", help="durable insert latency and rows/s through the gRPC node",
                                         description=inserts.__doc__))
    milvus_side_by_side.add_arguments(sub.add_parser(
        "milvus", help="anisoscan next to a real Milvus server's SCANN, IVF_PQ and HNSW",
        description=milvus_side_by_side.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    milvus_lite.add_arguments(sub.add_parser(
        "lite", help="SCANN (anisoscan) against Milvus Lite's HNSW, IVF_FLAT, IVF_SQ8 in one Milvus Lite database",
        description=milvus_lite.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    milvus_lite.add_segments_arguments(sub.add_parser(
        "lite-segments", help="recall per segment size under the Milvus Lite plug-in's per-segment nlist/nprobe rule"))
    milvus_lite.add_writes_arguments(sub.add_parser(
        "lite-writes", help="insert latency in Milvus Lite while segment indexes build behind the writer"))
    front.add_arguments(sub.add_parser(
        "front", help="anisoscan's SCANN through `anisoscan front` against the Milvus server behind it",
        description=front.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    vdbbench.add_arguments(sub.add_parser(
        "vdbbench", help="VectorDBBench drives the front, and the upstream's own SCANN and HNSW, in one run",
        description=vdbbench.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    upstream_memory.add_arguments(sub.add_parser(
        "upstream-memory", help="memory a Milvus server spends on the index the front creates upstream (FLAT)",
        description=upstream_memory.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    scaling.add_arguments(sub.add_parser("scaling", help="memory, build time and batched QPS over thread counts",
                                         description=scaling.__doc__))
    updates.add_arguments(sub.add_parser("updates", help="one-row delete, upsert, get_vectors and filter costs",
                                         description=updates.__doc__))
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
