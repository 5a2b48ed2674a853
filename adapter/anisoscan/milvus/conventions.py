"""Milvus conventions that every anisoscan path to a Milvus server shares (attach, front).

One place for: the schema's data type numbers, the metric check and its Milvus wording,
and how a Milvus search's params become SCANN's nprobe and reorder_k.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..params import checked_search_params

INT64, VARCHAR, FLOAT_VECTOR = 5, 21, 101  # schema.DataType values, as pymilvus and the proto number them
PRIMARY_KEY_TYPES = (INT64, VARCHAR)
SCANN_SEARCH_KEYS = ("nprobe", "reorder_k")
MAX_TOPK = 16384  # Milvus's bound on limit (and on offset + limit)


def check_metric(expected: str, requested: Any) -> None:
    """Raises ValueError, worded as Milvus words it, when a search asks for another metric than the index's."""
    if requested is not None and str(requested).upper() != expected:
        raise ValueError(f"metric type not match: invalid parameter[expected={expected}][actual={requested}]")


def scann_search_options(params: Mapping[str, Any], limit: int, nlist: int) -> dict[str, int]:
    """nprobe and reorder_k from a search's params, range-checked against the index's nlist.

    Only the keys the request holds come back: a missing one keeps the index's default.
    """
    checked = checked_search_params(limit, params.get("nprobe"), params.get("reorder_k"), 0, nlist)
    return {key: getattr(checked, key) for key in SCANN_SEARCH_KEYS if key in params}
