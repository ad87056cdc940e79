"""What every part of the data service shares: its database, store, outbox and limits, the names
of its resources, and the lookups of datasets and versions.

The parts (`datasets`, `versions`, `uploads`, `transforms`, `insights`, `mixtures`, `preset_catalog`)
take requests and record work; the data worker (`worker`, `tasks`) does the long work.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.data.convert import dataset_to_proto, version_name
from services.data.repo import DatasetRow, DatasetVersionRow
from services.kit.access import Access
from services.kit.auth import parse_in_project, require_project
from services.kit.db import Database, keyset_page
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.kit.names import PROJECT, NamePattern, PageTokens, page_size
from services.kit.outbox import Outbox
from services.kit.rows import Row, from_parquet_bytes
from services.kit.store import ObjectStore
from services.kit.watch import ChangeFeed
from tuneforge.data.v1 import dataset_pb2

_NUMBER = re.compile(r"^[1-9][0-9]{0,9}$")
_UID = re.compile(r"^[0-9a-f]{32}$")
ROW_CACHE_VERSIONS = 8
T = TypeVar("T")
QUEUE_SUBJECT = "tuneforge.data-queue.{task}"
# What the data worker takes from its queue: a version to make, an insight, a mixture; and the
# work that calls teachers: an augmentation run, an annotation task's pre-labelling.
TASKS = ("version", "insight", "mixture", "augmentation", "annotation")


def _version_segment(value: str, field: str) -> str:
    if _NUMBER.match(value) or value == "latest":
        return value
    raise InvalidArgument.field(field, f"version {value!r} must be a number or `latest`")


def _uid_segment(value: str, field: str) -> str:
    if not _UID.match(value):
        raise InvalidArgument.field(field, f"{value!r} is not an id this service made")
    return value


VERSION = NamePattern(
    "projects/{project}/datasets/{dataset}/versions/{version}", {"version": _version_segment}
)
UPLOAD = NamePattern("projects/{project}/datasets/{dataset}/uploads/{upload}", {"upload": _uid_segment})
INSIGHT = NamePattern(
    "projects/{project}/datasets/{dataset}/versions/{version}/insights/{insight}",
    {"version": _version_segment, "insight": _uid_segment},
)
MIXTURE = NamePattern("projects/{project}/mixtures/{mixture}")
PRESET = NamePattern("presets/{preset}")


def enqueue_task(outbox: Outbox, session: Session, task: str, uid: str) -> None:
    """Hand `task` on `uid` to a data worker, if and when this transaction commits."""
    assert task in TASKS
    outbox.enqueue(session, QUEUE_SUBJECT.format(task=task), uid.encode(), f"data-{task}-{uid}")


@dataclass(frozen=True)
class DataLimits:
    max_upload_bytes: int = 2 * 1024**3
    max_line_bytes: int = 1024 * 1024
    max_decompressed_bytes: int = 8 * 1024**3
    upload_ttl: timedelta = timedelta(hours=6)
    url_ttl: timedelta = timedelta(hours=1)


class DataCatalog:
    """Datasets and versions of every project, stored in SQL and S3."""

    def __init__(
        self,
        db: Database,
        store: ObjectStore,
        outbox: Outbox,
        page_tokens: PageTokens,
        limits: DataLimits,
        feed: ChangeFeed | None = None,
        access: Access | None = None,
    ) -> None:
        self.access = access
        self.db = db
        self.store = store
        self.outbox = outbox
        self.page_tokens = page_tokens
        self.limits = limits
        self.feed = feed
        self._rows: OrderedDict[str, list[Row]] = OrderedDict()

    def enqueue(self, session: Session, task: str, uid: str) -> None:
        """Hand `task` on `uid` to a data worker, if and when this transaction commits."""
        enqueue_task(self.outbox, session, task, uid)

    # -- lookups -------------------------------------------------------------------------------

    @staticmethod
    def find_dataset(session: Session, project: str, dataset_id: str, *, lock: bool = False) -> DatasetRow:
        query = select(DatasetRow).where(DatasetRow.project == project, DatasetRow.dataset_id == dataset_id)
        row = session.scalar(query.with_for_update() if lock else query)
        if row is None:
            raise NotFound(f"dataset projects/{project}/datasets/{dataset_id} does not exist")
        return row

    @staticmethod
    def stats(session: Session, uids: Sequence[str]) -> dict[str, tuple[int, int | None]]:
        """Per dataset: how many versions, and the newest ready one's number."""
        if not uids:
            return {}
        counts = dict(
            session.execute(
                select(DatasetVersionRow.dataset_uid, func.count())
                .where(DatasetVersionRow.dataset_uid.in_(uids))
                .group_by(DatasetVersionRow.dataset_uid)
            ).all()
        )
        latest = dict(
            session.execute(
                select(DatasetVersionRow.dataset_uid, func.max(DatasetVersionRow.number))
                .where(DatasetVersionRow.dataset_uid.in_(uids), DatasetVersionRow.state == "ready")
                .group_by(DatasetVersionRow.dataset_uid)
            ).all()
        )
        return {uid: (counts.get(uid, 0), latest.get(uid)) for uid in uids}

    def dataset_proto(self, session: Session, row: DatasetRow) -> dataset_pb2.Dataset:
        return dataset_to_proto(row, *self.stats(session, [row.uid])[row.uid])

    def version_row(
        self, session: Session, name: str, field: str, *, ready: bool = False
    ) -> DatasetVersionRow:
        """The version `name` names (`latest`: the newest ready one), checked against the caller."""
        parts = parse_in_project(VERSION, name, field)
        return self.version_in(session, parts, name, ready=ready)

    def version_in(
        self, session: Session, parts: dict[str, str], name: str, *, ready: bool = False
    ) -> DatasetVersionRow:
        dataset = self.find_dataset(session, parts["project"], parts["dataset"])
        query = select(DatasetVersionRow).where(DatasetVersionRow.dataset_uid == dataset.uid)
        if parts["version"] == "latest":
            row = session.scalar(
                query.where(DatasetVersionRow.state == "ready")
                .order_by(DatasetVersionRow.number.desc())
                .limit(1)
            )
        else:
            row = session.scalar(query.where(DatasetVersionRow.number == int(parts["version"])))
        if row is None:
            raise NotFound(f"{name} does not exist")
        if ready and row.state == "processing":
            raise FailedPrecondition(
                f"{version_name(row)} is still being processed; use it once it is READY (`Watch` it to know when)",
                reason="VERSION_PROCESSING",
            )
        if ready and row.state != "ready":
            why = (
                f"could not be made ({row.failure_message})"
                if row.failure_reason
                else "failed validation and holds no data; fix the file and upload it again"
            )
            raise FailedPrecondition(f"{version_name(row)} {why}", reason="VERSION_NOT_READY")
        return row

    # -- storage -------------------------------------------------------------------------------

    @staticmethod
    def project_bytes(session: Session, project: str | None = None) -> dict[str, int]:
        """Bytes every dataset version stores, per project (of `project` alone when given)."""
        query = select(DatasetRow.project, DatasetVersionRow.files).join(
            DatasetVersionRow, DatasetVersionRow.dataset_uid == DatasetRow.uid
        )
        if project is not None:
            query = query.where(DatasetRow.project == project)
        totals: dict[str, int] = {}
        for owner, files in session.execute(query):
            totals[owner] = totals.get(owner, 0) + sum(int(f.get("size_bytes", 0)) for f in files or [])
        return totals

    async def check_storage(self, project: str, adding: int, field: str) -> None:
        """RESOURCE_EXHAUSTED when `adding` bytes more would pass the project's storage quota."""
        if self.access is not None:
            own = (await self.db.run(lambda s: self.project_bytes(s, project))).get(project, 0)
            await self.access.check_storage(project, "data", own, adding, field)

    async def record_storage(self) -> int:
        """Write every project's bytes where other services' quota checks read them."""
        if self.access is None:
            return 0
        totals = await self.db.run(self.project_bytes)
        access = self.access
        await access.db.run(lambda s: [access.record_storage(s, p, "data", b) for p, b in totals.items()])
        return 0

    async def list_newest(
        self, parent: str, size: int, token: str, row_type: Any, method: str, to_proto: Callable[[Any], T]
    ) -> tuple[list[T], str]:
        """One page of a project's resources of `row_type` (a table with `project`, `create_time` and
        `uid`), newest first, as `to_proto` makes them."""
        project = PROJECT.parse(parent, "parent")["project"]
        require_project(project)
        size = page_size(size)

        def list_(session: Session) -> tuple[list[T], str]:
            rows, next_token = keyset_page(
                session,
                select(row_type).where(row_type.project == project),
                tokens=self.page_tokens,
                columns={"create_time": row_type.create_time},
                order_by="create_time desc",
                default_order="create_time desc",
                tie=row_type.uid,
                size=size,
                token=token,
                context=f"{method}|{project}",
            )
            return [to_proto(r) for r in rows], next_token

        return await self.db.run(list_)

    async def load_rows(self, row: DatasetVersionRow) -> list[Row]:
        """A ready version's canonical rows (verified against the manifest, cached in memory)."""
        if row.uid in self._rows:
            self._rows.move_to_end(row.uid)
            return self._rows[row.uid]
        rows = await read_version_rows(self.store, row)
        self._rows[row.uid] = rows
        while len(self._rows) > ROW_CACHE_VERSIONS:
            self._rows.popitem(last=False)
        return rows


async def read_version_rows(store: ObjectStore, row: DatasetVersionRow) -> list[Row]:
    """A ready version's rows from its `data.parquet`, verified against its sha256."""
    entry = next(f for f in row.files if f["path"] == "data.parquet")
    data = b"".join(
        [
            chunk
            async for chunk in store.iter_verified(
                row.storage_prefix + "data.parquet",
                sha256=entry["sha256"],
                size_bytes=entry["size_bytes"],
                label=f"{version_name(row)}/data.parquet",
            )
        ]
    )
    return await asyncio.to_thread(from_parquet_bytes, data)
