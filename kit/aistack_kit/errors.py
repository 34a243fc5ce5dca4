"""Domain errors and their one mapping to gRPC status codes with `google.rpc.Status` + `ErrorInfo`.

Engines and servicers raise these; `aistack_kit.interceptors.RequestInterceptor` turns them (and
anything unexpected) into a rich status. Envoy's `convert_grpc_status` then writes the same status as a
JSON body with the matching HTTP code, so REST and gRPC callers read one error shape.
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2


class AistackError(Exception):
    """Base of every error a caller is meant to see. `reason` is UPPER_SNAKE_CASE and stable."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    default_reason = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        domain: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = dict(metadata or {})
        self.domain = domain


class InvalidArgument(AistackError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = "INVALID_ARGUMENT"


class NotFound(AistackError):
    code = grpc.StatusCode.NOT_FOUND
    default_reason = "NOT_FOUND"


class FailedPrecondition(AistackError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "FAILED_PRECONDITION"


class Unauthenticated(AistackError):
    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = "UNAUTHENTICATED"


class Unavailable(AistackError):
    code = grpc.StatusCode.UNAVAILABLE
    default_reason = "UNAVAILABLE"


class DeadlineExceeded(AistackError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
    default_reason = "DEADLINE_EXCEEDED"


class ResourceExhausted(AistackError):
    """Overload or a limit reached. `retry_after_seconds` becomes a `google.rpc.RetryInfo` detail."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "RESOURCE_EXHAUSTED"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        domain: str | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata, domain=domain)
        self.retry_after_seconds = retry_after_seconds


def build_status(
    code: grpc.StatusCode,
    message: str,
    *,
    reason: str,
    domain: str,
    metadata: Mapping[str, str] | None = None,
    retry_after_seconds: float | None = None,
) -> status_pb2.Status:
    """A `google.rpc.Status` with exactly one `ErrorInfo` (and `RetryInfo` when a retry delay is known)."""
    info = error_details_pb2.ErrorInfo(reason=reason, domain=domain, metadata=dict(metadata or {}))
    details = [_pack(info)]
    if retry_after_seconds is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(retry_after_seconds * 1e9))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    return status_pb2.Status(code=_rpc_code(code), message=message, details=details)


def status_for(error: AistackError, default_domain: str) -> status_pb2.Status:
    return build_status(
        error.code,
        error.message,
        reason=error.reason,
        domain=error.domain or default_domain,
        metadata=error.metadata,
        retry_after_seconds=getattr(error, "retry_after_seconds", None),
    )


def _pack(message: error_details_pb2.ErrorInfo | error_details_pb2.RetryInfo) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _rpc_code(code: grpc.StatusCode) -> int:
    # grpc.StatusCode values are (int, name) pairs; google.rpc.Code uses the same numbers.
    number: int = code.value[0]
    assert code_pb2.Code.Name(number) == code.name
    return number


def error_info_of(error: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """The ErrorInfo a caller received, read from `grpc-status-details-bin` (for clients and tests)."""
    from grpc_status import rpc_status

    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None
