"""`python -m anisoscan.bench upstream-memory`: what the index the front creates upstream costs.

Milvus loads a collection only once its vector field has an index, so CreateIndex(SCANN)
through the front creates the upstream index UPSTREAM_INDEX_TYPE (FLAT: the raw vectors and
nothing else). This measures what holding it loaded costs a Milvus 2.3.5 server: the
server process's resident memory with the collection loaded and released, at several
collection sizes. Go's allocator returns memory on its own schedule, so each size is
released and loaded again several times and medians are reported; the cost per row is the
least-squares slope of the loaded medians over the sizes.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from typing import Any

import numpy as np

from ..milvus.front.owned import UPSTREAM_INDEX_TYPE
from .servers import MILVUS_VERSION, milvus_server, resident_mib, write_results

log = logging.getLogger(__name__)

INSERT_BATCH = 20_000
SETTLE_S = 8.0  # after a load or release, before reading the resident memory


def _measure(client: Any, pid: int, n: int, dim: int, cycles: int, rng: np.random.Generator) -> dict[str, Any]:
    from pymilvus import DataType

    name = f"upstream_memory_{n}"
    schema = client.create_schema(auto_id=False)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    client.create_collection(name, schema=schema)
    for start in range(0, n, INSERT_BATCH):
        rows = rng.standard_normal((min(INSERT_BATCH, n - start), dim), dtype=np.float32)
        client.insert(name, [{"pk": start + i, "vector": v} for i, v in enumerate(rows)])
    client.flush(name)
    index = client.prepare_index_params()
    index.add_index("vector", index_type=UPSTREAM_INDEX_TYPE, metric_type="L2")
    client.create_index(name, index)
    client.load_collection(name)
    loaded, released = [], []
    for cycle in range(cycles):
        client.release_collection(name)
        time.sleep(SETTLE_S)
        released.append(resident_mib(pid))
        client.load_collection(name)
        time.sleep(SETTLE_S)
        loaded.append(resident_mib(pid))
        log.info("%d rows, cycle %d/%d: released %.0f MiB, loaded %.0f MiB", n, cycle + 1, cycles,
                 released[-1], loaded[-1])
    client.drop_collection(name)
    return {"rows": n, "raw_mib": n * dim * 4 / 2**20, "loaded_mib": loaded, "released_mib": released,
            "loaded_median_mib": statistics.median(loaded), "released_median_mib": statistics.median(released)}


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# Memory of the upstream {report['index_type']} index on Milvus {report['milvus_version']}", "",
             f"Random {report['dim']}-d float vectors; resident memory of the Milvus process, median of "
             f"{report['cycles']} release/load cycles ({SETTLE_S:.0f} s after each).", "",
             "| rows | raw vectors MiB | loaded MiB | released MiB | loaded - released MiB |",
             "|---|---|---|---|---|"]
    for s in report["sizes"]:
        lines.append(f"| {s['rows']:,} | {s['raw_mib']:.1f} | {s['loaded_median_mib']:.0f} | "
                     f"{s['released_median_mib']:.0f} | {s['loaded_median_mib'] - s['released_median_mib']:.0f} |")
    raw = report["raw_bytes_per_row"]
    lines += ["", f"Least squares over the sizes: loaded memory grows {report['bytes_per_row']:.0f} bytes per row "
              f"({report['bytes_per_row'] / raw:.2f}x the raw vectors' {raw}), the released baseline's drift "
              f"included; loaded - released grows {report['net_bytes_per_row']:.0f} bytes per row "
              f"({report['net_bytes_per_row'] / raw:.2f}x)."]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from pymilvus import MilvusClient

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("pymilvus").setLevel(logging.ERROR)
    sizes = [int(x) for x in args.rows.split(",")]
    if len(sizes) < 2 or min(sizes) <= 0:
        raise ValueError("rows: give at least two positive collection sizes, e.g. 150000,300000,600000")
    rng = np.random.default_rng(0)
    with milvus_server() as (uri, _, pid):
        client = MilvusClient(uri)
        measured = [_measure(client, pid, n, args.dim, args.cycles, rng) for n in sizes]
    rows = [s["rows"] for s in measured]
    loaded = np.polyfit(rows, [s["loaded_median_mib"] for s in measured], 1)[0]
    net = np.polyfit(rows, [s["loaded_median_mib"] - s["released_median_mib"] for s in measured], 1)[0]
    report = {"index_type": UPSTREAM_INDEX_TYPE, "milvus_version": MILVUS_VERSION, "dim": args.dim,
              "cycles": args.cycles, "sizes": measured, "bytes_per_row": float(loaded) * 2**20,
              "net_bytes_per_row": float(net) * 2**20, "raw_bytes_per_row": args.dim * 4}
    print(write_results(report, args.out, "upstream-memory", markdown))
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rows", default="150000,300000,600000", help="collection sizes, comma-separated "
                   "(default 150000,300000,600000)")
    p.add_argument("--dim", type=int, default=128, help="vector dimension (default 128)")
    p.add_argument("--cycles", type=int, default=4, help="release/load cycles per size (default 4)")
    p.add_argument("--out", default="bench/results/upstream-memory", help="output folder")
    p.set_defaults(run=run)
