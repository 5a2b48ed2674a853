"""Build and search parameters, as the C++ core declares them (kernels/params.h).

The core owns each parameter's name, type, default, range, phase and description, and the
rules that span fields; this module reads that schema and adds only what Python callers
need: Milvus-style leniency (numeric strings, "true"/"false") and numpy scalars.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

from . import _core
from . import _validation as v

METRICS = ("IP", "L2", "COSINE")
INDEX_TYPE = "SCANN"  # the Milvus index_type this index answers to


@dataclass(frozen=True)
class ParamSpec:
    """One parameter as the core declares it."""

    name: str
    type: str  # "int", "float", "bool" or "str" (one of `choices`)
    default: Any  # None: derived (see `derived`)
    min: float | None
    max: float | None  # None: unbounded
    choices: list[str] | None
    phase: str  # "build" or "search"
    description: str
    derived: str | None  # how an unset default is resolved

    def coerce(self, value: Any) -> Any:
        """value as this parameter's type and within its range; None stays None when derived."""
        if value is None and self.derived is not None:
            return None
        if self.type == "bool":
            return v.boolean(self.name, value)
        if self.type == "str":
            return v.choice(self.name, value, self.choices or [])
        if self.type == "int":
            return v.positive_int(self.name, value, int(self.min), None if self.max is None else int(self.max))
        number = v.real_number(self.name, value, self.min)
        if self.max is not None and number > self.max:
            raise ValueError(f"{self.name}: {number} is out of range; must be [{self.min}, {self.max}]")
        return number

    def default_text(self) -> str:
        if self.derived is not None:
            return self.derived
        return str(self.default).lower() if self.type == "bool" else str(self.default)

    def range_text(self) -> str:
        if self.type == "bool":
            return "true, false"
        if self.choices:
            return ", ".join(self.choices)
        show = (lambda b: f"{int(b)}") if self.type == "int" else (lambda b: f"{b:g}")
        return f"[{show(self.min)}, {'inf' if self.max is None else show(self.max)}]"


SCHEMA: tuple[ParamSpec, ...] = tuple(ParamSpec(**d) for d in _core.param_schema())
BUILD_PARAMS: dict[str, ParamSpec] = {s.name: s for s in SCHEMA if s.phase == "build"}
SEARCH_PARAMS: dict[str, ParamSpec] = {s.name: s for s in SCHEMA if s.phase == "search"}
MAX_DIM: int = _core.MAX_DIM
MAX_NLIST = int(BUILD_PARAMS["nlist"].max)  # nprobe is bounded by it too (and by the index's nlist)

_PY_TYPES = {"int": int, "float": float, "bool": bool, "str": str}


def markdown_table(phase: str) -> str:
    """The README's table of one phase's parameters, from the schema."""
    specs = BUILD_PARAMS if phase == "build" else SEARCH_PARAMS
    rows = [f"| {phase} parameter | default | range | meaning |", "|---|---|---|---|"]
    rows += [f"| `{s.name}` | {s.default_text()} | {s.range_text()} | {s.description} |" for s in specs.values()]
    return "\n".join(rows)


def option_help(name: str, note: str) -> str:
    """Help text of a command-line option that sets parameter `name`: the schema's
    description, then what the command does with it (its default, sweeps, ...)."""
    spec = BUILD_PARAMS.get(name) or SEARCH_PARAMS[name]
    return f"{spec.description}; {note}"


def _fields(specs: dict[str, ParamSpec]) -> list[tuple[str, Any, dataclasses.Field]]:
    return [(s.name, _PY_TYPES[s.type] | None if s.derived else _PY_TYPES[s.type], dataclasses.field(default=s.default))
            for s in specs.values()]


