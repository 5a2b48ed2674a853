"""A Python client of the IndexNode service: numpy in, numpy out, streaming hidden."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from .. import _validation as v
from ..v1 import index_node_pb2 as pb
from ..v1 import index_node_pb2_grpc as pb_grpc
from . import wire

STATE_NAMES = {pb.IN_PROGRESS: "InProgress", pb.FINISHED: "Finished", pb.FAILED: "Failed",
               pb.INDEX_STATE_NONE: "None"}


def _read(path: str | Path | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


class Client:
    """Connects to `anisoscan serve`. Errors arrive as grpc.RpcError with the status code.

    TLS: pass root_certificates (the server's CA, a path) and, for mutual TLS,
    certificate_chain and private_key (paths).
    """

    def __init__(self, address: str = "127.0.0.1:19531", token: str | None = None,
                 root_certificates: str | Path | None = None, certificate_chain: str | Path | None = None,
                 private_key: str | Path | None = None, max_message_bytes: int = 256 << 20,
                 timeout: float | None = 60.0, server_name: str | None = None) -> None:
        options = [("grpc.max_receive_message_length", max_message_bytes),
                   ("grpc.max_send_message_length", max_message_bytes)]
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        if root_certificates or certificate_chain:
            creds = grpc.ssl_channel_credentials(_read(root_certificates), _read(private_key),
                                                 _read(certificate_chain))
            self._channel = grpc.secure_channel(address, creds, options=options)
        else:
            self._channel = grpc.insecure_channel(address, options=options)
        self._stub = pb_grpc.IndexNodeStub(self._channel)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._timeout = timeout
        self._chunk_bytes = max(1 << 20, max_message_bytes // 4)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _call(self, method: Any, request: Any) -> Any:
        return method(request, metadata=self._metadata, timeout=self._timeout)

    # --- index lifecycle --------------------------------------------------------------
    def create_index(self, name: str, dim: int, params: dict[str, Any], vectors: Any, ids: Any = None,
                     wait: bool = True, timeout: float = 3600.0) -> dict[str, Any]:
        """Builds an index from Milvus-shaped params ({"index_type", "metric_type", "params"})."""
        x = v.as_vectors("vectors", vectors, dim)
        ids_arr = None if ids is None else v.as_ids("ids", ids, len(x))
        nested = params.get("params", {}) or {}
        flat = {k: val for k, val in params.items() if k not in ("index_type", "metric_type", "params")}
        build_params = {k: (str(val).lower() if isinstance(val, bool) else str(val))
                        for k, val in {**flat, **nested}.items()}

        def requests() -> Iterator[pb.CreateIndexRequest]:
            for i, (b, e) in enumerate(wire.chunks(len(x), dim, self._chunk_bytes)):
                req = pb.CreateIndexRequest(vectors=wire.pack_vectors(x[b:e]))
                if ids_arr is not None:
                    req.ids = wire.pack_ids(ids_arr[b:e])
                if i == 0:
                    req.index_name, req.dim = name, dim
                    req.index_type = str(params.get("index_type", "SCANN"))
                    req.metric_type = str(params.get("metric_type", "IP"))
                    req.params.update(build_params)
                yield req

        self._stub.CreateIndex(requests(), metadata=self._metadata, timeout=self._timeout)
        if not wait:
            return self.describe_index(name)
        return self.wait_for_index(name, timeout)

    def wait_for_index(self, name: str, timeout: float = 3600.0, poll: float = 0.05) -> dict[str, Any]:
        """Polls until the build finishes; raises RuntimeError if it failed."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.describe_index(name)
            if info["state"] == "Finished":
                return info
            if info["state"] == "Failed":
                raise RuntimeError(f"index {name!r} failed to build: {info['error']}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"index {name!r} still {info['state']} after {timeout} s")
            time.sleep(poll)
            poll = min(1.0, poll * 1.5)

    def describe_index(self, name: str) -> dict[str, Any]:
        d = self._call(self._stub.DescribeIndex, pb.DescribeIndexRequest(index_name=name))
        return {"index_name": d.index_name, "index_type": d.index_type, "metric_type": d.metric_type,
                "dim": d.dim, "state": STATE_NAMES[d.state], "progress": d.progress, "error": d.error,
                "num_rows": d.num_rows, "memory_bytes": d.memory_bytes, "loaded": d.loaded,
                "params": dict(d.params)}

    def list_indexes(self) -> list[str]:
        return list(self._call(self._stub.ListIndexes, pb.ListIndexesRequest()).index_names)

    def load_index(self, name: str) -> None:
        self._call(self._stub.LoadIndex, pb.LoadIndexRequest(index_name=name))

    def release_index(self, name: str) -> None:
        self._call(self._stub.ReleaseIndex, pb.ReleaseIndexRequest(index_name=name))

    def drop_index(self, name: str) -> None:
        self._call(self._stub.DropIndex, pb.DropIndexRequest(index_name=name))

    # --- data -------------------------------------------------------------------------
    def insert(self, name: str, vectors: Any, ids: Any, upsert: bool = False) -> int:
        """Returns the row count after the insert; it is durable when this returns."""
        x = v.as_vectors("vectors", vectors)
        ids_arr = v.as_ids("ids", ids, len(x))

        def requests() -> Iterator[pb.InsertRequest]:
            for i, (b, e) in enumerate(wire.chunks(len(x), x.shape[1], self._chunk_bytes)):
                yield pb.InsertRequest(index_name=name if i == 0 else "", vectors=wire.pack_vectors(x[b:e]),
                                       ids=wire.pack_ids(ids_arr[b:e]), upsert=upsert)

        return self._stub.Insert(requests(), metadata=self._metadata, timeout=self._timeout).num_rows

    def upsert(self, name: str, vectors: Any, ids: Any) -> int:
        return self.insert(name, vectors, ids, upsert=True)

    def delete(self, name: str, ids: Any) -> int:
        ids_arr = v.as_ids("ids", ids, unique=False)
        return self._call(self._stub.Delete, pb.DeleteRequest(index_name=name, ids=wire.pack_ids(ids_arr))).num_rows

    def search(self, name: str, queries: Any, limit: int = 10, search_params: dict[str, Any] | None = None,
               allowed_ids: Any = None, excluded_ids: Any = None) -> tuple[np.ndarray, np.ndarray]:
        q = v.as_vectors("queries", queries)
        params = dict(search_params or {})
        params = {**{k: val for k, val in params.items() if k != "params"}, **(params.get("params") or {})}
        req = pb.SearchRequest(index_name=name, queries=wire.pack_vectors(q), limit=limit,
                               search_params={k: str(val) for k, val in params.items()})
        if allowed_ids is not None:
            req.allowed_ids, req.has_allowed_ids = wire.pack_ids(v.id_set("allowed_ids", allowed_ids)), True
        if excluded_ids is not None:
            req.excluded_ids = wire.pack_ids(v.id_set("excluded_ids", excluded_ids))
        r = self._call(self._stub.Search, req)
        shape = (r.num_queries, r.limit)
        return (wire.unpack_ids(r.ids).reshape(shape).copy(),
                np.frombuffer(r.distances, wire.F32).reshape(shape).copy())

    def get_vectors(self, name: str, ids: Any) -> np.ndarray:
        ids_arr = v.as_ids("ids", ids, unique=False)
        r = self._call(self._stub.GetVectors, pb.GetVectorsRequest(index_name=name, ids=wire.pack_ids(ids_arr)))
        return wire.unpack_vectors(r.vectors).copy()
