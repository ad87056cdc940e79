"""Insight requests (数据洞察): one insight per version, tokenizer and length, computed once by a data
worker (`tasks.py`) and stored as `insight.json` with PNG charts under the version."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.data.catalog import INSIGHT, DataCatalog
from services.data.convert import insight_to_proto
from services.data.repo import DatasetInsightRow, DatasetVersionRow
from services.kit.auth import parse_in_project
from services.kit.errors import InvalidArgument, NotFound
from services.kit.peers import Peers
from services.kit.times import utcnow
from services.kit.watch import changes
from tuneforge.common.v1 import common_pb2
from tuneforge.data.v1 import dataset_pb2
from tuneforge.events.v1 import data_events_pb2

DEFAULT_MAX_SEQUENCE_LENGTH = 2048
FINAL = (dataset_pb2.COMPUTATION_STATE_READY, dataset_pb2.COMPUTATION_STATE_FAILED)


def insight_prefix(version: DatasetVersionRow, key: str) -> str:
    return f"{version.storage_prefix}insight/{key}/"


def emit_insight(catalog: DataCatalog, session: Session, row: DatasetInsightRow, verb: str) -> None:
    catalog.outbox.emit(
        session,
        "dataset_insight",
        verb,
        insight_to_proto(row).name,
        row.version.dataset.project,
        data_events_pb2.DatasetInsightEvent(dataset_insight=insight_to_proto(row)),
    )


class Insights:
    def __init__(self, catalog: DataCatalog, peers: Peers) -> None:
        self.catalog = catalog
        self.peers = peers

    async def _tokenizer(self, reference: str) -> str:
        """The model version whose `tokenizer.json` counts tokens (an alias resolves now)."""
        if not reference.startswith("projects/"):
            raise InvalidArgument.field(
                "tokenizer", "give a model version name: projects/{project}/models/{model}/versions/{version}"
            )
        version = await self.peers.model_version(reference, field="tokenizer")
        if "tokenizer.json" not in {f.path for f in version.files}:
            raise InvalidArgument.field("tokenizer", f"{version.name} has no tokenizer.json")
        return version.name

    async def compute(
        self, name: str, tokenizer: str, max_sequence_length: int
    ) -> dataset_pb2.DatasetInsight:
        """The insight READY if it was computed before; else PENDING, queued for a data worker."""
        if max_sequence_length < 0:
            raise InvalidArgument.field("max_sequence_length", "must not be negative")
        length = max_sequence_length or DEFAULT_MAX_SEQUENCE_LENGTH
        catalog = self.catalog
        version = await catalog.db.run(lambda s: catalog.version_row(s, name, "name", ready=True))
        if tokenizer:
            tokenizer = await self._tokenizer(tokenizer)
        key = hashlib.sha256(f"{tokenizer}|{length}".encode()).hexdigest()[:16]

        def find_or_queue(session: Session) -> str:
            row = session.scalar(
                select(DatasetInsightRow).where(
                    DatasetInsightRow.version_uid == version.uid, DatasetInsightRow.key == key
                )
            )
            if row is not None and row.state != "failed":
                return row.uid
            now = utcnow()
            if row is None:
                row = DatasetInsightRow(
                    uid=uuid.uuid4().hex,
                    version_uid=version.uid,
                    key=key,
                    tokenizer=tokenizer,
                    max_sequence_length=length,
                    charts=[],
                    create_time=now,
                )
                session.add(row)
            row.state, row.failure_reason, row.failure_message, row.update_time = "pending", "", "", now
            session.flush()
            session.refresh(row)
            catalog.enqueue(session, "insight", row.uid)
            emit_insight(catalog, session, row, "created")
            return row.uid

        try:
            uid = await catalog.outbox.write(catalog.db, find_or_queue)
        except IntegrityError:  # a concurrent request queued it first
            uid = await catalog.outbox.write(catalog.db, find_or_queue)
        return await self._proto(uid)

    async def _proto(self, uid: str) -> dataset_pb2.DatasetInsight:
        catalog = self.catalog
        row = await catalog.db.run(lambda s: s.get(DatasetInsightRow, uid))
        if row is None:
            raise NotFound("the insight was deleted with its version")
        if row.state != "ready":
            return insight_to_proto(row)
        prefix = insight_prefix(row.version, row.key)
        report = json.loads(await catalog.store.get_bytes(prefix + "insight.json"))
        proto = insight_to_proto(row, report)
        proto.charts.extend(
            common_pb2.PresignedUrl(
                path=chart,
                url=catalog.store.presigned_get(prefix + chart, catalog.limits.url_ttl),
                method="GET",
            )
            for chart in row.charts
        )
        return proto

    async def get(self, name: str) -> dataset_pb2.DatasetInsight:
        parts = parse_in_project(INSIGHT, name, "name")

        def find(session: Session) -> str:
            version = self.catalog.version_in(session, parts, name)
            row = session.get(DatasetInsightRow, parts["insight"])
            if row is None or row.version_uid != version.uid:
                raise NotFound(f"insight {name} does not exist")
            return row.uid

        return await self._proto(await self.catalog.db.run(find))

    async def watch(self, name: str) -> AsyncIterator[dataset_pb2.DatasetInsight]:
        first = await self.get(name)
        assert self.catalog.feed is not None
        async for insight in changes(
            self.catalog.feed, first.name, lambda: self.get(first.name), lambda i: i.state in FINAL
        ):
            yield insight
