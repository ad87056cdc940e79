"""Server interceptors every service installs, outermost first:

0. `TelemetryInterceptor`: a server span continuing the caller's trace (`traceparent` metadata),
   and the RPC count and latency by method and status code (`services.kit.telemetry`).
1. `RequestIdInterceptor`: takes `x-request-id` from the caller or makes one, returns it.
2. `LoggingInterceptor`: one structured line per call with method, status and duration.
3. `ErrorInterceptor`: maps domain exceptions to a status with `ErrorInfo` and `BadRequest`;
   anything unexpected becomes INTERNAL with a request id to quote, never a traceback.
4. `AuthInterceptor`: requires `authorization: Bearer tf_...` except on health and reflection.
5. `AccessInterceptor`: the key's role must allow the method, the key must be within its rate, and
   every call that changes something leaves an audit entry (`services.kit.access`).
6. `RequestChecks`: undecodable bodies and reused request ids (`services.kit.requests`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.kit import telemetry
from services.kit.access import Access, require_role
from services.kit.auth import ApiKeyStore, bearer_var, principal_var
from services.kit.errors import ERROR_DOMAIN, ServiceError, Unauthenticated, unreachable_backend
from services.kit.logs import call_info_var, request_id_var
from services.kit.requests import RequestChecks
from tuneforge import telemetry as tracing

log = logging.getLogger("tuneforge.rpc")

Around = Callable[[str, grpc.aio.ServicerContext], AbstractAsyncContextManager[None]]
UNAUTHENTICATED_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def _wrap(handler: grpc.RpcMethodHandler, method: str, around: Around) -> grpc.RpcMethodHandler:
    """Return `handler` with each call run inside `around(method, context)`."""
    if handler.response_streaming:
        behavior = handler.unary_stream or handler.stream_stream

        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async with around(method, context):
                async for item in behavior(request, context):
                    yield item

        new: Callable[..., Any] = streaming
    else:
        behavior = handler.unary_unary or handler.stream_unary

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            async with around(method, context):
                return await behavior(request, context)

        new = unary
    factory = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[(handler.request_streaming, handler.response_streaming)]
    return factory(
        new,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class _AroundInterceptor(grpc.aio.ServerInterceptor):
    def around(self, method: str, context: grpc.aio.ServicerContext) -> AbstractAsyncContextManager[None]:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        return _wrap(handler, handler_call_details.method, self.around)


def _metadata(context: grpc.aio.ServicerContext) -> dict[str, str]:
    return {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}


class RequestIdInterceptor(_AroundInterceptor):
    @asynccontextmanager
    async def around(self, method: str, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        given = _metadata(context).get("x-request-id", "")
        request_id = given if 0 < len(given) <= 128 and given.isprintable() else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        info = call_info_var.set({})
        try:
            await context.send_initial_metadata((("x-request-id", request_id),))
            yield
        finally:
            call_info_var.reset(info)
            request_id_var.reset(token)


class LoggingInterceptor(_AroundInterceptor):
    """One log line per call, the RPC count and latency by method and code, and a server span that
    continues the caller's trace (`traceparent` metadata); probes are counted, not logged or traced."""

    @asynccontextmanager
    async def around(self, method: str, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        started = time.perf_counter()
        outcome = "OK"
        probe = method.startswith(UNAUTHENTICATED_PREFIXES)
        with contextlib.ExitStack() as stack:
            span = None
            if not probe:
                parent = tracing.extract(_metadata(context))
                attributes = {"rpc.system": "grpc", "tuneforge.request_id": request_id_var.get()}
                span = stack.enter_context(
                    tracing.span(method.lstrip("/"), kind="SERVER", parent=parent, **attributes)
                )
            try:
                yield
            except BaseException:
                code = context.code()
                outcome = code.name if isinstance(code, grpc.StatusCode) else "CANCELLED"
                raise
            finally:
                seconds = time.perf_counter() - started
                telemetry.RPC_REQUESTS.labels(method, outcome).inc()
                telemetry.RPC_SECONDS.labels(method, outcome).observe(seconds)
                if span is not None:
                    span.set_attribute("rpc.grpc.status_code", outcome)
                log.log(
                    logging.DEBUG if probe else logging.INFO,
                    "rpc",
                    extra={
                        "method": method,
                        "status": outcome,
                        "duration_ms": round(seconds * 1000, 2),
                        "key_id": (call_info_var.get() or {}).get("key_id"),
                    },
                )


MAX_MESSAGE_CHARS = 1000


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def rich_status(error: ServiceError, request_id: str) -> grpc.Status:
    """The gRPC status for a domain error: code, message, ErrorInfo and BadRequest details."""
    code = getattr(code_pb2, error.code)
    # Bounded whatever a handler put in: errors never echo unbounded input back (trailers have limits).
    detail = status_pb2.Status(code=code, message=_cut(error.message, MAX_MESSAGE_CHARS))
    metadata = {_cut(k, 64): _cut(str(v), 256) for k, v in list(error.metadata.items())[:16]}
    info = error_details_pb2.ErrorInfo(
        reason=_cut(error.reason, 64), domain=ERROR_DOMAIN, metadata={**metadata, "request_id": request_id}
    )
    packed = any_pb2.Any()
    packed.Pack(info)
    detail.details.append(packed)
    if error.violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=_cut(v.field, 200), description=_cut(v.description, MAX_MESSAGE_CHARS)
                )
                for v in error.violations[:20]
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(bad)
        detail.details.append(packed)
    return rpc_status.to_status(detail)


