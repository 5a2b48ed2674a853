"""The node's pluggable index types: one class per type plus one registration.

A type turns Milvus-shaped string parameters into an index, and loads one back from disk.
The served index must offer add/upsert/delete/search/get_vectors/save, len() and
memory_bytes, as Index and FlatIndex do.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import _validation as v
from ..flat import FlatIndex
from ..index import Index
from ..params import INDEX_TYPE, IndexParams

Progress = Callable[[float], None]


class IndexType(ABC):
    name: str
    file_name: str

    @abstractmethod
    def build(self, dim: int, metric: str, params: dict[str, str], vectors: np.ndarray, ids: np.ndarray,
              progress: Progress) -> Any: ...

    @abstractmethod
    def load(self, path: Path) -> Any: ...

    @abstractmethod
    def validate(self, dim: int, metric: str, params: dict[str, str]) -> None:
        """Raises ValueError/TypeError for parameters the build would reject."""

    @staticmethod
    def search_options(params: dict[str, str]) -> dict[str, Any]:
        return {}


class ScannType(IndexType):
    name = INDEX_TYPE
    file_name = "index.anisoscan"

    def validate(self, dim: int, metric: str, params: dict[str, str]) -> None:
        IndexParams.from_milvus(dim, {"index_type": INDEX_TYPE, "metric_type": metric, "params": params})

    def build(self, dim, metric, params, vectors, ids, progress):
        index = Index.from_milvus_params(dim, {"index_type": INDEX_TYPE, "metric_type": metric, "params": params})
        index.build(vectors, ids)
        progress(0.9)
        return index

    def load(self, path: Path) -> Index:
        return Index.load(path, mmap=True)

    @staticmethod
    def search_options(params: dict[str, str]) -> dict[str, Any]:
        known = {"nprobe", "reorder_k"}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"search_params: unknown key(s) {unknown}; SCANN takes {sorted(known)}")
        return {key: v.positive_int(key, value, 1, 1 << 20) for key, value in params.items()}


class FlatType(IndexType):
    name = "FLAT"
    file_name = "index.flat.npz"

    def validate(self, dim: int, metric: str, params: dict[str, str]) -> None:
        FlatIndex(dim, metric)
        if params:
            raise ValueError(f"params: FLAT takes no build parameters, got {sorted(params)}")

    def build(self, dim, metric, params, vectors, ids, progress):
        return FlatIndex(dim, metric).build(vectors, ids)

    def load(self, path: Path) -> FlatIndex:
        return FlatIndex.load(path)

    @staticmethod
    def search_options(params: dict[str, str]) -> dict[str, Any]:
        if params:
            raise ValueError(f"search_params: FLAT takes none, got {sorted(params)}")
        return {}


REGISTRY: dict[str, IndexType] = {}


def register(index_type: IndexType) -> None:
    REGISTRY[index_type.name] = index_type


def lookup(name: str) -> IndexType:
    key = name.upper()
    if key not in REGISTRY:
        raise ValueError(f"index_type: {name!r} is not registered; available: {sorted(REGISTRY)}")
    return REGISTRY[key]


register(ScannType())
register(FlatType())
