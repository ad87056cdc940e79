"""The event bus on a real NATS server, the outbox relay, and the object store on a real S3 server."""

from __future__ import annotations

import asyncio
import hashlib
import os
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import MetaData, func, select

from services.kit.bus import EventBus, make_event
from services.kit.db import Database
from services.kit.errors import DataLoss, ResourceExhausted
from services.kit.outbox import Outbox, OutboxRelay, SqlProcessedEventLog, add_kit_tables
from services.kit.store import ObjectStore
from services.suite.suite import LocalSuite
from tuneforge.events.v1 import event_pb2, registry_events_pb2
from tuneforge.registry.v1 import model_pb2

MiB = 1024 * 1024


def _store(suite: LocalSuite) -> ObjectStore:
    env = suite.service_env("registry")
    return ObjectStore(
        env["TUNEFORGE_S3_ENDPOINT"],
        env["TUNEFORGE_S3_ACCESS_KEY"],
        env["TUNEFORGE_S3_SECRET_KEY"],
        "tuneforge",
    )


def _event(subject: str) -> event_pb2.Event:
    return make_event(
        source="tests",
        type="tuneforge.tests.thing.happened",
        subject=subject,
        project="p",
        data=registry_events_pb2.ModelEvent(model=model_pb2.Model(name=subject)),
    )


