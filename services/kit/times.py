"""Times: everything stored is UTC; SQLite hands naive datetimes back, so they are read as UTC."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import timestamp_pb2


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def to_timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(as_utc(value))
    return ts


def from_timestamp(value: timestamp_pb2.Timestamp, field: str) -> datetime:
    """A request's timestamp as a UTC datetime; one outside 0001-9999 (or with bad nanos) is
    INVALID_ARGUMENT on `field`, not a crash."""
    from services.kit.errors import InvalidArgument

    try:
        return value.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as error:
        raise InvalidArgument.field(field, f"is not a valid time ({error})") from None
