"""Checks on the request message itself, for every service (installed innermost, after auth):

- A body that does not decode (bad wire format, invalid UTF-8 in a string field) is refused with
  INVALID_ARGUMENT `UNDECODABLE_REQUEST`, not grpcio's UNKNOWN.
- A `request_id` is bound to the request it was first used for: the same id with a different body
  (the same method and project) is refused with INVALID_ARGUMENT `REQUEST_ID_REUSED` on `request_id`,
  instead of silently returning the first resource. The binding is stored in the shared auth
  database once the first call succeeds (a failed call leaves the id free to reuse); client-streamed
  uploads are bound by their service (their body is the stream).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any

import grpc
from google.protobuf.message import Message
from sqlalchemy import DateTime, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from services.kit.auth import AuthBase, principal_var
from services.kit.db import Database
from services.kit.errors import FieldViolation, InvalidArgument, PermissionDenied
from services.kit.logs import call_info_var
from services.kit.names import quote
from services.kit.times import utcnow

_PROJECT = re.compile(r"^projects/([a-z][a-z0-9-]{0,62})(/|$)")


class RequestFingerprintRow(AuthBase):
    __tablename__ = "request_fingerprints"

    method: Mapped[str] = mapped_column(String(200), primary_key=True)
    scope: Mapped[str] = mapped_column(String(80), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class _Undecodable:
    def __init__(self, error: Exception) -> None:
        self.error = error


def _safe(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def run(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as error:
            return _Undecodable(error)

    return run


def _refuse_undecodable(request: Any) -> None:
    if isinstance(request, _Undecodable):
        raise InvalidArgument(
            f"the request body does not decode as this method's message ({str(request.error)[:120]}); "
            "string fields must be valid UTF-8",
            reason="UNDECODABLE_REQUEST",
        )


def scope_of(request: Message) -> str:
    """The project a request is about: the first `projects/…` name among its fields (one level deep)."""
    for message in (
        request,
        *(v for f, v in request.ListFields() if f.type == f.TYPE_MESSAGE and not f.is_repeated),
    ):
        for descriptor, value in message.ListFields():
            if (
                descriptor.type == descriptor.TYPE_STRING
                and isinstance(value, str)
                and (m := _PROJECT.match(value))
            ):
                return m.group(1)
    return ""


def resource_of(request: Message) -> str:
    """The resource a request names: its `name`, else its `parent`, else the first `projects/…`
    string among its fields and its messages' fields (an upload's header)."""
    for key in ("name", "parent"):
        if key in request.DESCRIPTOR.fields_by_name and getattr(request, key):
            return str(getattr(request, key))
    for message in (
        request,
        *(v for f, v in request.ListFields() if f.type == f.TYPE_MESSAGE and not f.is_repeated),
    ):
        for descriptor, value in message.ListFields():
            if descriptor.type == descriptor.TYPE_STRING and isinstance(value, str) and _PROJECT.match(value):
                return value
    return ""


# Fields that name resources (and their `…_version`, `…_model`, `…_dataset`, `…_job` kin): every
# `projects/{p}/…` among them must be a project the caller's key may act on.
REFERENCE_FIELDS = frozenset(
    {
        "name",
        "parent",
        "source",
        "dataset",
        "deployment",
        "model",
        "teacher",
        "judge",
        "evaluation",
        "rating_task",
        "tokenizer",
        "validation_data",
        "derived_from",
        "derivation",
    }
)
REFERENCE_SUFFIXES = ("_version", "_model", "_dataset", "_job")


def named_projects(message: Message, depth: int = 4) -> Iterator[tuple[str, str]]:
    """(field path, project) of every resource name in `message`'s reference fields."""
    for descriptor, value in message.ListFields():
        if descriptor.type == descriptor.TYPE_MESSAGE:
            if depth and not descriptor.message_type.GetOptions().map_entry:
                for i, item in enumerate(value if descriptor.is_repeated else [value]):
                    index = f"[{i}]" if descriptor.is_repeated else ""
                    for path, project in named_projects(item, depth - 1):
                        yield f"{descriptor.name}{index}.{path}", project
            continue
        if descriptor.type != descriptor.TYPE_STRING:
            continue
        if descriptor.name not in REFERENCE_FIELDS and not descriptor.name.endswith(REFERENCE_SUFFIXES):
            continue
        for i, text in enumerate(value if descriptor.is_repeated else [value]):
            if match := _PROJECT.match(text):
                yield (f"{descriptor.name}[{i}]" if descriptor.is_repeated else descriptor.name), match.group(1)


