"""Test hooks on the node's storage path: crash points and injected I/O errors.

Off unless a test turns them on: ANISOSCAN_CRASH_AT=POINT[:N] ends the process (os._exit)
the Nth time POINT is reached; ANISOSCAN_INJECT=POINT=ERRNO[,...] or inject() makes a point
raise an OSError with that errno (28: ENOSPC, a full disk).
"""

from __future__ import annotations

import os
from collections import Counter

_crash_at = os.environ.get("ANISOSCAN_CRASH_AT", "")
_reached: Counter[str] = Counter()
_errors: dict[str, int] = {
    point: int(errno) for point, _, errno in
    (item.partition("=") for item in os.environ.get("ANISOSCAN_INJECT", "").split(",") if item)
}


def crash_at(point: str) -> None:
    """Crash at POINT or POINT:N from now on ("" turns it off)."""
    global _crash_at
    _crash_at = point
    _reached.clear()


def inject(point: str, errno: int | None) -> None:
    """Makes POINT raise OSError(errno) each time it is reached (None: stop)."""
    if errno is None:
        _errors.pop(point, None)
    else:
        _errors[point] = errno


def point(name: str) -> None:
    if _crash_at:
        _reached[name] += 1
        target, _, nth = _crash_at.partition(":")
        if target == name and _reached[name] == int(nth or 1):
            os._exit(137)
    errno = _errors.get(name)
    if errno is not None:
        raise OSError(errno, f"{os.strerror(errno)} (injected at {name})")
