"""Operators' plumbing: spans exported by OTLP to a collector, the containers' health check, and the
object store's error counter."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from prometheus_client import REGISTRY

from services.kit.store import ObjectStore
from services.suite.processes import free_port
from services.suite.suite import LocalSuite
from tuneforge import Client


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver, as an OpenTelemetry collector runs one: keeps what arrives."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str]] = []  # (service.name, span name)
        self.lock = threading.Lock()

    def Export(self, request, context):  # type: ignore[no-untyped-def]
        with self.lock:
            for resource_spans in request.resource_spans:
                attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope in resource_spans.scope_spans:
                    self.spans += [(attributes.get("service.name", ""), s.name) for s in scope.spans]
        return trace_service_pb2.ExportTraceServiceResponse()


def test_a_service_exports_its_spans_by_otlp(tmp_path: Path) -> None:
    collector = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with LocalSuite(
            tmp_path / "suite",
            services=("registry",),
            extra_env={"TUNEFORGE_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"},
        ) as suite:
            with Client(suite.endpoints, api_key=suite.admin_key, project="traced") as client:
                client.models.create("exported")
            deadline = time.monotonic() + 30  # the exporter sends in batches, every few seconds
            wanted = ("tuneforge-registry", "tuneforge.registry.v1.RegistryService/CreateModel")
            while wanted not in collector.spans and time.monotonic() < deadline:
                time.sleep(0.5)
            assert wanted in collector.spans, sorted(set(collector.spans))[:20]
    finally:
        server.stop(0)


def healthcheck(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.kit.healthcheck", "--timeout", "2", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_container_health_check_answers_for_services_and_workers(suite: LocalSuite) -> None:
    listen = suite.endpoints["registry"]
    assert healthcheck({"TUNEFORGE_LISTEN": listen}).returncode == 0
    dead = healthcheck({"TUNEFORGE_LISTEN": f"127.0.0.1:{free_port()}"})
    assert dead.returncode == 1 and "unhealthy: UNAVAILABLE" in dead.stderr
    metrics = suite.metrics_url("worker-0").removeprefix("http://").removesuffix("/metrics")
    assert healthcheck({"TUNEFORGE_METRICS_LISTEN": metrics}, "--metrics").returncode == 0
    missing = healthcheck({"TUNEFORGE_METRICS_LISTEN": f"0.0.0.0:{free_port()}"}, "--metrics")
    assert missing.returncode == 1 and "unhealthy" in missing.stderr


async def test_failed_object_store_calls_are_counted() -> None:
    store = ObjectStore(f"127.0.0.1:{free_port()}", "key", "secret-secret", "tuneforge")

    def failed(method: str) -> float:
        return REGISTRY.get_sample_value("tuneforge_store_errors_total", {"operation": method}) or 0.0

    before = failed("HEAD"), failed("GET")
    with pytest.raises(Exception):  # noqa: B017 - whichever error the client raises for no server
        await store.exists("nothing/here")
    with pytest.raises(Exception):  # noqa: B017
        await store.get_bytes("nothing/here")
    assert (failed("HEAD"), failed("GET")) == (before[0] + 1, before[1] + 1)
