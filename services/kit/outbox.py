"""Transactional outbox: events are written in the same transaction as the change they announce,
then a relay publishes them to JetStream. A crash between the two loses nothing: the relay finds
the rows on restart, and the stream de-duplicates a republished event by its id.

Every service adds these tables to its own metadata (`add_kit_tables`); its migrations create them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from google.protobuf.message import Message
from sqlalchemy import Column, DateTime, Integer, LargeBinary, MetaData, String, Table, delete, insert, select
from sqlalchemy.orm import Session

from services.kit.bus import EventBus, make_event
from services.kit.db import Database
from tuneforge.events.v1 import event_pb2
from tuneforge.telemetry import inject

log = logging.getLogger(__name__)
T = TypeVar("T")


def _outbox_columns() -> list[Column]:
    return [
        Column("seq", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String(64), nullable=False),
        Column("subject", String(255), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("create_time", DateTime(timezone=True), nullable=False),
        # The trace context of the change that wrote the row (JSON `traceparent`/`tracestate`): the
        # relay publishes it in the message's headers, so the trace goes on in the consumer.
        Column("trace_context", String(512), nullable=True),
    ]


def _processed_columns() -> list[Column]:
    return [
        Column("consumer", String(128), primary_key=True),
        Column("event_id", String(64), primary_key=True),
        Column("processed_time", DateTime(timezone=True), nullable=False),
    ]


def add_kit_tables(metadata: MetaData) -> tuple[Table, Table]:
    """Define the outbox and processed-event tables on a service's metadata."""
    return Table("outbox", metadata, *_outbox_columns()), Table(
        "processed_events", metadata, *_processed_columns()
    )


def _trace_context() -> str | None:
    carrier = inject({})
    return json.dumps(carrier) if carrier else None


class Outbox:
    """Writes events into the outbox inside the caller's transaction."""

    def __init__(self, table: Table, service: str) -> None:
        self.table = table
        self.service = service
        self.wakeup = asyncio.Event()

    def emit(
        self, session: Session, resource: str, verb: str, subject: str, project: str, data: Message
    ) -> None:
        """Record `tuneforge.<service>.<resource>.<verb>` about `subject` in this transaction."""
        self.add(
            session,
            make_event(
                source=f"tuneforge/{self.service}",
                type=f"tuneforge.{self.service}.{resource}.{verb}",
                subject=subject,
                project=project,
                data=data,
            ),
        )

    async def write(self, db: Database, fn: Callable[[Session], T]) -> T:
        """Run a change in one transaction, then wake the relay for the events it recorded."""
        result = await db.run(fn)
        self.notify()
        return result

    def enqueue(self, session: Session, subject: str, payload: bytes, message_id: str) -> None:
        """A work-queue message sent with the same guarantee as events: only if this transaction commits."""
        session.execute(
            insert(self.table).values(
                event_id=message_id,
                subject=subject,
                payload=payload,
                create_time=datetime.now(UTC),
                trace_context=_trace_context(),
            )
        )

    def add(self, session: Session, event: event_pb2.Event) -> None:
        session.execute(
            insert(self.table).values(
                event_id=event.id,
                subject=event.type,
                payload=event.SerializeToString(),
                create_time=datetime.now(UTC),
                trace_context=_trace_context(),
            )
        )

    def notify(self) -> None:
        """Tell the relay that new rows are waiting (call after the transaction commits)."""
        self.wakeup.set()


class OutboxRelay:
    """Publishes outbox rows in order and deletes each once JetStream has acknowledged it."""

    def __init__(self, db: Database, outbox: Outbox, bus: EventBus, *, idle_seconds: float = 1.0) -> None:
        self.db = db
        self.outbox = outbox
        self.bus = bus
        self.idle_seconds = idle_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def flush(self) -> int:
        """Publish every waiting row; return how many were published."""
        table = self.outbox.table
        published = 0
        while True:
            rows = await self.db.run(
                lambda s: s.execute(
                    select(
                        table.c.seq, table.c.event_id, table.c.subject, table.c.payload, table.c.trace_context
                    )
                    .order_by(table.c.seq)
                    .limit(100)
                ).all()
            )
            if not rows:
                return published
            for row in rows:
                await self.bus.publish_raw(
                    row.subject,
                    row.payload,
                    row.event_id,
                    json.loads(row.trace_context) if row.trace_context else None,
                )
                seq = row.seq
                await self.db.run(lambda s, seq=seq: s.execute(delete(table).where(table.c.seq == seq)))
                published += 1

    async def _run(self) -> None:
        backoff = self.idle_seconds
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.outbox.wakeup.wait(), timeout=backoff)
            self.outbox.wakeup.clear()
            try:
                await self.flush()
                backoff = self.idle_seconds
            except Exception:
                log.warning("publishing events failed; retrying", exc_info=True)
                backoff = min(backoff * 2, 30.0)

    async def stop(self) -> None:
        """Stop after one last flush (best effort: rows left are published on the next start)."""
        if self._task is None:
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        try:
            await asyncio.wait_for(self.flush(), timeout=5)
        except Exception:
            log.warning("events left in the outbox will be published at the next start", exc_info=True)


class SqlProcessedEventLog:
    """A `ProcessedEventLog` in the consuming service's `processed_events` table."""

    def __init__(self, db: Database, table: Table) -> None:
        self.db = db
        self.table = table

    async def seen(self, consumer: str, event_id: str) -> bool:
        t = self.table
        return await self.db.run(
            lambda s: (
                s.execute(
                    select(t.c.event_id).where(t.c.consumer == consumer, t.c.event_id == event_id)
                ).first()
                is not None
            )
        )

    async def mark(self, consumer: str, event_id: str) -> None:
        t = self.table

        def _mark(s: Session) -> None:
            exists = s.execute(
                select(t.c.event_id).where(t.c.consumer == consumer, t.c.event_id == event_id)
            ).first()
            if not exists:
                s.execute(
                    insert(t).values(consumer=consumer, event_id=event_id, processed_time=datetime.now(UTC))
                )

        await self.db.run(_mark)
