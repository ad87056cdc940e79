"""Service bootstrap: the runtime every service opens (database, keys, store, bus, outbox) and a
`grpc.aio` server with health checks, reflection, the standard interceptors and graceful shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sqlalchemy import Table

from services.kit import telemetry, tls
from services.kit.access import Access
from services.kit.auth import ApiKeyStore
from services.kit.bus import EventBus
from services.kit.db import Database
from services.kit.interceptors import standard_interceptors
from services.kit.logs import configure_logging
from services.kit.names import PageTokens
from services.kit.outbox import Outbox, OutboxRelay
from services.kit.settings import KitSettings
from services.kit.store import ObjectStore
from tuneforge.telemetry import configure_tracing, shutdown_tracing

log = logging.getLogger(__name__)

#: After a stop signal, how long closing may take past the drain (the grace seconds) before the
#: process ends anyway: a peer that went away at the same moment (NATS or S3 killed with the local
#: suite, say) must not keep it alive. What it had not finished is redone, as after a crash.
CLOSE_SECONDS = 15.0


def create_server(
    address: str,
    *,
    interceptors: Iterable[grpc.aio.ServerInterceptor] = (),
    max_message_bytes: int = 16 * 1024 * 1024,
) -> tuple[grpc.aio.Server, int]:
    """A grpc.aio server bound to `address` ("127.0.0.1:0" picks a free port); returns it and the port."""
    server = grpc.aio.server(
        interceptors=list(interceptors),
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ],
    )
    credentials = tls.current().server_credentials()
    port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return server, port


@dataclass
class Runtime:
    """What a service process holds: settings, its database, API keys, the store and the bus."""

    name: str
    settings: KitSettings
    db: Database
    keys: ApiKeyStore | None
    store: ObjectStore
    bus: EventBus
    outbox: Outbox
    relay: OutboxRelay
    page_tokens: PageTokens
    access: Access | None = None
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def run_periodically(self, name: str, interval: float, job: Callable[[], Awaitable[int]]) -> None:
        """Run `job` every `interval` seconds until shutdown; it returns how many things it did."""

        async def loop() -> None:
            while True:
                try:
                    done = await job()
                    if done:
                        log.info(name, extra={"service": self.name, "count": done})
                except Exception:
                    log.warning(f"{name} failed", exc_info=True)
                await asyncio.sleep(interval)

        task = asyncio.create_task(loop())

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        self.closers.append(stop)

    def observe_queue(self, stream: str) -> None:
        """Keep the queue gauges of `stream` (one this service fills) fresh on /metrics."""
        if self.settings.metrics_listen:
            self.run_periodically(
                f"observing {stream}",
                self.settings.metrics_refresh_seconds,
                lambda: telemetry.observe_queue(self.bus, stream),
            )

    async def close(self) -> None:
        await self.relay.stop()
        for closer in reversed(self.closers):
            await closer()
        await self.bus.close()
        self.db.dispose()
        if self.keys is not None:
            self.keys.db.dispose()
        shutdown_tracing()


async def open_runtime(
    name: str,
    settings: KitSettings,
    *,
    migrations: Path,
    outbox_table: Table,
    serves_api: bool = True,
    bus_name: str = "",
) -> Runtime:
    """Connect everything a service (or, with `serves_api=False`, a worker of it) needs, migrate
    its schema and start its outbox relay. Workers share their service's database and outbox."""
    configure_logging(settings.log_level, settings.log_format)
    tls.configure(
        tls.TlsConfig.from_files(
            settings.tls_cert_file, settings.tls_key_file, settings.tls_ca_file, settings.tls_client_ca_file
        )
    )
    if settings.metrics_listen:
        telemetry.start_metrics_server(settings.metrics_listen, settings.metrics_port_file)
        if not serves_api:
            telemetry.watch_gpus()
    configure_tracing(
        f"tuneforge-{name}" if serves_api else f"tuneforge-{name}-worker",
        otlp_endpoint=settings.otlp_endpoint,
        trace_file=settings.trace_file,
    )
    db = Database(settings.database_url, schema=name)
    await asyncio.to_thread(db.migrate, migrations)
    keys = None
    if serves_api:
        keys = ApiKeyStore(Database(settings.auth_database_url, schema="auth"))
        await asyncio.to_thread(keys.migrate)
    store = ObjectStore(
        settings.s3_endpoint,
        settings.s3_access_key.get_secret_value(),
        settings.s3_secret_key.get_secret_value(),
        settings.s3_bucket,
        secure=settings.s3_secure,
        region=settings.s3_region,
        public_endpoint=settings.s3_public_endpoint,
    )
    await store.ensure_bucket()
    bus = await EventBus.connect(
        settings.nats_url,
        name=bus_name or f"tuneforge-{name}",
        user=settings.nats_user,
        password=settings.nats_password.get_secret_value(),
        stream_replicas=settings.nats_stream_replicas,
    )
    outbox = Outbox(outbox_table, name)
    relay = OutboxRelay(db, outbox, bus)
    relay.start()
    runtime = Runtime(
        name=name,
        settings=settings,
        db=db,
        keys=keys,
        store=store,
        bus=bus,
        outbox=outbox,
        relay=relay,
        page_tokens=PageTokens(settings.secret_key.get_secret_value().encode()),
        access=Access(keys.db, default_rate=settings.rate_limit_per_key) if keys is not None else None,
    )
    if keys is not None:  # revoked keys leave the verification cache within a second
        watcher = asyncio.create_task(keys.watch_revocations())

        async def stop_watcher() -> None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

        runtime.closers.append(stop_watcher)
    return runtime