def _index_post_init(self: Any) -> None:
    metric = self.metric.upper() if isinstance(self.metric, str) else self.metric
    if metric not in METRICS:
        raise ValueError(f"metric_type: unknown metric {self.metric!r}; use one of {', '.join(METRICS)}")
    dim = v.positive_int("dim", self.dim, 1, MAX_DIM)
    values = {name: spec.coerce(getattr(self, name)) for name, spec in BUILD_PARAMS.items()}
    given = {name: value for name, value in values.items() if value is not None}
    for name, value in _core.resolve_index_params(dim, metric, given).items():
        object.__setattr__(self, name, value)


def _from_milvus(cls: type, dim: int, index_params: dict[str, Any]) -> Any:
    """Reads {"index_type": "SCANN", "metric_type": ..., "params": {...}} as pymilvus sends it.

    Booleans may be bools or any-case strings, numbers may be numeric strings; keys in
    "params" may also sit at the top level, as Milvus allows.
    """
    if not isinstance(index_params, dict):
        raise TypeError(f"index_params: expected a dict, got {type(index_params).__name__}")
    top = dict(index_params)
    index_type = str(top.pop("index_type", INDEX_TYPE)).upper()
    if index_type != INDEX_TYPE:
        raise ValueError(f"index_type: {index_type!r} is not served by anisoscan; use \"SCANN\"")
    metric = top.pop("metric_type", "IP")
    nested = top.pop("params", {}) or {}
    if not isinstance(nested, dict):
        raise TypeError("params: expected a dict of index parameters")
    merged = {**top, **nested}
    unknown = sorted(set(merged) - set(BUILD_PARAMS))
    if unknown:
        raise ValueError(f"params: unknown key(s) {unknown}; known keys are {sorted(BUILD_PARAMS)}")
    return cls(dim=dim, metric=metric, **merged)


# Everything a SCANN index is built with: dim and metric (the collection's), then the
# schema's build parameters, resolved by the core (a derived default stays None until the
# data decides it: L2's anisotropic_threshold, set by build).
IndexParams = dataclasses.make_dataclass(
    "IndexParams",
    [("dim", int), ("metric", str, dataclasses.field(default="IP")), *_fields(BUILD_PARAMS)],
    frozen=True,
    namespace={"__post_init__": _index_post_init, "from_milvus": classmethod(_from_milvus),
               "__doc__": "Build parameters: " + "; ".join(f"{s.name}: {s.description}"
                                                           for s in BUILD_PARAMS.values()),
               "__module__": __name__},
)

# Per-call search knobs (Milvus: limit, nprobe, reorder_k), resolved for an index's nlist.
SearchParams = dataclasses.make_dataclass(
    "SearchParams", _fields(SEARCH_PARAMS), frozen=True,
    namespace={"__doc__": "Search parameters: " + "; ".join(f"{s.name}: {s.description}"
                                                            for s in SEARCH_PARAMS.values()),
               "__module__": __name__},
)


def checked_search_params(k: Any, nprobe: Any, reorder_k: Any, threads: Any, nlist: int) -> Any:
    """The SearchParams a search of an nlist-partition index runs with, every rule applied.

    Searches repeat the same few settings, so each is checked once (cached).
    """
    try:
        return _checked_search_params(k, nprobe, reorder_k, threads, nlist)
    except TypeError as e:
        if "unhashable" not in str(e):
            raise
        return _check_search_params(k, nprobe, reorder_k, threads, nlist)


def _check_search_params(k: Any, nprobe: Any, reorder_k: Any, threads: Any, nlist: int) -> Any:
    given = {"k": k, "nprobe": nprobe, "reorder_k": reorder_k, "threads": threads}
    values = {name: SEARCH_PARAMS[name].coerce(value) for name, value in given.items()}
    return SearchParams(**_core.resolve_search_params({n: x for n, x in values.items() if x is not None}, nlist))


# typed: 1, 1.0 and True are different keys, so a cached int never vouches for a bool.
_checked_search_params = functools.lru_cache(maxsize=256, typed=True)(_check_search_params)
