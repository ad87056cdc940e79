"""Exceptions the SDK raises, carrying what the server said: code, reason, fields, request id."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class TuneForgeError(Exception):
    """A call failed. `code` is the gRPC status name (`INVALID_ARGUMENT`, `NOT_FOUND`...)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        reason: str = "",
        violations: tuple[FieldViolation, ...] = (),
        request_id: str = "",
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
        self.violations = violations
        self.request_id = request_id
        self.metadata = metadata or {}

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> TuneForgeError:
        code = error.code().name if isinstance(error, grpc.Call) else "UNKNOWN"
        message = error.details() if isinstance(error, grpc.Call) else str(error)
        reason, request_id, metadata = "", "", {}
        violations: list[FieldViolation] = []
        status = rpc_status.from_call(error) if isinstance(error, grpc.Call) else None
        if status is not None:
            for detail in status.details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    reason = info.reason
                    metadata = dict(info.metadata)
                    request_id = metadata.pop("request_id", "")
                elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad = error_details_pb2.BadRequest()
                    detail.Unpack(bad)
                    violations = [FieldViolation(v.field, v.description) for v in bad.field_violations]
        subclass = _BY_CODE.get(code, cls)
        return subclass(
            code,
            message or code,
            reason=reason,
            violations=tuple(violations),
            request_id=request_id,
            metadata=metadata,
        )


class InvalidArgumentError(TuneForgeError):
    pass


class NotFoundError(TuneForgeError):
    pass


class AlreadyExistsError(TuneForgeError):
    pass


class FailedPreconditionError(TuneForgeError):
    pass


class PermissionDeniedError(TuneForgeError):
    pass


class UnauthenticatedError(TuneForgeError):
    pass


class DataLossError(TuneForgeError):
    pass


class UnavailableError(TuneForgeError):
    pass


_BY_CODE: dict[str, type[TuneForgeError]] = {
    "INVALID_ARGUMENT": InvalidArgumentError,
    "NOT_FOUND": NotFoundError,
    "ALREADY_EXISTS": AlreadyExistsError,
    "FAILED_PRECONDITION": FailedPreconditionError,
    "PERMISSION_DENIED": PermissionDeniedError,
    "UNAUTHENTICATED": UnauthenticatedError,
    "DATA_LOSS": DataLossError,
    "UNAVAILABLE": UnavailableError,
}
