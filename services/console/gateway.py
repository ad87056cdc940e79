"""gRPC-Web in front of the gRPC services: what lets the browser console call them.

A browser cannot speak gRPC (no HTTP/2 trailers from `fetch`), but it can speak gRPC-Web: the same
length-prefixed protobuf messages in an HTTP/1.1 body, with the status and trailers as a last frame
(flag 0x80). This gateway forwards each call to the service that owns it, message bytes unchanged
(it never decodes them), with the caller's `authorization`, request id and trace context; the
services do every check, exactly as for any other client. The answer's status, message and
`grpc-status-details-bin` (field violations, error info) come back in the trailer frame.

Shapes: unary and server-streaming calls as gRPC-Web defines them (streams are forwarded message by
message as they arrive). Client-streaming calls (uploads) are accepted when the request body holds
all of their messages, framed one after another: the browser sends the whole file at once, bounded
by `max_request_bytes`. Bidirectional calls are refused (none is public).
"""

from __future__ import annotations

import base64
import importlib
import logging
import struct
import urllib.parse
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from services.kit import tls

log = logging.getLogger(__name__)

# The public services, by the module holding their descriptors, and the endpoint that serves them.
SERVICE_MODULES = {
    "tuneforge.registry.v1.registry_service_pb2": "registry",
    "tuneforge.data.v1.data_service_pb2": "data",
    "tuneforge.data.v1.augmentation_service_pb2": "data",
    "tuneforge.train.v1.train_service_pb2": "train",
    "tuneforge.eval.v1.eval_service_pb2": "eval",
    "tuneforge.serve.v1.serve_service_pb2": "serve",
    "tuneforge.iam.v1.iam_service_pb2": "iam",
}
FORWARDED_HEADERS = ("authorization", "x-request-id", "traceparent", "tracestate")
GRPC_WEB_TYPES = ("application/grpc-web", "application/grpc-web+proto", "application/grpc-web-text")
UNARY_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class Route:
    peer: str
    client_streaming: bool
    server_streaming: bool


def routes() -> dict[str, Route]:
    """`/package.Service/Method` -> where it goes and its shape, from the protos' descriptors."""
    table = {}
    for module_name, peer in SERVICE_MODULES.items():
        module = importlib.import_module(module_name)
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                table[f"/{service.full_name}/{method.name}"] = Route(
                    peer, method.client_streaming, method.server_streaming
                )
    return table


def frame(payload: bytes, *, trailer: bool = False) -> bytes:
    return struct.pack(">BI", 0x80 if trailer else 0, len(payload)) + payload


def unframe(body: bytes) -> list[bytes]:
    """The messages of a gRPC-Web request body; ValueError when the framing is broken."""
    messages, offset = [], 0
    while offset < len(body):
        if offset + 5 > len(body):
            raise ValueError("a message frame is cut short")
        flag, length = struct.unpack_from(">BI", body, offset)
        if flag & 0x01:
            raise ValueError("compressed messages are not accepted")
        if flag & 0x80:
            raise ValueError("a request carries no trailers")
        end = offset + 5 + length
        if end > len(body):
            raise ValueError("a message is longer than the body")
        messages.append(body[offset + 5 : end])
        offset = end
    return messages


def trailer_frame(code: grpc.StatusCode, message: str, metadata: Iterable[tuple[str, Any]] = ()) -> bytes:
    lines = [f"grpc-status: {code.value[0]}", f"grpc-message: {urllib.parse.quote(message, safe=' ')}"]
    for key, value in metadata:
        if key.endswith("-bin"):
            raw = value if isinstance(value, bytes) else str(value).encode()
            lines.append(f"{key}: {base64.b64encode(raw).decode()}")
        elif key not in ("grpc-status", "grpc-message") and isinstance(value, str) and value.isprintable():
            lines.append(f"{key}: {value}")
    return frame(("\r\n".join(lines) + "\r\n").encode(), trailer=True)


