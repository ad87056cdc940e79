"""Pulling jobs from a JetStream work-queue stream, the way every worker does it.

A durable pull consumer shared by all workers of a kind, one message at a time; the handler acks
only after the outcome is stored, and sends in-progress acks while it works (`heartbeat`).
Children that do the heavy work die with their worker (`services.kit.children`), so a killed
worker leaves no orphan; its message is redelivered to another worker after `ack_wait`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig

from services.kit.bus import EventBus
from services.kit.telemetry import WORKER_BUSY, WORKER_TASKS
from tuneforge import telemetry as tracing

log = logging.getLogger(__name__)


async def heartbeat(message: Any, interval: float) -> None:
    """In-progress acks every `interval` seconds until cancelled."""
    while True:
        await asyncio.sleep(interval)
        with contextlib.suppress(Exception):
            await message.in_progress()


async def pull_forever(
    bus: EventBus,
    *,
    stream: str,
    subjects: str,
    durable: str,
    ack_wait: float,
    handle: Callable[[Any], Awaitable[None]],
    stopping: asyncio.Event,
) -> None:
    await pull_by_priority(
        bus, stream=stream, queues=[(subjects, durable)], ack_wait=ack_wait, handle=handle, stopping=stopping
    )


async def pull_by_priority(
    bus: EventBus,
    *,
    stream: str,
    queues: list[tuple[str, str]],
    ack_wait: float,
    handle: Callable[[Any], Awaitable[None]],
    stopping: asyncio.Event,
) -> None:
    """Pull one message at a time from `queues` ((subject filter, durable) pairs, highest priority
    first): a queue is read only when every queue before it is empty."""
    subscriptions = [
        await bus.pull_subscribe(
            subject,
            durable=durable,
            stream=stream,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=ack_wait, max_ack_pending=1000),
        )
        for subject, durable in queues
    ]
    timeout = 1.0 / len(subscriptions)
    while not stopping.is_set():
        for subscription, (_, durable) in zip(subscriptions, queues, strict=True):
            try:
                messages = await subscription.fetch(1, timeout=timeout)
            except NatsTimeout:
                continue
            except Exception:
                log.warning(
                    "fetching from the work queue failed; retrying",
                    extra={"consumer": durable},
                    exc_info=True,
                )
                await asyncio.sleep(1)
                break
            for message in messages:
                WORKER_BUSY.labels(stream).set(1)
                outcome = "handled"
                try:
                    # The trace of the request that queued the work goes on here.
                    with tracing.span(
                        f"process {message.subject}",
                        kind="CONSUMER",
                        parent=tracing.extract(message.headers),
                        **{"messaging.system": "nats", "messaging.consumer.group.name": durable},
                    ):
                        await handle(message)
                except Exception:
                    # A handler that failed where it should not have (its bookkeeping, an ack the
                    # server had already dropped) must not end the worker: the message is
                    # redelivered after its ack wait.
                    outcome = "failed"
                    log.exception("handling a work-queue message failed", extra={"consumer": durable})
                finally:
                    WORKER_BUSY.labels(stream).set(0)
                    WORKER_TASKS.labels(stream, outcome).inc()
            break  # after any message, start again from the highest priority


async def waiting(bus: EventBus, stream: str, durable: str) -> int:
    """How many messages wait, undelivered, for the durable consumer (0 when it cannot tell)."""
    try:
        return int((await bus.js.consumer_info(stream, durable)).num_pending or 0)
    except Exception:
        return 0


# A backend outage (the object store or the database gone for a while) hands the work back to the
# queue rather than failing it: redelivered after OUTAGE_RETRY_SECONDS, up to OUTAGE_DELIVERIES
# times (about two and a half minutes), resumed from whatever it stored before.
OUTAGE_RETRY_SECONDS = 5.0
OUTAGE_DELIVERIES = 30


async def hand_back_on_outage(message: Any, error: BaseException, what: str) -> bool:
    """Nak `message` for a later delivery when `error` is a backend outage (and it has not come
    back too often); True when it was handed back, so the caller must not fail the work."""
    from services.kit.errors import unreachable_backend

    deliveries = getattr(getattr(message, "metadata", None), "num_delivered", 1) or 1
    if unreachable_backend(error) is None or deliveries >= OUTAGE_DELIVERIES:
        return False
    log.warning(
        "a backend is unreachable; the work goes back to the queue",
        extra={"work": what, "deliveries": deliveries},
        exc_info=True,
    )
    with contextlib.suppress(Exception):
        await message.nak(delay=OUTAGE_RETRY_SECONDS)
    return True
