"""What operators watch: Prometheus metrics and OpenTelemetry traces of every service and worker.

Metrics are served as Prometheus text on `TUNEFORGE_METRICS_LISTEN` (host:port, off when empty)
from prometheus_client's default registry (which also holds the process's CPU, memory and file
descriptors). Each service and worker adds its own series next to the shared ones defined here:

- `tuneforge_rpc_requests_total{method,code}` and `tuneforge_rpc_duration_seconds{method,code}`,
  from the server interceptor (`interceptors.TelemetryInterceptor`);
- `tuneforge_queue_messages{stream,subject}` and `tuneforge_queue_oldest_message_age_seconds`:
  work held by a queue stream (waiting or in progress), read from JetStream by the service that
  fills the queue (`observe_queue`);
- `tuneforge_store_errors_total{operation}`, `tuneforge_nats_errors_total{kind}`;
- `tuneforge_worker_tasks_total{stream,outcome}`, `tuneforge_worker_busy{stream}`;
- `tuneforge_gpu_utilization_ratio{device}`, `tuneforge_gpu_memory_used_bytes{device}` where NVML
  sees GPUs.

Traces: `tuneforge.telemetry` (shared with the SDK and CLI) configured from `TUNEFORGE_TRACE_FILE`
and `TUNEFORGE_OTLP_ENDPOINT`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

RPC_REQUESTS = Counter("tuneforge_rpc_requests", "RPCs served, by method and status code", ["method", "code"])
RPC_SECONDS = Histogram(
    "tuneforge_rpc_duration_seconds",
    "Time to serve an RPC (a stream: until it ends), by method and status code",
    ["method", "code"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
QUEUE_MESSAGES = Gauge(
    "tuneforge_queue_messages", "Work held by a queue stream (waiting or in progress)", ["stream", "subject"]
)
QUEUE_OLDEST_AGE = Gauge(
    "tuneforge_queue_oldest_message_age_seconds",
    "Age of the oldest message a queue stream holds for a subject (0 when empty)",
    ["stream", "subject"],
)
STORE_ERRORS = Counter("tuneforge_store_errors", "Object store calls that failed", ["operation"])
NATS_ERRORS = Counter(
    "tuneforge_nats_errors", "NATS connection errors, disconnections and failed publishes", ["kind"]
)
WORKER_TASKS = Counter("tuneforge_worker_tasks", "Work-queue messages handled", ["stream", "outcome"])
WORKER_BUSY = Gauge("tuneforge_worker_busy", "1 while the worker handles a message", ["stream"])


def start_metrics_server(listen: str, port_file: Path | None = None) -> int:
    """Serve /metrics on `listen` (host:port; port 0 picks one); returns the port."""
    host, _, port = listen.rpartition(":")
    server, _thread = start_http_server(int(port), addr=host)
    bound = int(server.server_port)
    if port_file is not None:
        tmp = port_file.with_suffix(".tmp")
        tmp.write_text(str(bound))
        tmp.replace(port_file)
    log.info("metrics served", extra={"metrics_port": bound})
    return bound


def set_gauges(gauge: Gauge, values: dict[tuple[str, ...], float], *, keep: Any = None) -> None:
    """Set `gauge` for each label tuple in `values`, and to 0 for every other label tuple it had
    (for which `keep(labels)` is false, when given): a state or subject that emptied reads 0."""
    for labels, value in values.items():
        gauge.labels(*labels).set(value)
    for labels in list(gauge._metrics):  # prometheus_client's children, by label values
        if labels not in values and not (keep is not None and keep(labels)):
            gauge.labels(*labels).set(0)


async def observe_queue(bus: Any, stream: str) -> int:
    """Refresh the queue gauges of `stream` from JetStream; returns 0 (for `run_periodically`)."""
    info = await bus.js.stream_info(stream, subjects_filter=">")
    now = time.time()
    counts, ages = {}, {}
    for subject, count in dict(info.state.subjects or {}).items():
        counts[(stream, subject)] = float(count)
        oldest = await bus.js.get_msg(stream, seq=info.state.first_seq or 1, subject=subject, next=True)
        ages[(stream, subject)] = max(0.0, now - oldest.time.timestamp()) if oldest.time else 0.0
    other_streams = lambda labels: labels[0] != stream  # noqa: E731
    set_gauges(QUEUE_MESSAGES, counts, keep=other_streams)
    set_gauges(QUEUE_OLDEST_AGE, ages, keep=other_streams)
    return 0


class GpuCollector(Collector):
    """GPU utilisation and memory from NVML (the `nvidia-ml-py` package), read at each scrape;
    nothing where NVML or a GPU is missing."""

    def __init__(self) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml: Any = pynvml
            self._count = pynvml.nvmlDeviceGetCount()
        except Exception:
            self._nvml = None
            self._count = 0

    def collect(self) -> Any:
        if not self._count:
            return
        utilization = GaugeMetricFamily(
            "tuneforge_gpu_utilization_ratio", "GPU busy time over the last sample period", labels=["device"]
        )
        memory = GaugeMetricFamily("tuneforge_gpu_memory_used_bytes", "GPU memory in use", labels=["device"])
        for index in range(self._count):
            try:
                handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
                rates = self._nvml.nvmlDeviceGetUtilizationRates(handle)
                used = self._nvml.nvmlDeviceGetMemoryInfo(handle).used
            except Exception:
                continue
            utilization.add_metric([str(index)], rates.gpu / 100.0)
            memory.add_metric([str(index)], float(used))
        yield utilization
        yield memory


_gpu_registered = False


def watch_gpus() -> None:
    """Add the GPU series to this process's metrics (workers call it once)."""
    global _gpu_registered
    if not _gpu_registered:
        REGISTRY.register(GpuCollector())
        _gpu_registered = True