def _timeout(headers: Mapping[str, str]) -> float | None:
    """`grpc-timeout` (e.g. 30S, 500m) in seconds."""
    value = headers.get("grpc-timeout", "")
    units = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
    if len(value) >= 2 and value[:-1].isdigit() and value[-1] in units:
        return int(value[:-1]) * units[value[-1]]
    return None


class Gateway:
    """Forwards gRPC-Web calls to the services' channels."""

    def __init__(self, endpoints: Mapping[str, str], *, max_request_bytes: int) -> None:
        self.endpoints = dict(endpoints)
        self.max_request_bytes = max_request_bytes
        self.routes = routes()
        self._channels: dict[str, grpc.aio.Channel] = {}

    def _channel(self, peer: str) -> grpc.aio.Channel:
        if peer not in self._channels:
            self._channels[peer] = tls.aio_channel(
                self.endpoints[peer],
                options=[
                    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
                    ("grpc.max_send_message_length", 64 * 1024 * 1024),
                    ("grpc.service_config", '{"loadBalancingConfig": [{"round_robin": {}}]}'),
                ],
            )
        return self._channels[peer]

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()

    async def handle(self, request: Request) -> Response:
        path = request.url.path
        route = self.routes.get(path)
        if route is None or (route.client_streaming and route.server_streaming):
            return self._refuse(grpc.StatusCode.UNIMPLEMENTED, f"no method {path} is served to browsers")
        if not self.endpoints.get(route.peer):
            return self._refuse(grpc.StatusCode.UNAVAILABLE, f"the {route.peer} service is not configured")
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type not in GRPC_WEB_TYPES:
            return Response(f"expected {GRPC_WEB_TYPES[1]}", status_code=415)
        text = content_type.endswith("-text")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_request_bytes:
                return self._refuse(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"the request is over {self.max_request_bytes} bytes, the console's limit; "
                    "use the CLI or SDK for larger uploads",
                )
        try:
            messages = unframe(base64.b64decode(bytes(body)) if text else bytes(body))
        except ValueError as error:  # binascii.Error (bad base64) is one too
            return self._refuse(grpc.StatusCode.INVALID_ARGUMENT, f"malformed gRPC-Web body: {error}")
        if not route.client_streaming and len(messages) != 1:
            return self._refuse(grpc.StatusCode.INVALID_ARGUMENT, "a unary call takes exactly one message")
        metadata = tuple((h, request.headers[h]) for h in FORWARDED_HEADERS if h in request.headers)
        timeout = _timeout(request.headers)
        channel = self._channel(route.peer)
        response_type = "application/grpc-web-text" if text else "application/grpc-web+proto"
        encode = (lambda data: base64.b64encode(data)) if text else (lambda data: data)

        async def answer() -> AsyncIterator[bytes]:
            call: Any = None
            try:
                if route.server_streaming:
                    call = channel.unary_stream(path)(messages[0], metadata=metadata, timeout=timeout)
                    async for message in call:
                        yield encode(frame(message))
                else:
                    if route.client_streaming:
                        call = channel.stream_unary(path)(iter(messages), metadata=metadata, timeout=timeout)
                    else:
                        call = channel.unary_unary(path)(
                            messages[0], metadata=metadata, timeout=timeout or UNARY_TIMEOUT_SECONDS
                        )
                    yield encode(frame(await call))
                yield encode(trailer_frame(grpc.StatusCode.OK, "", await call.trailing_metadata() or ()))
            except grpc.aio.AioRpcError as error:
                yield encode(
                    trailer_frame(error.code(), error.details() or "", error.trailing_metadata() or ())
                )
            finally:
                if call is not None and not call.done():  # the page went away: stop the upstream call
                    call.cancel()

        return StreamingResponse(
            answer(),
            media_type=response_type,
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    def _refuse(self, code: grpc.StatusCode, message: str) -> Response:
        """A trailers-only answer: the status in the headers, no body."""
        return Response(
            b"",
            media_type="application/grpc-web+proto",
            headers={
                "grpc-status": str(code.value[0]),
                "grpc-message": urllib.parse.quote(message, safe=" "),
            },
        )