def stop_on_signals(stopping: asyncio.Event, grace_seconds: float) -> None:
    """SIGTERM and SIGINT set `stopping`; the first one also arms a timer thread that ends the
    process `grace_seconds + CLOSE_SECONDS` later if the orderly stop has not finished by then."""
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if not stopping.is_set():
            timer = threading.Timer(grace_seconds + CLOSE_SECONDS, _overdue, (grace_seconds + CLOSE_SECONDS,))
            timer.daemon = True
            timer.start()
        stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)


def _overdue(seconds: float) -> None:
    log.error("still stopping after %.0f s; exiting now", seconds)
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    os._exit(1)


async def run_until_signalled(
    stopping: asyncio.Event, work: Callable[[], Awaitable[None]], *, grace_seconds: float
) -> None:
    """Run `work` (a worker's loop, which returns once `stopping` is set) with SIGTERM and SIGINT
    setting `stopping` (see `stop_on_signals`)."""
    stop_on_signals(stopping, grace_seconds)
    await work()


async def serve(runtime: Runtime, register: Callable[[grpc.aio.Server], Iterable[str]]) -> None:
    """Serve until SIGTERM or SIGINT, then drain: health turns NOT_SERVING, calls get `grace` seconds.

    `register` adds the service's servicers to the server and returns their full service names.
    """
    settings = runtime.settings
    assert runtime.keys is not None, "a runtime that serves the API checks keys"
    server, port = create_server(
        settings.listen,
        interceptors=standard_interceptors(runtime.keys, runtime.access),
        max_message_bytes=settings.max_message_bytes,
    )
    names = list(register(server))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME], server
    )
    await server.start()
    for service_name in ["", *names]:
        await health_servicer.set(service_name, health_pb2.HealthCheckResponse.SERVING)
    if settings.port_file:
        tmp = settings.port_file.with_suffix(".tmp")
        tmp.write_text(str(port))
        tmp.replace(settings.port_file)
    log.info("serving", extra={"service": runtime.name, "port": port})

    stopping = asyncio.Event()
    stop_on_signals(stopping, settings.shutdown_grace_seconds)
    await stopping.wait()
    log.info(
        "shutting down", extra={"service": runtime.name, "grace_seconds": settings.shutdown_grace_seconds}
    )
    await health_servicer.enter_graceful_shutdown()
    await server.stop(settings.shutdown_grace_seconds)
    await runtime.close()
