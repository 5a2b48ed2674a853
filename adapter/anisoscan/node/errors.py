"""The node's exceptions; the server maps each to one gRPC status code."""

from __future__ import annotations


class NotFound(LookupError):
    """No index of that name."""


class AlreadyExists(Exception):
    """An index of that name exists."""


class FailedPrecondition(Exception):
    """The index is not in a state that allows the request (building, failed, released)."""


class ResourceExhausted(Exception):
    """A request over a configured cap, or a full disk; nothing was changed."""


class StorageError(Exception):
    """An I/O error on the node's files; the message names the file. Nothing was changed."""
