"""Milvus statuses for the front's answers: Milvus's error codes, never a gRPC failure.

Milvus 2.3+ fills both `code` (its merr numbers) and the legacy `error_code` enum; pymilvus
raises on either and retries only rate limits, so an error status fails the call at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import Message
from pymilvus.grpc_gen import common_pb2

# merr codes (milvus/pkg/util/merr/errors.go) with the legacy ErrorCode each maps to.
SERVICE_UNAVAILABLE = 2
SERVICE_INTERNAL = 5
COLLECTION_NOT_FOUND = 100
COLLECTION_NOT_LOADED = 101
INDEX_NOT_FOUND = 700
PARAMETER_INVALID = 1100

_LEGACY = {
    SERVICE_UNAVAILABLE: common_pb2.UnexpectedError,
    SERVICE_INTERNAL: common_pb2.UnexpectedError,
    COLLECTION_NOT_FOUND: common_pb2.CollectionNotExists,
    COLLECTION_NOT_LOADED: common_pb2.UnexpectedError,
    INDEX_NOT_FOUND: common_pb2.IndexNotExist,
    PARAMETER_INVALID: common_pb2.IllegalArgument,
}


@dataclass
class MilvusError(Exception):
    """An error the front answers as a Milvus status."""

    code: int
    message: str

    def __str__(self) -> str:
        return self.message

    def status(self) -> common_pb2.Status:
        return common_pb2.Status(code=self.code, error_code=_LEGACY.get(self.code, common_pb2.UnexpectedError),
                                 reason=self.message, detail=self.message,
                                 retriable=self.code == SERVICE_UNAVAILABLE)


def invalid(message: str) -> MilvusError:
    return MilvusError(PARAMETER_INVALID, message)


def is_ok(status: common_pb2.Status) -> bool:
    return status.code == 0 and status.error_code == common_pb2.Success


class UpstreamStatus(Exception):
    """The upstream refused a call the front made for a client: its status goes back unchanged."""

    def __init__(self, status: common_pb2.Status) -> None:
        super().__init__(status.reason)
        self.status = status


def check(status: common_pb2.Status) -> None:
    if not is_ok(status):
        raise UpstreamStatus(status)


def reply_with(reply_type: type[Message], status: common_pb2.Status) -> Message:
    """A reply of `reply_type` carrying only `status` (or the status itself, for RPCs that answer one)."""
    if reply_type.DESCRIPTOR.full_name == common_pb2.Status.DESCRIPTOR.full_name:
        return status
    reply = reply_type()
    reply.status.CopyFrom(status)
    return reply
