"""Dataset versions: accepting a new one (PROCESSING, handed to a data worker), reading, listing,
watching and deleting them.

A version is accepted in one transaction with its event and its work-queue message, so a version
that exists always has a worker coming for it; the worker stores its files and only then marks it
READY (or FAILED), so a READY version always has its data.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.data.catalog import VERSION, DataCatalog, enqueue_task
from services.data.convert import DATASET, version_name, version_to_proto
from services.data.repo import DatasetRow, DatasetVersionRow
from services.kit.auth import parse_in_project
from services.kit.db import keyset_page
from services.kit.errors import FailedPrecondition, InvalidArgument
from services.kit.names import page_size, parse_filter
from services.kit.outbox import Outbox
from services.kit.rows import Kind, Row
from services.kit.times import utcnow
from services.kit.watch import changes
from tuneforge.common.v1 import common_pb2
from tuneforge.data.v1 import dataset_pb2
from tuneforge.events.v1 import data_events_pb2

STATES = ("processing", "ready", "failed")


@dataclass
class NewVersion:
    """What a new version is to hold, before a data worker makes it (`task`, see `tasks.py`)."""

    kind: Kind
    task: dict[str, Any]
    recipe: dict[str, Any]
    source_file: str = ""
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    request_id: str = ""
    # Set when the version's files are already in place under its uid (a presigned upload).
    uid: str = ""


def emit_version(
    catalog: DataCatalog, session: Session, row: DatasetVersionRow, verb: str
) -> dataset_pb2.DatasetVersion:
    proto = version_to_proto(row)
    catalog.outbox.emit(
        session,
        "dataset_version",
        verb,
        proto.name,
        row.dataset.project,
        data_events_pb2.DatasetVersionEvent(dataset_version=proto),
    )
    return proto


def accept_version_in(
    session: Session, outbox: Outbox, dataset_uid: str, new: NewVersion
) -> DatasetVersionRow:
    """Number and record a PROCESSING version of a dataset and queue its work, in the caller's
    transaction (the service's requests, and a data worker's finished augmentation run)."""
    dataset = session.get(DatasetRow, dataset_uid)
    if dataset is None:
        raise FailedPrecondition("the dataset was deleted meanwhile", reason="DATASET_DELETED")
    number = (
        session.execute(
            update(DatasetRow)
            .where(DatasetRow.uid == dataset_uid)
            .values(next_version=DatasetRow.next_version + 1)
            .returning(DatasetRow.next_version)
        ).scalar_one()
        - 1
    )
    uid = new.uid or uuid.uuid4().hex
    now = utcnow()
    row = DatasetVersionRow(
        uid=uid,
        dataset_uid=dataset_uid,
        number=number,
        state="processing",
        kind=new.kind.value,
        row_count=0,
        character_count=0,
        skipped_row_count=0,
        error_count=0,
        errors_by_reason={},
        error_examples=[],
        source_file=new.source_file,
        source_format="",
        source_schema="",
        files=[],
        recipe=new.recipe,
        cleaning=[],
        insights={},
        description=new.description,
        tags=new.tags,
        storage_prefix=f"datasets/{dataset_uid}/versions/{uid}/",
        request_id=new.request_id or None,
        create_time=now,
        task=new.task,
        failure_reason="",
        failure_message="",
        update_time=now,
    )
    session.add(row)
    session.flush()
    session.refresh(row)
    enqueue_task(outbox, session, "version", uid)
    # No event yet: `dataset_version.ready` or `.failed` announces the version once it is made.
    return row


class Versions:
    def __init__(self, catalog: DataCatalog) -> None:
        self.catalog = catalog

    # -- accepting -----------------------------------------------------------------------------

    async def existing_by_request(
        self, dataset_uid: str, request_id: str
    ) -> dataset_pb2.DatasetVersion | None:
        if not request_id:
            return None
        return await self.catalog.db.run(lambda s: self._by_request(s, dataset_uid, request_id))

    @staticmethod
    def _by_request(session: Session, dataset_uid: str, request_id: str) -> dataset_pb2.DatasetVersion | None:
        row = session.scalar(
            select(DatasetVersionRow).where(
                DatasetVersionRow.dataset_uid == dataset_uid, DatasetVersionRow.request_id == request_id
            )
        )
        return version_to_proto(row) if row else None

    def accept_in(self, session: Session, dataset_uid: str, new: NewVersion) -> dataset_pb2.DatasetVersion:
        """Number and record a PROCESSING version and queue its work, in the caller's transaction."""
        existing = self._by_request(session, dataset_uid, new.request_id) if new.request_id else None
        return existing or version_to_proto(accept_version_in(session, self.catalog.outbox, dataset_uid, new))

    async def accept(self, dataset_uid: str, new: NewVersion) -> dataset_pb2.DatasetVersion:
        try:
            return await self.catalog.outbox.write(
                self.catalog.db, lambda s: self.accept_in(s, dataset_uid, new)
            )
        except IntegrityError:
            # A concurrent retry with the same request id won the insert.
            existing = await self.existing_by_request(dataset_uid, new.request_id)
            if existing is None:
                raise
            return existing

    # -- reading -------------------------------------------------------------------------------

    async def get(self, name: str) -> dataset_pb2.DatasetVersion:
        return await self.catalog.db.run(
            lambda s: version_to_proto(self.catalog.version_row(s, name, "name"))
        )

    async def get_by_uid(self, uid: str) -> dataset_pb2.DatasetVersion:
        return await self.catalog.db.run(lambda s: version_to_proto(s.get(DatasetVersionRow, uid)))

    async def watch(self, name: str) -> AsyncIterator[dataset_pb2.DatasetVersion]:
        """The version now and at each change, until it is READY or FAILED."""
        first = await self.get(name)
        assert self.catalog.feed is not None
        async for version in changes(
            self.catalog.feed,
            first.name,
            lambda: self.get(first.name),
            lambda v: v.state != dataset_pb2.DATASET_VERSION_STATE_PROCESSING,
        ):
            yield version

    async def list(
        self, parent: str, size: int, token: str, filter_text: str
    ) -> tuple[list[dataset_pb2.DatasetVersion], str]:
        parts = parse_in_project(DATASET, parent, "parent")
        size = page_size(size)
        terms = parse_filter(
            filter_text, lambda k: k == "state" or bool(re.match(r"^tags\.[a-z][a-z0-9_.\-]*$", k))
        )

        def list_(session: Session) -> tuple[list[dataset_pb2.DatasetVersion], str]:
            dataset = self.catalog.find_dataset(session, parts["project"], parts["dataset"])
            query = select(DatasetVersionRow).where(DatasetVersionRow.dataset_uid == dataset.uid)
            for key, value in terms:
                if key == "state":
                    if value.lower() not in STATES:
                        raise InvalidArgument.field("filter", f"state is one of {', '.join(STATES)}")
                    query = query.where(DatasetVersionRow.state == value.lower())
                else:
                    query = query.where(
                        DatasetVersionRow.tags[key.removeprefix("tags.")].as_string() == value
                    )
            rows, next_token = keyset_page(
                session,
                query,
                tokens=self.catalog.page_tokens,
                columns={"version": DatasetVersionRow.number},
                order_by="",
                default_order="version",
                tie=DatasetVersionRow.uid,
                size=size,
                token=token,
                context=f"ListDatasetVersions|{parent}|{filter_text}",
            )
            return [version_to_proto(r) for r in rows], next_token

        return await self.catalog.db.run(list_)

    async def delete(self, name: str) -> None:
        """Delete a version (a PROCESSING one too: its worker then discards what it made)."""
        parts = parse_in_project(VERSION, name, "name")
        if parts["version"] == "latest":
            raise InvalidArgument.field("name", "delete a version by its number")

        def delete_(session: Session) -> str:
            row = self.catalog.version_row(session, name, "name")
            emit_version(self.catalog, session, row, "deleted")
            prefix = row.storage_prefix
            session.delete(row)
            return prefix

        prefix = await self.catalog.outbox.write(self.catalog.db, delete_)
        await self.catalog.store.delete_prefix(prefix)

    async def read_rows(self, name: str, size: int, token: str) -> tuple[list[Row], str, int]:
        catalog = self.catalog
        row = await catalog.db.run(lambda s: catalog.version_row(s, name, "name", ready=True))
        size = page_size(size)
        context = f"ReadDatasetRows|{row.uid}"
        offset = catalog.page_tokens.decode(token, context)["o"] if token else 0
        rows = await catalog.load_rows(row)
        page = rows[offset : offset + size]
        end = offset + len(page)
        return page, catalog.page_tokens.encode({"o": end}, context) if end < len(rows) else "", len(rows)

    async def download_urls(self, name: str) -> list[common_pb2.PresignedUrl]:
        catalog = self.catalog
        row = await catalog.db.run(lambda s: catalog.version_row(s, name, "name"))
        return [
            common_pb2.PresignedUrl(
                path=f["path"],
                url=catalog.store.presigned_get(row.storage_prefix + f["path"], catalog.limits.url_ttl),
                method="GET",
                sha256=f["sha256"],
                size_bytes=f["size_bytes"],
            )
            for f in row.files
        ]


def version_label(row: DatasetVersionRow) -> str:
    """`essays/v3`: how a version is named inside a mixture's row ids."""
    return f"{row.dataset.dataset_id}/v{row.number}"


__all__ = ["NewVersion", "Versions", "emit_version", "version_label", "version_name"]
