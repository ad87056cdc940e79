"""Following a resource as it changes: `Watch…` methods wake on the bus events about it.

Every change a service stores is announced on the bus (the outbox), by whichever replica or worker
made it. A `ChangeFeed` holds one plain NATS subscription to a service's event subjects per process
and wakes the watchers of the resource an event names (its `subject`, or a child of it such as a
job's checkpoint). A watcher re-reads what it follows when woken, and at least every
`fallback_seconds` in case an event was missed (a reconnect, a relay that is behind).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from services.kit.bus import EventBus
from tuneforge.events.v1 import event_pb2

log = logging.getLogger(__name__)
T = TypeVar("T")
FALLBACK_SECONDS = 5.0


class ChangeFeed:
    """Wakes watchers of a resource name when an event about it (or a child of it) arrives."""

    def __init__(self, bus: EventBus, subjects: str, *, fallback_seconds: float = FALLBACK_SECONDS) -> None:
        self.bus = bus
        self.subjects = subjects
        self.fallback_seconds = fallback_seconds
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._subscription: Any = None

    async def start(self) -> None:
        self._subscription = await self.bus.nc.subscribe(self.subjects, cb=self._on_message)

    async def stop(self) -> None:
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
            self._subscription = None

    async def _on_message(self, msg: Any) -> None:
        event = event_pb2.Event()
        try:
            event.ParseFromString(msg.data)
        except Exception:
            return
        name = event.subject
        while name:
            for waiter in self._waiters.get(name, ()):
                waiter.set()
            name = name.rpartition("/")[0]

    async def follow(
        self, name: str, read: Callable[[], Awaitable[T]], done: Callable[[T], bool]
    ) -> AsyncIterator[T]:
        """Yield `read()` now and after every change of `name`, until `done(value)` is true."""
        woken = asyncio.Event()
        self._waiters[name].add(woken)
        try:
            while True:
                woken.clear()
                value = await read()
                yield value
                if done(value):
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), timeout=self.fallback_seconds)
        finally:
            self._waiters[name].discard(woken)
            if not self._waiters[name]:
                del self._waiters[name]


async def changes(
    feed: ChangeFeed, name: str, read: Callable[[], Awaitable[T]], done: Callable[[T], bool]
) -> AsyncIterator[T]:
    """`feed.follow` that yields only values that differ from the one before."""
    last: Any = object()
    async for value in feed.follow(name, read, done):
        if value != last:
            last = value
            yield value
