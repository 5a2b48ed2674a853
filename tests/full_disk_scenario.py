"""A real full disk: run inside `unshare --user --map-root-user --mount` by test_limits.py.

Mounts a small tmpfs as the node's data directory, fills it, and prints what the client saw
as one JSON line: the insert on a full disk, the index afterwards, and after a kill -9 once
space was freed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
from anisoscan import Client
from server_process import ServerProcess

DIM = 8


def code(call) -> str:
    try:
        call()
    except grpc.RpcError as e:
        return f"{e.code().name}: {e.details()}"
    return "OK"


def fill(path: Path) -> None:
    """Writes until not one more byte fits."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 16, 4096, 1):
            try:
                while True:
                    os.write(fd, bytes(size))
            except OSError:
                pass
    finally:
        os.close(fd)


def main(work: Path) -> None:
    data = work / "data"
    data.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(data)], check=True)
    server = ServerProcess(data)
    server.start()
    report: dict[str, object] = {}
    try:
        with Client(server.address) as c:
            c.create_index("a", DIM, {"index_type": "FLAT", "metric_type": "L2"}, np.ones((100, DIM), np.float32))
            fill(data / "ballast")
            big = np.full((5000, DIM), 2.0, np.float32)
            report["insert_on_full_disk"] = code(lambda: c.insert("a", big, np.arange(1000, 6000)))
            report["rows_after_failed_insert"] = c.describe_index("a")["num_rows"]
            report["release_on_full_disk"] = code(lambda: c.release_index("a"))
            (data / "ballast").unlink()
            if not c.describe_index("a")["loaded"]:
                c.load_index("a")
            report["retry_after_freeing"] = code(lambda: c.insert("a", big, np.arange(1000, 6000)))
            report["more"] = code(lambda: c.insert("a", np.full((50, DIM), 3.0, np.float32), np.arange(9000, 9050)))
        server.kill()
        server.start()
        with Client(server.address) as c:
            report["rows_after_restart"] = c.describe_index("a")["num_rows"]
            got = c.get_vectors("a", np.r_[np.arange(1000, 6000), np.arange(9000, 9050)])
            report["vectors_intact"] = bool((got[:5000] == 2.0).all() and (got[5000:] == 3.0).all())
    finally:
        server.stop()
    print(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
