"""Traces with OpenTelemetry, when it is installed (every service has it; the SDK alone may not).

A trace starts where the user acts (a CLI command, an SDK call) and follows the work through every
service, queue and worker: the context travels in W3C `traceparent` gRPC metadata and NATS headers.
Spans go to an OTLP collector (`OTEL_EXPORTER_OTLP_ENDPOINT`, or `TUNEFORGE_OTLP_ENDPOINT` for
services) and/or to a file of JSON lines (`TUNEFORGE_TRACE_FILE`), one span per line.
Without OpenTelemetry installed every function here does nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator, MutableMapping, Sequence
from pathlib import Path
from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
except ImportError:  # pragma: no cover - the bare SDK install
    trace = None  # type: ignore[assignment]

_configured = False
_lock = threading.Lock()


def available() -> bool:
    return trace is not None


def configure_tracing(service_name: str, *, otlp_endpoint: str = "", trace_file: Path | None = None) -> bool:
    """Install a tracer provider for this process exporting where asked; False when nothing is
    asked for or the OpenTelemetry SDK is missing. Idempotent."""
    global _configured
    if trace is None or not (otlp_endpoint or trace_file):
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError:
        return False
    with _lock:
        if _configured:
            return True
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        if trace_file is not None:
            # Written as each span ends: a process killed with SIGKILL keeps what it finished.
            provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(trace_file)))
        if otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
        trace.set_tracer_provider(provider)
        _configured = True
    return True


def shutdown_tracing() -> None:
    """Flush and stop the exporters (at process exit)."""
    if trace is None or not _configured:
        return
    provider = trace.get_tracer_provider()
    with contextlib.suppress(Exception):
        provider.shutdown()  # type: ignore[attr-defined]


def tracer(name: str) -> Any:
    assert trace is not None
    return trace.get_tracer(name)


def inject(carrier: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Add the current trace context (`traceparent`, `tracestate`) to `carrier`."""
    if trace is not None:
        propagate.inject(carrier)
    return carrier


def extract(carrier: dict[str, str] | None) -> Any:
    """The context `carrier` names (None: the current one)."""
    if trace is None or not carrier:
        return None
    return propagate.extract(carrier)


def current_trace_id() -> str:
    """The current trace id as 32 hex digits, or "" outside a trace."""
    if trace is None:
        return ""
    span_context = trace.get_current_span().get_span_context()
    return f"{span_context.trace_id:032x}" if span_context.is_valid else ""


@contextlib.contextmanager
def span(name: str, *, kind: str = "INTERNAL", parent: Any = None, **attributes: Any) -> Iterator[Any]:
    """A span around a block; with `parent` (an extracted context) it continues that trace."""
    if trace is None:
        yield None
        return
    with tracer("tuneforge").start_as_current_span(
        name, context=parent, kind=getattr(trace.SpanKind, kind), attributes=attributes or None
    ) as current:
        yield current


@contextlib.contextmanager
def attached(parent: Any) -> Iterator[None]:
    """Make `parent` (an extracted context) current for a block."""
    if trace is None or parent is None:
        yield
        return
    token = otel_context.attach(parent)
    try:
        yield
    finally:
        otel_context.detach(token)


@contextlib.contextmanager
def cli_span(name: str) -> Iterator[str]:
    """The root span of one CLI command, when the user's environment asks for traces; yields the
    trace id ("" when untraced)."""
    trace_file = os.environ.get("TUNEFORGE_TRACE_FILE", "")
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    if not configure_tracing(
        "tuneforge-cli", otlp_endpoint=endpoint, trace_file=Path(trace_file) if trace_file else None
    ):
        yield ""
        return
    try:
        with span(name, kind="CLIENT"):
            yield current_trace_id()
    finally:
        shutdown_tracing()


class JsonLinesSpanExporter:
    """Appends each finished span to a file as one JSON object per line (several processes may share
    the file: each line is written with one `write` on a file opened for appending)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        lines = []
        for item in spans:
            context = item.get_span_context()
            parent = item.parent
            lines.append(
                json.dumps(
                    {
                        "name": item.name,
                        "trace_id": f"{context.trace_id:032x}",
                        "span_id": f"{context.span_id:016x}",
                        "parent_span_id": f"{parent.span_id:016x}" if parent is not None else "",
                        "kind": item.kind.name,
                        "service": item.resource.attributes.get("service.name", ""),
                        "start_ns": item.start_time,
                        "end_ns": item.end_time,
                        "status": item.status.status_code.name,
                        "attributes": {k: v for k, v in (item.attributes or {}).items()},
                    },
                    default=str,
                    ensure_ascii=False,
                )
                + "\n"
            )
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            for line in lines:
                os.write(fd, line.encode())
        finally:
            os.close(fd)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
