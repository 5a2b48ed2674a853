"""Entry point of `python -m anisoscan.bench SUBCOMMAND`."""

from __future__ import annotations

import argparse
import sys

from . import kernel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m anisoscan.bench")
    sub = parser.add_subparsers(dest="command", required=True)
    kernel.add_arguments(sub.add_parser("kernel", help="FastScan vectors/s per SIMD level, one core"))
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
