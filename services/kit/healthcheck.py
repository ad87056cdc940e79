"""A container's health check: `python -m services.kit.healthcheck` exits 0 when this process is well.

A service is well when its gRPC server answers `grpc.health.v1` SERVING on `TUNEFORGE_LISTEN` (the
same check Kubernetes' gRPC probes make); a worker, which serves no gRPC, when its /metrics page
answers on `TUNEFORGE_METRICS_LISTEN` (`--metrics`); the console when its /healthz answers on
`TUNEFORGE_CONSOLE_LISTEN` (`--console`). Images use it as their HEALTHCHECK.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.kit import tls


def _local(address: str) -> str:
    """A listen address as the process itself reaches it (0.0.0.0 and [::] mean this host)."""
    host, _, port = address.rpartition(":")
    return f"{'127.0.0.1' if host in ('0.0.0.0', '[::]', '') else host}:{port}"


def grpc_serving(address: str, timeout: float) -> bool:
    # The process's own TLS settings (kit.tls), as its peers use them: TLS when it trusts a CA.
    path = lambda name: Path(os.environ[name]) if os.environ.get(name) else None  # noqa: E731
    credentials = tls.TlsConfig.from_files(
        path("TUNEFORGE_TLS_CERT_FILE"), path("TUNEFORGE_TLS_KEY_FILE"), path("TUNEFORGE_TLS_CA_FILE"), None
    ).channel_credentials()
    channel = grpc.secure_channel(address, credentials) if credentials else grpc.insecure_channel(address)
    with channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout
            )
        except grpc.RpcError as error:
            print(f"unhealthy: {error.code().name} from {address}", file=sys.stderr)
            return False
    return answer.status == health_pb2.HealthCheckResponse.SERVING


def http_answer(url: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except OSError as error:
        print(f"unhealthy: {error} from {url}", file=sys.stderr)
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", action="store_true", help="check /metrics (workers) instead of gRPC")
    parser.add_argument("--console", action="store_true", help="check the console's /healthz")
    parser.add_argument("--timeout", type=float, default=4.0)
    args = parser.parse_args(argv)
    if args.console:
        listen = os.environ.get("TUNEFORGE_CONSOLE_LISTEN", "127.0.0.1:8080")
        return 0 if http_answer(f"http://{_local(listen)}/healthz", args.timeout) else 1
    if args.metrics:
        listen = os.environ.get("TUNEFORGE_METRICS_LISTEN", "")
        if not listen:
            print("unhealthy: TUNEFORGE_METRICS_LISTEN is not set", file=sys.stderr)
            return 1
        return 0 if http_answer(f"http://{_local(listen)}/metrics", args.timeout) else 1
    listen = os.environ.get("TUNEFORGE_LISTEN", "127.0.0.1:50051")
    return 0 if grpc_serving(_local(listen), args.timeout) else 1


if __name__ == "__main__":
    sys.exit(main())
