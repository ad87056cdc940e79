"""The event bus on NATS JetStream.

`TUNEFORGE_EVENTS` keeps every event (`tuneforge.<service>.<resource>.<verb>`, limits retention);
the work queues `TUNEFORGE_TRAIN_QUEUE` (`tuneforge.train-queue.<priority>`), `TUNEFORGE_EVAL_QUEUE`
`TUNEFORGE_DATA_QUEUE` (`tuneforge.data-queue.<task>`) and `TUNEFORGE_REGISTRY_QUEUE`
(`tuneforge.registry-queue.derive`) hold work for the workers.
Events are `tuneforge.events.v1.Event` protobufs published with `Nats-Msg-Id` set to the event id,
so the stream drops a republished copy. Consumers are durable pull consumers; a handler's work is
made idempotent by a processed-event log keyed by event id (delivery is at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import nats
from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import Message
from nats.aio.client import Client as NatsClient
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StreamConfig
from nats.js.errors import NotFoundError

from services.kit.logs import request_id_var
from services.kit.telemetry import NATS_ERRORS
from tuneforge import telemetry as tracing
from tuneforge.events.v1 import event_pb2

log = logging.getLogger(__name__)

EVENTS_STREAM = "TUNEFORGE_EVENTS"
TRAIN_QUEUE_STREAM = "TUNEFORGE_TRAIN_QUEUE"
EVENT_SUBJECTS = "tuneforge.*.*.*"
TRAIN_QUEUE_SUBJECTS = "tuneforge.train-queue.*"
EVAL_QUEUE_STREAM = "TUNEFORGE_EVAL_QUEUE"
EVAL_QUEUE_SUBJECTS = "tuneforge.eval-queue.*"
DATA_QUEUE_STREAM = "TUNEFORGE_DATA_QUEUE"
DATA_QUEUE_SUBJECTS = "tuneforge.data-queue.*"
REGISTRY_QUEUE_STREAM = "TUNEFORGE_REGISTRY_QUEUE"
REGISTRY_QUEUE_SUBJECTS = "tuneforge.registry-queue.*"
EVENT_MAX_AGE_SECONDS = 30 * 24 * 3600

STREAMS = (
    StreamConfig(
        name=EVENTS_STREAM,
        subjects=[EVENT_SUBJECTS],
        retention=RetentionPolicy.LIMITS,
        max_age=EVENT_MAX_AGE_SECONDS,
        duplicate_window=120,
    ),
    StreamConfig(
        name=TRAIN_QUEUE_STREAM,
        subjects=[TRAIN_QUEUE_SUBJECTS],
        retention=RetentionPolicy.WORK_QUEUE,
        duplicate_window=120,
    ),
    StreamConfig(
        name=EVAL_QUEUE_STREAM,
        subjects=[EVAL_QUEUE_SUBJECTS],
        retention=RetentionPolicy.WORK_QUEUE,
        duplicate_window=120,
    ),
    StreamConfig(
        name=DATA_QUEUE_STREAM,
        subjects=[DATA_QUEUE_SUBJECTS],
        retention=RetentionPolicy.WORK_QUEUE,
        duplicate_window=120,
    ),
    StreamConfig(
        name=REGISTRY_QUEUE_STREAM,
        subjects=[REGISTRY_QUEUE_SUBJECTS],
        retention=RetentionPolicy.WORK_QUEUE,
        duplicate_window=120,
    ),
)


def make_event(*, source: str, type: str, subject: str, project: str, data: Message) -> event_pb2.Event:
    """Build an event envelope; `type` is also the NATS subject."""
    packed = any_pb2.Any()
    packed.Pack(data)
    time = timestamp_pb2.Timestamp()
    time.FromDatetime(datetime.now(UTC))
    return event_pb2.Event(
        id=str(uuid.uuid4()),
        source=source,
        type=type,
        subject=subject,
        time=time,
        project=project,
        request_id=request_id_var.get(),
        data=packed,
    )


class ProcessedEventLog(Protocol):
    """Remembers which events a consumer has handled, so a redelivered one is skipped."""

    async def seen(self, consumer: str, event_id: str) -> bool: ...

    async def mark(self, consumer: str, event_id: str) -> None: ...


EventHandler = Callable[[event_pb2.Event], Awaitable[None]]


class EventBus:
    """A NATS connection with JetStream, the TuneForge streams, and publish/consume helpers."""

    def __init__(self, nc: NatsClient, js: JetStreamContext) -> None:
        self.nc = nc
        self.js = js
        self._consumers: list[asyncio.Task[None]] = []
        self.stream_replicas = 1

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        name: str,
        ensure_streams: bool = True,
        user: str = "",
        password: str = "",
        stream_replicas: int = 1,
    ) -> EventBus:
        """Connect as `user` (the server refuses anonymous connections in every deployment TuneForge
        makes; credentials may also be in the URL, nats://user:password@host:port). `url` may list
        the nodes of a cluster, comma-separated; the client moves to another when one goes.
        `stream_replicas`: copies of each stream the cluster keeps (3 on a 3-node cluster)."""
        credentials = {"user": user, "password": password} if user else {}

        async def on_error(error: Exception) -> None:
            NATS_ERRORS.labels("error").inc()
            log.warning("NATS connection error", extra={"error": str(error)})

        async def on_disconnect() -> None:
            NATS_ERRORS.labels("disconnected").inc()

        nc = await nats.connect(
            servers=[part.strip() for part in url.split(",") if part.strip()],
            name=name,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            error_cb=on_error,
            disconnected_cb=on_disconnect,
            **credentials,
        )
        bus = cls(nc, nc.jetstream())
        bus.stream_replicas = stream_replicas
        if ensure_streams:
            await bus.ensure_streams()
        return bus

    async def ensure_streams(self) -> None:
        """Create the streams, or bring an existing one's configuration up to date."""
        for config in STREAMS:
            config = dataclasses.replace(config, num_replicas=self.stream_replicas)
            try:
                info = await self.js.stream_info(config.name)
            except NotFoundError:
                try:
                    await self.js.add_stream(config)
                except Exception:
                    await self.js.stream_info(config.name)  # another process created it meanwhile
                continue
            current = info.config
            if (
                current.subjects,
                current.retention,
                current.max_age,
                current.duplicate_window,
                current.num_replicas or 1,
            ) != (
                config.subjects,
                config.retention,
                config.max_age,
                config.duplicate_window,
                config.num_replicas,
            ):
                # Only when the definition changed: updating a stream while others subscribe races.
                await self.js.update_stream(config)

    async def pull_subscribe(self, subject: str, *, durable: str, stream: str, config: ConsumerConfig) -> Any:
        """A durable pull subscription, retried until the server accepts it (a stream being created or
        updated by another process refuses subscriptions for a moment)."""
        while True:
            try:
                return await self.js.pull_subscribe(subject, durable=durable, stream=stream, config=config)
            except Exception:
                log.warning("cannot subscribe yet; retrying", extra={"consumer": durable}, exc_info=True)
                await asyncio.sleep(1)

    async def publish(self, event: event_pb2.Event) -> None:
        await self.publish_raw(event.type, event.SerializeToString(), event.id)

    async def publish_raw(
        self, subject: str, payload: bytes, msg_id: str, trace_context: dict[str, str] | None = None
    ) -> None:
        """Publish once (JetStream drops a copy with the same `msg_id`); `trace_context`: the
        `traceparent` of the work that made the message, continued by whoever handles it."""
        parent = tracing.extract(trace_context)
        with contextlib.ExitStack() as stack:
            if parent is not None or tracing.current_trace_id():  # untraced work makes no span
                stack.enter_context(
                    tracing.span(
                        f"publish {subject.rsplit('.', 1)[0]}",
                        kind="PRODUCER",
                        parent=parent,
                        **{"messaging.system": "nats", "messaging.destination.name": subject},
                    )
                )
            headers = tracing.inject({"Nats-Msg-Id": msg_id})
            try:
                await self.js.publish(subject, payload, headers=dict(headers))
            except Exception:
                NATS_ERRORS.labels("publish").inc()
                raise

    def consume(
        self,
        durable: str,
        subject: str,
        handler: EventHandler,
        *,
        processed: ProcessedEventLog | None = None,
        retry_delay_seconds: float = 2.0,
    ) -> asyncio.Task[None]:
        """Run `handler` for every event on `subject` through the durable consumer `durable`.

        An event is acked after the handler returns; a failing handler's event is redelivered
        after `retry_delay_seconds`. With `processed`, an event already handled is acked unseen.
        """
        task = asyncio.create_task(self._consume(durable, subject, handler, processed, retry_delay_seconds))
        self._consumers.append(task)
        return task

    async def _consume(
        self,
        durable: str,
        subject: str,
        handler: EventHandler,
        processed: ProcessedEventLog | None,
        retry_delay: float,
    ) -> None:
        sub = await self.pull_subscribe(
            subject,
            durable=durable,
            stream=EVENTS_STREAM,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=60, max_ack_pending=256),
        )
        log.info("consuming", extra={"consumer": durable, "subject": subject})
        while True:
            try:
                messages = await sub.fetch(32, timeout=1.0)
            except NatsTimeout:
                continue
            except Exception:
                log.warning("fetching events failed; retrying", extra={"consumer": durable}, exc_info=True)
                await asyncio.sleep(1)
                continue
            for msg in messages:
                event = event_pb2.Event()
                try:
                    event.ParseFromString(msg.data)
                except Exception:
                    log.error(
                        "dropping an undecodable message", extra={"subject": msg.subject, "consumer": durable}
                    )
                    await msg.term()
                    continue
                try:
                    with tracing.span(
                        f"handle {event.type}",
                        kind="CONSUMER",
                        parent=tracing.extract(msg.headers),
                        **{"messaging.system": "nats", "messaging.consumer.group.name": durable},
                    ):
                        if processed is None or not await processed.seen(durable, event.id):
                            await handler(event)
                            if processed is not None:
                                await processed.mark(durable, event.id)
                except Exception:
                    log.exception(
                        "event handler failed; will retry", extra={"event_id": event.id, "consumer": durable}
                    )
                    await msg.nak(delay=retry_delay)
                else:
                    await msg.ack()

    async def close(self) -> None:
        for task in self._consumers:
            task.cancel()
        await asyncio.gather(*self._consumers, return_exceptions=True)
        if self.nc.is_connected:
            # JetStream publishes are acknowledged before `publish` returns, so nothing is in
            # flight; `drain` would wait on pull subscriptions with a fetch outstanding.
            with contextlib.suppress(Exception):
                await self.nc.flush(timeout=2)
            await self.nc.close()
