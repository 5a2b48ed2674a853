"""Input checks shared by the public API: every message names the field and the fix."""

from __future__ import annotations

import numbers
import re
from typing import Any

import numpy as np

# Milvus collection-name rules, ASCII only: no path separator, dot or control character can
# reach the file system. fullmatch: "$" would let a trailing newline through.
_INDEX_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
# With every |component| <= 1e16 and dim <= 32768, an L2 or IP distance stays under
# 4 * 32768 * 1e32 = 1.3e37, below float32's 3.4e38: no inf or NaN from finite input.
MAX_ABS_COMPONENT = 1e16
_ECHO_CHARS = 60


def clip(text: str, limit: int = _ECHO_CHARS) -> str:
    """Input quoted back in an error, cut to a bounded length."""
    text = repr(text)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def index_name(name: Any) -> str:
    if not isinstance(name, str) or not _INDEX_NAME.fullmatch(name):
        shown = clip(name) if isinstance(name, str) else type(name).__name__
        raise ValueError(f"index_name: {shown} is invalid; use ASCII letters, digits or '_', starting with a "
                         "letter or '_', at most 255 characters")
    return name


def bounded_vectors(name: str, x: Any, dim: int | None = None, allow_empty: bool = False) -> np.ndarray:
    """as_vectors, and every component within +-MAX_ABS_COMPONENT (what a served index accepts)."""
    out = as_vectors(name, x, dim, allow_empty=allow_empty)
    too_big = ~(np.abs(out) <= MAX_ABS_COMPONENT)
    if too_big.any():
        row = int(np.argwhere(too_big)[0][0])
        raise ValueError(f"{name}: row {row} has a value beyond +-{MAX_ABS_COMPONENT:g}; distances would overflow "
                         "float32")
    return out


def as_vectors(name: str, x: Any, dim: int | None = None, allow_empty: bool = False,
               core_checks_finite: bool = False) -> np.ndarray:
    """Returns x as a C-contiguous float32 [n, dim] array, or raises TypeError/ValueError.

    core_checks_finite: the caller's core call rejects NaN/infinity itself (searches do, on
    their own copy), so an array already in the core's format passes without a scan here.
    """
    if (type(x) is np.ndarray and x.dtype == np.float32 and x.ndim == 2 and x.flags.c_contiguous
            and (dim is None or x.shape[1] == dim) and (x.shape[0] or allow_empty)
            and (core_checks_finite or np.isfinite(x).all())):
        return x  # already what the core takes: no copy
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError) as e:
            raise TypeError(f"{name}: expected a 2-D numeric array, got {type(x).__name__} ({e})") from None
    if arr.dtype == np.bool_ or arr.dtype.kind not in "fiu":
        raise TypeError(
            f"{name}: expected a real numeric array (float32 preferred), got dtype {arr.dtype}; "
            "convert with np.asarray(x, dtype=np.float32)"
        )
    if arr.ndim != 2:
        hint = " (a single vector? use x[None, :])" if arr.ndim == 1 else ""
        raise ValueError(f"{name}: expected a 2-D array of shape [n, dim], got shape {arr.shape}{hint}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name}: dimension {arr.shape[1]} does not match the index dimension {dim}")
    if arr.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name}: got 0 vectors; pass at least one")
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(out).all():
        bad = int(np.argwhere(~np.isfinite(out))[0][0])
        raise ValueError(f"{name}: row {bad} contains NaN or infinity (or a value too large for float32)")
    return out


def as_ids(name: str, ids: Any, n: int | None = None, unique: bool = True) -> np.ndarray:
    """ids as a C-contiguous 1-D int64 array of non-negative values (one per vector when n
    is given; distinct when unique)."""
    arr = np.asarray(ids)
    if arr.dtype == np.bool_ or (arr.dtype.kind not in "iu" and arr.size):
        raise TypeError(f"{name}: expected integer ids (int64), got dtype {arr.dtype}")
    if arr.ndim != 1 or (n is not None and arr.shape[0] != n):
        want = f"one id per vector ({n})" if n is not None else "a list of ids"
        raise ValueError(f"{name}: expected a 1-D array with {want}, got shape {arr.shape}")
    if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name}: ids must fit in int64")
    out = np.ascontiguousarray(arr, dtype=np.int64)
    if out.size and (out < 0).any():
        raise ValueError(f"{name}: ids must be non-negative (-1 marks a missing result)")
    if unique and np.unique(out).size != out.size:
        raise ValueError(f"{name}: duplicate ids in one call; each id may appear once")
    return out


def id_set(name: str, ids: Any) -> np.ndarray:
    """A filter's ids as a sorted, unique int64 array (any 1-D integer sequence accepted)."""
    arr = np.asarray(ids)
    if arr.size == 0:
        return np.empty(0, np.int64)
    if arr.dtype == np.bool_ or arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer ids (int64), got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of ids, got shape {arr.shape}")
    return np.unique(arr.astype(np.int64))


def id_mask(name: str, mask: Any) -> np.ndarray:
    """A boolean mask indexed by id, as the 0/1 bytes the core reads (no copy for bool arrays)."""
    arr = np.asarray(mask)
    if arr.dtype != np.bool_:
        raise TypeError(f"{name}: expected a boolean array indexed by id, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D boolean array indexed by id, got shape {arr.shape}")
    return np.ascontiguousarray(arr).view(np.uint8)


def positive_int(name: str, value: Any, low: int = 1, high: int | None = None) -> int:
    """An integer in [low, high]; numeric strings are accepted as Milvus/Knowhere does."""
    if type(value) is int and low <= value and (high is None or value <= high):  # the common case, fast
        return value
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ValueError(f"{name}: expected an integer, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        rng = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name}: {value} is out of range; must be {rng}")
    return value


def real_number(name: str, value: Any, low: float | None = None) -> float:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError(f"{name}: expected a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value) or (low is not None and value < low):
        raise ValueError(f"{name}: {value} is out of range; must be a finite number >= {low}")
    return value


def boolean(name: str, value: Any) -> bool:
    """A bool, or any-case "true"/"false" string, as Knowhere accepts."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"{name}: expected true or false, got {value!r}")


def choice(name: str, value: Any, choices: list[str]) -> str:
    """One of `choices`, in any case (Milvus accepts "sq8" for "SQ8")."""
    if isinstance(value, str) and value.strip().upper() in choices:
        return value.strip().upper()
    raise ValueError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
