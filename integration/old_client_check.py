"""Run with another pymilvus (e.g. 2.6) against an `anisoscan lite` URI: SCANN through an older client.

Exits non-zero with the failed check's message; prints the pymilvus version it ran with.
"""

from __future__ import annotations

import sys

import numpy as np
import pymilvus
from pymilvus import DataType, MilvusClient, MilvusException


def main(uri: str) -> None:
    print("pymilvus", pymilvus.__version__)
    mc = MilvusClient(uri)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    schema = mc.create_schema(auto_id=False)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("tag", DataType.INT64)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=16)
    mc.create_collection("old_client", schema=schema)
    mc.insert("old_client", [{"pk": i, "tag": i % 10, "v": x[i].tolist()} for i in range(len(x))])
    mc.flush("old_client")
    ip = mc.prepare_index_params()
    ip.add_index("v", index_type="SCANN", metric_type="IP", params={"nlist": 16, "with_raw_data": True})
    mc.create_index("old_client", ip)
    mc.load_collection("old_client")
    info = mc.describe_index("old_client", "v")
    assert info["index_type"] == "SCANN" and int(info["params"]["nlist"]) == 16, info
    hits = mc.search("old_client", data=x[:20].tolist(), limit=5,
                     search_params={"params": {"nprobe": 16, "reorder_k": 50}})
    truth = np.argsort(-x[:20] @ x.T, axis=1)[:, :5]
    recall = np.mean([len({h.id for h in row} & set(t)) / 5 for row, t in zip(hits, truth)])
    assert recall >= 0.9, f"recall {recall}"
    filtered = mc.search("old_client", data=x[:5].tolist(), limit=5, filter="tag == 3", output_fields=["tag"])
    assert all(len(row) == 5 and all(h.id % 10 == 3 for h in row) for row in filtered)
    mc.release_collection("old_client")
    mc.drop_index("old_client", "v")
    bad = mc.prepare_index_params()
    bad.add_index("v", index_type="SCANN", metric_type="IP", params={"nlist": 0})
    try:
        mc.create_index("old_client", bad)
        raise AssertionError("nlist 0 was accepted")
    except MilvusException as e:
        assert e.code == 6 and "nlist" in e.message, e
    mc.drop_collection("old_client")


if __name__ == "__main__":
    main(sys.argv[1])
