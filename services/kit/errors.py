"""Domain exceptions shared by every service.

Handlers and domain code raise these; the error interceptor (`services.kit.interceptors`) maps
each one to a gRPC status with `google.rpc.ErrorInfo` and, for bad input, `google.rpc.BadRequest`.
This module does not import grpc so that domain code stays transport-free.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

ERROR_DOMAIN = "tuneforge.dev"


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: its dotted path (`model_version.lineage.parent_version`) and what to do."""

    field: str
    description: str


class ServiceError(Exception):
    """Base of all domain errors. `code` names the gRPC status code; `reason` is stable.

    Clients never see this class: the error interceptor turns it into a status, which the SDK
    raises as `tuneforge.TuneForgeError`.
    """

    code = "INTERNAL"
    default_reason = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        violations: Iterable[FieldViolation] = (),
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.violations = tuple(violations)
        self.metadata = dict(metadata or {})


class InvalidArgument(ServiceError):
    code = "INVALID_ARGUMENT"
    default_reason = "INVALID_ARGUMENT"

    @classmethod
    def field(cls, field: str, description: str, *, reason: str | None = None) -> InvalidArgument:
        """One bad field: the message repeats the field so a one-line error still says where."""
        return cls(f"{field}: {description}", reason=reason, violations=[FieldViolation(field, description)])

    @classmethod
    def fields(cls, violations: list[FieldViolation]) -> InvalidArgument:
        summary = "; ".join(f"{v.field}: {v.description}" for v in violations)
        return cls(summary, violations=violations)


class NotFound(ServiceError):
    code = "NOT_FOUND"
    default_reason = "NOT_FOUND"


class AlreadyExists(ServiceError):
    code = "ALREADY_EXISTS"
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(ServiceError):
    code = "FAILED_PRECONDITION"
    default_reason = "FAILED_PRECONDITION"


class PermissionDenied(ServiceError):
    code = "PERMISSION_DENIED"
    default_reason = "PERMISSION_DENIED"


class Unauthenticated(ServiceError):
    code = "UNAUTHENTICATED"
    default_reason = "UNAUTHENTICATED"


class DataLoss(ServiceError):
    code = "DATA_LOSS"
    default_reason = "CHECKSUM_MISMATCH"


class ResourceExhausted(ServiceError):
    code = "RESOURCE_EXHAUSTED"
    default_reason = "LIMIT_EXCEEDED"


class Aborted(ServiceError):
    code = "ABORTED"
    default_reason = "ABORTED"


class Unavailable(ServiceError):
    code = "UNAVAILABLE"
    default_reason = "UNAVAILABLE"


def unreachable_backend(error: BaseException) -> Unavailable | None:
    """The UNAVAILABLE a failure of a backend (the object store, the database, a peer service)
    becomes, or None when `error` is not one: such work is retried, not read as a bug."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, Unavailable):  # a peer, or a peer's backend, that did not answer
            return current
        module = type(current).__module__
        if module.startswith("urllib3") or isinstance(current, ConnectionError | TimeoutError):
            return Unavailable("the object store did not answer; try again", reason="STORE_UNAVAILABLE")
        if module.startswith("sqlalchemy") and type(current).__name__ in (
            "OperationalError",
            "DisconnectionError",
        ):
            return Unavailable("the database did not answer; try again", reason="DATABASE_UNAVAILABLE")
        current = current.__cause__ or current.__context__
    return None