def _note_target(request: Any) -> None:
    """The tenancy wall, before any handler runs: every resource the request names must be in a
    project the caller's key may act on (PERMISSION_DENIED naming the field otherwise). Then tell
    the outer interceptors (the audit) which project and resource the request names."""
    if not isinstance(request, Message):
        return
    principal = principal_var.get()
    if principal is not None and not principal.operator:
        for path, project in named_projects(request):
            if project != principal.project:
                raise PermissionDenied(
                    f"{path}: this API key is scoped to project {principal.project!r} and cannot access "
                    f"project {project!r}",
                    reason="PROJECT_FORBIDDEN",
                    violations=[FieldViolation(path, f"names project {project!r}")],
                )
    info = call_info_var.get()
    if info is not None:
        info["project"], info["resource"] = scope_of(request), resource_of(request)


def fingerprint(request: Message) -> str:
    body = type(request)()
    body.CopyFrom(request)
    body.ClearField("request_id")
    return hashlib.sha256(body.SerializeToString(deterministic=True)).hexdigest()


class RequestChecks(grpc.aio.ServerInterceptor):
    def __init__(self, db: Database | None) -> None:
        self.db = db

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        method = details.method
        if handler.request_streaming:
            behavior = handler.stream_stream if handler.response_streaming else handler.stream_unary

            async def checked_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
                first = True
                async for request in requests:
                    _refuse_undecodable(request)
                    if first:
                        _note_target(request)
                        first = False
                    yield request

            if handler.response_streaming:

                async def stream_stream(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
                    async for item in behavior(checked_stream(requests), context):
                        yield item

                return grpc.stream_stream_rpc_method_handler(
                    stream_stream, _safe(handler.request_deserializer), handler.response_serializer
                )

            async def stream_unary(requests: AsyncIterator[Any], context: Any) -> Any:
                return await behavior(checked_stream(requests), context)

            return grpc.stream_unary_rpc_method_handler(
                stream_unary, _safe(handler.request_deserializer), handler.response_serializer
            )
        if handler.response_streaming:
            streaming = handler.unary_stream

            async def unary_stream(request: Any, context: Any) -> AsyncIterator[Any]:
                _refuse_undecodable(request)
                _note_target(request)
                async for item in streaming(request, context):
                    yield item

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, _safe(handler.request_deserializer), handler.response_serializer
            )
        unary = handler.unary_unary

        async def unary_unary(request: Any, context: Any) -> Any:
            _refuse_undecodable(request)
            _note_target(request)
            key = self._key(method, request)
            if key is not None:
                await self._check(key)
            response = await unary(request, context)
            if key is not None:
                await self._bind(key)
            return response

        return grpc.unary_unary_rpc_method_handler(
            unary_unary, _safe(handler.request_deserializer), handler.response_serializer
        )

    def _key(self, method: str, request: Any) -> tuple[str, str, str, str] | None:
        if self.db is None or not isinstance(request, Message):
            return None
        if "request_id" not in request.DESCRIPTOR.fields_by_name or not request.request_id:
            return None
        request_id = str(request.request_id)
        if len(request_id) > 128:
            return None  # the handler refuses it, naming the field
        return method[:200], scope_of(request), request_id, fingerprint(request)

    async def _check(self, key: tuple[str, str, str, str]) -> None:
        method, scope, request_id, print_ = key
        assert self.db is not None
        stored = await self.db.run(
            lambda s: s.scalar(
                select(RequestFingerprintRow.fingerprint).where(
                    RequestFingerprintRow.method == method,
                    RequestFingerprintRow.scope == scope,
                    RequestFingerprintRow.request_id == request_id,
                )
            )
        )
        if stored is not None and stored != print_:
            raise InvalidArgument.field(
                "request_id",
                f"request_id {quote(request_id)} was already used for a different "
                f"{method.rsplit('/', 1)[-1]} request; send a new request_id to ask for something else "
                "(the same id with the same request returns what the first made)",
                reason="REQUEST_ID_REUSED",
            )

    async def _bind(self, key: tuple[str, str, str, str]) -> None:
        method, scope, request_id, print_ = key
        assert self.db is not None

        def bind(session: Session) -> None:
            session.add(
                RequestFingerprintRow(
                    method=method,
                    scope=scope,
                    request_id=request_id,
                    fingerprint=print_,
                    create_time=utcnow(),
                )
            )

        try:
            await self.db.run(bind)
        except IntegrityError:
            await self._check(key)  # a concurrent first use: the same request is fine, another is not