class ErrorInterceptor(_AroundInterceptor):
    @asynccontextmanager
    async def around(self, method: str, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        try:
            yield
        except grpc.aio.AbortError:
            raise
        except ServiceError as error:
            status = rich_status(error, request_id_var.get())
            await context.abort(status.code, status.details, status.trailing_metadata)
        except Exception as unexpected:
            request_id = request_id_var.get()
            backend = unreachable_backend(unexpected)
            if backend is not None:  # a store or database outage: retryable, not a bug
                log.warning("a backend is unreachable", extra={"method": method}, exc_info=True)
                status = rich_status(backend, request_id)
                await context.abort(status.code, status.details, status.trailing_metadata)
            log.exception("unhandled error", extra={"method": method})
            status = rich_status(
                ServiceError(f"internal error; quote request id {request_id} when reporting it"), request_id
            )
            await context.abort(status.code, status.details, status.trailing_metadata)


class AuthInterceptor(_AroundInterceptor):
    def __init__(self, keys: ApiKeyStore) -> None:
        self.keys = keys

    @asynccontextmanager
    async def around(self, method: str, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        if method.startswith(UNAUTHENTICATED_PREFIXES):
            yield
            return
        header = _metadata(context).get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise Unauthenticated(
                "this call needs an API key: send `authorization: Bearer tf_...`", reason="MISSING_API_KEY"
            )
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(
                "the authorization header must be `Bearer <API key>`", reason="MALFORMED_API_KEY"
            )
        principal = await self.keys.authenticate_async(token.strip())
        info = call_info_var.get()
        if info is not None:
            info["key_id"] = principal.key_id
        reset = principal_var.set(principal)
        reset_bearer = bearer_var.set(token.strip())
        try:
            yield
        finally:
            bearer_var.reset(reset_bearer)
            principal_var.reset(reset)


class AccessInterceptor(_AroundInterceptor):
    def __init__(self, access: Access) -> None:
        self.access = access

    @asynccontextmanager
    async def around(self, method: str, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        principal = principal_var.get()
        if principal is None:  # health and reflection
            yield
            return
        needed = require_role(principal, method)
        await self.access.admit(principal, principal.project)
        if needed == "viewer":
            yield
            return
        status = "OK"
        try:
            yield
        except ServiceError as error:
            status = error.code
            raise
        except BaseException:
            status = "CANCELLED" if context.cancelled() else "INTERNAL"
            raise
        finally:
            info = call_info_var.get() or {}
            try:
                await asyncio.shield(
                    self.access.audit(
                        principal,
                        info.get("project", ""),
                        method,
                        info.get("resource", ""),
                        status,
                        request_id_var.get(),
                    )
                )
            except Exception:
                log.exception("writing the audit entry failed", extra={"method": method})


def standard_interceptors(
    keys: ApiKeyStore, access: Access | None = None
) -> list[grpc.aio.ServerInterceptor]:
    return [
        RequestIdInterceptor(),
        LoggingInterceptor(),
        ErrorInterceptor(),
        AuthInterceptor(keys),
        AccessInterceptor(access or Access(keys.db)),
        RequestChecks(keys.db),
    ]
