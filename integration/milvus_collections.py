"""Test collections in Milvus: primary key, vector, category and title fields."""

from __future__ import annotations

import uuid

import numpy as np
from pymilvus import DataType, MilvusClient

CATEGORIES = ("news", "blog", "wiki")


def pk_values(pk_type: str, start: int, count: int) -> list:
    return [f"doc-{i}" for i in range(start, start + count)] if pk_type == "varchar" else \
        list(range(start - 1000, start - 1000 + count))  # negative int64 keys too


def rows(pk_type: str, vectors: np.ndarray, start: int) -> list[dict]:
    pks = pk_values(pk_type, start, len(vectors))
    return [{"pk": pk, "vector": vec.tolist(), "category": CATEGORIES[(start + i) % 3], "title": f"title {start + i}"}
            for i, (pk, vec) in enumerate(zip(pks, vectors))]


def make_collection(mc: MilvusClient, metric: str, pk_type: str, vectors: np.ndarray) -> str:
    name = f"anisoscan_test_{uuid.uuid4().hex[:10]}"
    schema = mc.create_schema(auto_id=False, enable_dynamic_field=False)
    if pk_type == "varchar":
        schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=64)
    else:
        schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=vectors.shape[1])
    schema.add_field("category", DataType.VARCHAR, max_length=16)
    schema.add_field("title", DataType.VARCHAR, max_length=64)
    index_params = mc.prepare_index_params()
    index_params.add_index("vector", index_type="FLAT", metric_type=metric)  # exact: the oracle
    mc.create_collection(name, schema=schema, index_params=index_params, consistency_level="Strong")
    for b in range(0, len(vectors), 1000):
        mc.insert(name, rows(pk_type, vectors[b:b + 1000], b))
    mc.load_collection(name)
    return name


def milvus_search(mc: MilvusClient, name: str, metric: str, queries: np.ndarray, limit: int, expr: str = ""):
    res = mc.search(name, data=queries.tolist(), limit=limit, filter=expr, anns_field="vector",
                    search_params={"metric_type": metric, "params": {}})
    return [[h.id for h in hits] for hits in res], [[h.distance for h in hits] for hits in res]