async def _wait_for(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not predicate():
            await asyncio.sleep(0.05)


def _processed_log(tmp_path: Path) -> tuple[Database, SqlProcessedEventLog, Outbox]:
    db = Database(f"sqlite:///{tmp_path / 'service.db'}", schema="consumer")
    metadata = MetaData()
    outbox_table, processed_table = add_kit_tables(metadata)
    metadata.create_all(db.engine)
    return db, SqlProcessedEventLog(db, processed_table), Outbox(outbox_table, "tests")


async def test_duplicates_are_dropped_and_failed_handlers_retry(suite: LocalSuite) -> None:
    bus = await EventBus.connect(suite.bus_url, name="test-bus")
    tag = uuid.uuid4().hex[:8]
    seen: list[str] = []
    failures = {"left": 1}

    async def handler(event: event_pb2.Event) -> None:
        if not event.subject.endswith(tag):
            return
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("a passing failure")
        seen.append(event.subject)

    bus.consume(f"dedupe-{tag}", "tuneforge.tests.>", handler, retry_delay_seconds=0.2)
    first, second = _event(f"first-{tag}"), _event(f"second-{tag}")
    await bus.publish(first)
    await bus.publish(first)  # the same Nats-Msg-Id: the stream keeps one copy
    await bus.publish(second)
    await _wait_for(lambda: len(seen) >= 2)
    await asyncio.sleep(0.5)
    await bus.close()
    assert sorted(seen) == [f"first-{tag}", f"second-{tag}"], (
        "each event handled once, the failed one after a retry"
    )


async def test_processed_log_makes_redelivery_harmless(suite: LocalSuite, tmp_path: Path) -> None:
    bus = await EventBus.connect(suite.bus_url, name="test-bus")
    db, processed, _ = _processed_log(tmp_path)
    tag = uuid.uuid4().hex[:8]
    durable = f"idem-{tag}"
    handled: list[str] = []

    async def handler(event: event_pb2.Event) -> None:
        if event.subject.endswith(tag):
            handled.append(event.subject)

    done_before = _event(f"redelivered-{tag}")
    await processed.mark(durable, done_before.id)  # as if handled just before a crash, un-acked
    fresh = _event(f"fresh-{tag}")
    bus.consume(durable, "tuneforge.tests.>", handler, processed=processed)
    await bus.publish(done_before)
    await bus.publish(fresh)
    await _wait_for(lambda: bool(handled))
    await asyncio.sleep(0.3)
    await bus.close()
    assert handled == [f"fresh-{tag}"]
    assert await processed.seen(durable, fresh.id)
    db.dispose()


async def test_outbox_relay_publishes_in_order_then_forgets(suite: LocalSuite, tmp_path: Path) -> None:
    bus = await EventBus.connect(suite.bus_url, name="test-bus")
    db, _, outbox = _processed_log(tmp_path)
    tag = uuid.uuid4().hex[:8]
    events = [_event(f"{i}-{tag}") for i in range(5)]

    def write(session) -> None:  # type: ignore[no-untyped-def]
        for event in events:
            outbox.add(session, event)

    await db.run(write)
    received: list[str] = []

    async def handler(event: event_pb2.Event) -> None:
        if event.subject.endswith(tag):
            received.append(event.subject)

    bus.consume(f"relay-{tag}", "tuneforge.tests.>", handler)
    relay = OutboxRelay(db, outbox, bus)
    assert await relay.flush() == 5
    assert await relay.flush() == 0
    assert await db.run(lambda s: s.scalar(select(func.count()).select_from(outbox.table))) == 0
    await _wait_for(lambda: len(received) == 5)
    await bus.close()
    assert received == [e.subject for e in events]
    db.dispose()


async def _chunks(total: int, chunk: int = MiB, fail_after: int | None = None) -> AsyncIterator[bytes]:
    sent = 0
    block = os.urandom(chunk)
    while sent < total:
        if fail_after is not None and sent >= fail_after:
            raise ConnectionResetError("client went away")
        piece = block[: min(chunk, total - sent)]
        sent += len(piece)
        yield piece


async def test_streamed_multipart_upload_and_verified_read(suite: LocalSuite) -> None:
    store = _store(suite)
    key = f"tests/{uuid.uuid4().hex}/big.bin"
    digest = hashlib.sha256()
    size = 0

    async def tracked() -> AsyncIterator[bytes]:
        nonlocal size
        async for piece in _chunks(20 * MiB + 3):
            digest.update(piece)
            size += len(piece)
            yield piece

    stored = await store.put_stream(key, tracked())
    assert (stored.size_bytes, stored.sha256) == (size, digest.hexdigest())
    read = hashlib.sha256()
    async for piece in store.iter_verified(key, sha256=stored.sha256, size_bytes=size, label="big.bin"):
        read.update(piece)
    assert read.hexdigest() == stored.sha256

    received = 0
    with pytest.raises(DataLoss, match=r"big\.bin is corrupted"):
        async for piece in store.iter_verified(key, sha256="0" * 64, size_bytes=size, label="big.bin"):
            received += len(piece)
    assert received < size, "the last chunk is held back until the check passes"
    await store.delete_prefix(key.rsplit("/", 1)[0] + "/")
    assert not await store.exists(key)


async def test_aborted_and_oversized_uploads_store_nothing(suite: LocalSuite) -> None:
    store = _store(suite)
    key = f"tests/{uuid.uuid4().hex}/aborted.bin"
    with pytest.raises(ConnectionResetError):
        await store.put_stream(key, _chunks(40 * MiB, fail_after=20 * MiB))
    assert not await store.exists(key)
    with pytest.raises(ResourceExhausted, match="larger than the limit"):
        await store.put_stream(key, _chunks(3 * MiB), max_bytes=2 * MiB)
    assert not await store.exists(key)


async def test_presigned_urls(suite: LocalSuite) -> None:
    store = _store(suite)
    key = f"tests/{uuid.uuid4().hex}/presigned.txt"
    url = store.presigned_put(key, timedelta(minutes=5))
    await asyncio.to_thread(
        lambda: urllib.request.urlopen(urllib.request.Request(url, data=b"hi there", method="PUT")).read()
    )
    stored = await store.hash_object(key, head_bytes=2)
    assert stored.size_bytes == 8 and stored.head == b"hi"
    body = await asyncio.to_thread(
        lambda: urllib.request.urlopen(store.presigned_get(key, timedelta(minutes=5))).read()
    )
    assert body == b"hi there"


async def test_work_queue_serves_higher_priorities_first(suite: LocalSuite) -> None:
    from nats.js.api import RetentionPolicy, StreamConfig

    from services.kit.workqueue import pull_by_priority, waiting

    bus = await EventBus.connect(suite.bus_url, name="test-queue")
    tag = uuid.uuid4().hex[:8]
    stream = f"TEST_QUEUE_{tag}"
    await bus.js.add_stream(
        StreamConfig(name=stream, subjects=[f"tests.queue-{tag}.*"], retention=RetentionPolicy.WORK_QUEUE)
    )
    for i, priority in enumerate(["idle", "idle", "normal", "idle", "normal"]):
        await bus.publish_raw(f"tests.queue-{tag}.{priority}", f"{priority}-{i}".encode(), f"{tag}-{i}")
    stopping = asyncio.Event()
    order: list[str] = []

    async def handle(message: object) -> None:
        order.append(message.data.decode())  # type: ignore[attr-defined]
        if len(order) == 1:  # the other normal job still waits, undelivered
            assert await waiting(bus, stream, f"normal-{tag}") == 1
        await message.ack()  # type: ignore[attr-defined]
        if len(order) == 5:
            stopping.set()

    await asyncio.wait_for(
        pull_by_priority(
            bus,
            stream=stream,
            queues=[
                (f"tests.queue-{tag}.normal", f"normal-{tag}"),
                (f"tests.queue-{tag}.idle", f"idle-{tag}"),
            ],
            ack_wait=10,
            handle=handle,
            stopping=stopping,
        ),
        timeout=30,
    )
    await bus.js.delete_stream(stream)
    await bus.close()
    assert order == ["normal-2", "normal-4", "idle-0", "idle-1", "idle-3"]


async def test_a_change_feed_wakes_the_watchers_of_a_resource_and_its_children(suite: LocalSuite) -> None:
    from services.kit.watch import ChangeFeed

    bus = await EventBus.connect(suite.bus_url, name="tests-feed")
    feed = ChangeFeed(bus, "tuneforge.tests.>", fallback_seconds=30)
    await feed.start()
    reads = 0

    async def read() -> int:
        nonlocal reads
        reads += 1
        return reads

    async def follow() -> list[int]:
        return [value async for value in feed.follow("projects/p/things/a", read, lambda n: n >= 3)]

    try:
        task = asyncio.create_task(follow())
        await _wait_for(lambda: reads == 1)
        await bus.publish(_event("projects/p/things/b"))  # another resource: no wake
        await bus.publish(_event("projects/p/things/another"))  # a name that only starts the same
        await asyncio.sleep(0.5)
        assert reads == 1
        await bus.publish(_event("projects/p/things/a/parts/1"))  # a child: wakes
        await _wait_for(lambda: reads == 2)
        await bus.publish(_event("projects/p/things/a"))
        async with asyncio.timeout(5):
            assert await task == [1, 2, 3], "read once, then at each change, until done"
    finally:
        await feed.stop()
        await bus.close()
