"""The data service's domain logic: datasets, immutable versions, and what is derived from them.

Handlers in `server.py` call these methods with API messages. Heavy work (parsing, cleaning,
insight) runs on worker threads. A version's files are stored before its row is committed, so a
version that exists always has its data; a failure on the way leaves no version behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import tempfile
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.data import cleaning, insight, mixing, pii, presets
from services.data.canonical import Kind, Row, characters, from_parquet_bytes, to_parquet_bytes
from services.data.convert import (
    DATASET,
    FORMAT_FROM_PROTO,
    KIND_TO_PROTO,
    SCHEMA_FROM_PROTO,
    dataset_to_proto,
    kind_from_proto,
    policy_from_proto,
    struct,
    timestamp,
    version_name,
    version_to_proto,
)
from services.data.formats import Limits, RowError
from services.data.ingest import IngestOptions, IngestResult, Policy, ingest_file, summarize
from services.data.repo import DatasetRow, DatasetUploadRow, DatasetVersionRow
from services.data.schemas import Schema
from services.kit.auth import bearer_var, parse_in_project, require_project
from services.kit.db import Database, keyset_page
from services.kit.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from services.kit.names import (
    PROJECT,
    NamePattern,
    PageTokens,
    check_id,
    check_tags,
    check_text,
    page_size,
    parse_filter,
)
from services.kit.outbox import Outbox
from services.kit.store import ObjectStore
from services.kit.times import as_utc, utcnow
from tuneforge.common.v1 import common_pb2
from tuneforge.data.v1 import data_service_pb2, dataset_pb2
from tuneforge.events.v1 import data_events_pb2

_NUMBER = re.compile(r"^[1-9][0-9]{0,9}$")
_UID = re.compile(r"^[0-9a-f]{32}$")
_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,199}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_SOURCES = 32
MAX_OPERATIONS = 20
ROW_CACHE_VERSIONS = 8


def _version_segment(value: str, field: str) -> str:
    if _NUMBER.match(value) or value == "latest":
        return value
    raise InvalidArgument.field(field, f"version {value!r} must be a number or `latest`")


def _upload_segment(value: str, field: str) -> str:
    if not _UID.match(value):
        raise InvalidArgument.field(field, f"{value!r} is not an upload id")
    return value


VERSION = NamePattern(
    "projects/{project}/datasets/{dataset}/versions/{version}", {"version": _version_segment}
)
UPLOAD = NamePattern("projects/{project}/datasets/{dataset}/uploads/{upload}", {"upload": _upload_segment})
PRESET = NamePattern("presets/{preset}")


@dataclass(frozen=True)
class DataLimits:
    max_upload_bytes: int = 2 * 1024**3
    max_line_bytes: int = 1024 * 1024
    max_decompressed_bytes: int = 8 * 1024**3
    upload_ttl: timedelta = timedelta(hours=6)
    url_ttl: timedelta = timedelta(hours=1)
    spool_dir: str | None = None


@dataclass
class _NewVersion:
    """What a new version holds, before it is stored."""

    kind: Kind
    rows: list[Row]
    state: str = "ready"
    errors: list[RowError] = field(default_factory=list)
    skipped: int = 0
    source_file: str = ""
    source_format: str = ""
    source_schema: str = ""
    source_path: Path | None = None
    recipe: dict[str, Any] = field(default_factory=dict)
    cleaning: list[dict[str, Any]] = field(default_factory=list)
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    request_id: str = ""


def _options(
    message: data_service_pb2.IngestOptions, field: str
) -> tuple[IngestOptions, str, dict[str, str]]:
    if not _FILENAME.match(message.filename):
        raise InvalidArgument.field(
            f"{field}.filename",
            "give the file's name (letters, digits, '.', '_', '-'; it tells the format), e.g. train.jsonl",
        )
    return (
        IngestOptions(
            filename=message.filename,
            format=FORMAT_FROM_PROTO.get(message.format),
            schema=SCHEMA_FROM_PROTO.get(message.schema),
            policy=policy_from_proto(message.error_policy),
        ),
        check_text(message.description, f"{field}.description", 4000),
        check_tags(dict(message.tags), f"{field}.tags"),
    )


class DataCatalog:
    """Datasets and versions of every project, stored in SQL and S3."""

    def __init__(
        self,
        db: Database,
        store: ObjectStore,
        outbox: Outbox,
        page_tokens: PageTokens,
        limits: DataLimits,
        registry_endpoint: str = "",
    ) -> None:
        self.db = db
        self.store = store
        self.outbox = outbox
        self.page_tokens = page_tokens
        self.limits = limits
        self.registry_endpoint = registry_endpoint
        self._rows: OrderedDict[str, list[Row]] = OrderedDict()

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _find_dataset(session: Session, project: str, dataset_id: str, *, lock: bool = False) -> DatasetRow:
        query = select(DatasetRow).where(DatasetRow.project == project, DatasetRow.dataset_id == dataset_id)
        row = session.scalar(query.with_for_update() if lock else query)
        if row is None:
            raise NotFound(f"dataset projects/{project}/datasets/{dataset_id} does not exist")
        return row

    @staticmethod
    def _stats(session: Session, uids: Sequence[str]) -> dict[str, tuple[int, int | None]]:
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

    def _dataset_proto(self, session: Session, row: DatasetRow) -> dataset_pb2.Dataset:
        return dataset_to_proto(row, *self._stats(session, [row.uid])[row.uid])

    def _version_row(
        self, session: Session, name: str, field: str, *, ready: bool = False
    ) -> DatasetVersionRow:
        parts = parse_in_project(VERSION, name, field)
        dataset = self._find_dataset(session, parts["project"], parts["dataset"])
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
        if ready and row.state != "ready":
            raise FailedPrecondition(
                f"{version_name(row)} failed validation and holds no data; fix the file and upload it again",
                reason="VERSION_NOT_READY",
            )
        return row

    async def _load_rows(self, row: DatasetVersionRow) -> list[Row]:
        """A ready version's canonical rows (verified against the manifest, cached in memory)."""
        if row.uid in self._rows:
            self._rows.move_to_end(row.uid)
            return self._rows[row.uid]
        entry = next(f for f in row.files if f["path"] == "data.parquet")
        data = b"".join(
            [
                chunk
                async for chunk in self.store.iter_verified(
                    row.storage_prefix + "data.parquet",
                    sha256=entry["sha256"],
                    size_bytes=entry["size_bytes"],
                    label=f"{version_name(row)}/data.parquet",
                )
            ]
        )
        rows = await asyncio.to_thread(from_parquet_bytes, data)
        self._rows[row.uid] = rows
        while len(self._rows) > ROW_CACHE_VERSIONS:
            self._rows.popitem(last=False)
        return rows

    # -- datasets ------------------------------------------------------------------------------

    def _insert_dataset(
        self,
        session: Session,
        project: str,
        dataset_id: str,
        kind: Kind,
        display_name: str,
        description: str,
        tags: dict[str, str],
        request_id: str,
    ) -> DatasetRow:
        now = utcnow()
        row = DatasetRow(
            uid=uuid.uuid4().hex,
            project=project,
            dataset_id=dataset_id,
            display_name=display_name or dataset_id,
            description=description,
            kind=kind.value,
            tags=tags,
            next_version=1,
            request_id=request_id or None,
            create_time=now,
            update_time=now,
        )
        session.add(row)
        session.flush()
        proto = dataset_to_proto(row)
        self.outbox.emit(
            session, "dataset", "created", proto.name, project, data_events_pb2.DatasetEvent(dataset=proto)
        )
        return row

    async def create_dataset(
        self, parent: str, dataset_id: str, dataset: dataset_pb2.Dataset, request_id: str
    ) -> dataset_pb2.Dataset:
        project = PROJECT.parse(parent, "parent")["project"]
        require_project(project)
        check_id(dataset_id, "dataset_id", what="dataset id")
        kind = kind_from_proto(dataset.kind, "dataset.kind")
        display_name = check_text(dataset.display_name, "dataset.display_name", 200)
        description = check_text(dataset.description, "dataset.description", 4000)
        tags = check_tags(dict(dataset.tags), "dataset.tags")
        check_text(request_id, "request_id", 128)

        def create(session: Session) -> dataset_pb2.Dataset:
            if request_id:
                existing = session.scalar(
                    select(DatasetRow).where(
                        DatasetRow.project == project, DatasetRow.request_id == request_id
                    )
                )
                if existing is not None:
                    return self._dataset_proto(session, existing)
            if session.scalar(
                select(DatasetRow.uid).where(
                    DatasetRow.project == project, DatasetRow.dataset_id == dataset_id
                )
            ):
                raise AlreadyExists(f"dataset projects/{project}/datasets/{dataset_id} already exists")
            row = self._insert_dataset(
                session, project, dataset_id, kind, display_name, description, tags, request_id
            )
            return dataset_to_proto(row)

        try:
            return await self.outbox.write(self.db, create)
        except IntegrityError:
            return await self.outbox.write(self.db, create)

    async def get_dataset(self, name: str) -> dataset_pb2.Dataset:
        parts = parse_in_project(DATASET, name, "name")
        return await self.db.run(
            lambda s: self._dataset_proto(s, self._find_dataset(s, parts["project"], parts["dataset"]))
        )

    async def list_datasets(
        self, parent: str, size: int, token: str, filter_text: str, order_by: str
    ) -> tuple[list[dataset_pb2.Dataset], str]:
        project = PROJECT.parse(parent, "parent")["project"]
        require_project(project)
        size = page_size(size)
        terms = parse_filter(
            filter_text,
            lambda k: k in ("dataset_id", "kind") or bool(re.match(r"^tags\.[a-z][a-z0-9_.\-]*$", k)),
        )

        def list_(session: Session) -> tuple[list[dataset_pb2.Dataset], str]:
            query = select(DatasetRow).where(DatasetRow.project == project)
            for key, value in terms:
                if key == "dataset_id":
                    query = query.where(DatasetRow.dataset_id == value)
                elif key == "kind":
                    if value not in {k.value for k in Kind}:
                        raise InvalidArgument.field(
                            "filter", f"kind {value!r} is not one of {', '.join(k.value for k in Kind)}"
                        )
                    query = query.where(DatasetRow.kind == value)
                else:
                    query = query.where(DatasetRow.tags[key.removeprefix("tags.")].as_string() == value)
            rows, next_token = keyset_page(
                session,
                query,
                tokens=self.page_tokens,
                columns={
                    "create_time": DatasetRow.create_time,
                    "update_time": DatasetRow.update_time,
                    "dataset_id": DatasetRow.dataset_id,
                },
                order_by=order_by,
                default_order="create_time",
                tie=DatasetRow.uid,
                size=size,
                token=token,
                context=f"ListDatasets|{project}|{filter_text}",
            )
            stats = self._stats(session, [r.uid for r in rows])
            return [dataset_to_proto(r, *stats[r.uid]) for r in rows], next_token

        return await self.db.run(list_)

    async def update_dataset(
        self, dataset: dataset_pb2.Dataset, mask_paths: Sequence[str]
    ) -> dataset_pb2.Dataset:
        parts = parse_in_project(DATASET, dataset.name, "dataset.name")
        allowed = {"display_name", "description", "tags"}
        paths = set(mask_paths) or ({fd.name for fd, _ in dataset.ListFields()} & allowed)
        if paths - allowed:
            raise InvalidArgument.field(
                "update_mask",
                f"cannot update {', '.join(sorted(paths - allowed))}; updatable: {', '.join(sorted(allowed))}",
            )
        check_text(dataset.display_name, "dataset.display_name", 200)
        check_text(dataset.description, "dataset.description", 4000)
        tags = check_tags(dict(dataset.tags), "dataset.tags")

        def update_(session: Session) -> dataset_pb2.Dataset:
            row = self._find_dataset(session, parts["project"], parts["dataset"], lock=True)
            if "display_name" in paths:
                row.display_name = dataset.display_name or row.dataset_id
            if "description" in paths:
                row.description = dataset.description
            if "tags" in paths:
                row.tags = tags
            row.update_time = utcnow()
            session.flush()
            proto = self._dataset_proto(session, row)
            self.outbox.emit(
                session,
                "dataset",
                "updated",
                proto.name,
                parts["project"],
                data_events_pb2.DatasetEvent(dataset=proto),
            )
            return proto

        return await self.outbox.write(self.db, update_)

    async def delete_dataset(self, name: str, force: bool) -> None:
        parts = parse_in_project(DATASET, name, "name")

        def delete_(session: Session) -> str:
            row = self._find_dataset(session, parts["project"], parts["dataset"], lock=True)
            versions = session.scalars(
                select(DatasetVersionRow).where(DatasetVersionRow.dataset_uid == row.uid)
            ).all()
            if versions and not force:
                raise FailedPrecondition(
                    f"{name} has {len(versions)} versions; delete them first or pass force",
                    reason="HAS_VERSIONS",
                )
            proto = self._dataset_proto(session, row)
            for version in versions:
                version_proto = version_to_proto(version)
                session.delete(version)
                self.outbox.emit(
                    session,
                    "dataset_version",
                    "deleted",
                    version_proto.name,
                    parts["project"],
                    data_events_pb2.DatasetVersionEvent(dataset_version=version_proto),
                )
            session.execute(delete(DatasetUploadRow).where(DatasetUploadRow.dataset_uid == row.uid))
            session.delete(row)
            self.outbox.emit(
                session,
                "dataset",
                "deleted",
                proto.name,
                parts["project"],
                data_events_pb2.DatasetEvent(dataset=proto),
            )
            return row.uid

        uid = await self.outbox.write(self.db, delete_)
        await self.store.delete_prefix(f"datasets/{uid}/")

    # -- storing a version ---------------------------------------------------------------------

    async def _existing_by_request(
        self, dataset_uid: str, request_id: str
    ) -> dataset_pb2.DatasetVersion | None:
        if not request_id:
            return None

        def find(session: Session) -> dataset_pb2.DatasetVersion | None:
            row = session.scalar(
                select(DatasetVersionRow).where(
                    DatasetVersionRow.dataset_uid == dataset_uid, DatasetVersionRow.request_id == request_id
                )
            )
            return version_to_proto(row) if row else None

        return await self.db.run(find)

    async def _store_version(self, dataset_uid: str, new: _NewVersion) -> dataset_pb2.DatasetVersion:
        """Write the files, then the row and its event in one transaction; undo the files on failure."""
        version_uid = uuid.uuid4().hex
        prefix = f"datasets/{dataset_uid}/versions/{version_uid}/"
        files: list[dict[str, Any]] = []
        try:
            if new.state == "ready":
                data = await asyncio.to_thread(to_parquet_bytes, new.rows, new.kind)
                stored = await self.store.put_bytes(prefix + "data.parquet", data)
                files.append(
                    {"path": "data.parquet", "size_bytes": stored.size_bytes, "sha256": stored.sha256}
                )
            if new.errors:
                lines = "".join(
                    json.dumps(e.as_dict(), ensure_ascii=False) + "\n" for e in new.errors
                ).encode()
                stored = await self.store.put_bytes(
                    prefix + "errors.jsonl", lines, content_type="application/x-ndjson"
                )
                files.append(
                    {"path": "errors.jsonl", "size_bytes": stored.size_bytes, "sha256": stored.sha256}
                )
            if new.source_path is not None:
                digest = await asyncio.to_thread(_sha256_file, new.source_path)
                await self.store.put_file(prefix + f"source/{new.source_file}", new.source_path)
                files.append(
                    {
                        "path": f"source/{new.source_file}",
                        "size_bytes": new.source_path.stat().st_size,
                        "sha256": digest,
                    }
                )
            counts, examples = summarize(new.errors)
            characters_total = sum(characters(r, new.kind) for r in new.rows) if new.state == "ready" else 0
            manifest = {
                "kind": new.kind.value,
                "state": new.state,
                "rows": len(new.rows) if new.state == "ready" else 0,
                "characters": characters_total,
                "source": {"file": new.source_file, "format": new.source_format, "schema": new.source_schema},
                "errors": {"count": len(new.errors), "by_reason": counts},
                "recipe": new.recipe,
                "files": files,
            }
            stored = await self.store.put_bytes(
                prefix + "manifest.json",
                json.dumps(manifest, ensure_ascii=False, indent=1).encode(),
                content_type="application/json",
            )
            files.append({"path": "manifest.json", "size_bytes": stored.size_bytes, "sha256": stored.sha256})

            def insert(session: Session) -> dataset_pb2.DatasetVersion:
                dataset = session.get(DatasetRow, dataset_uid)
                if dataset is None:
                    raise FailedPrecondition("the dataset was deleted meanwhile", reason="DATASET_DELETED")
                if new.request_id:
                    existing = session.scalar(
                        select(DatasetVersionRow).where(
                            DatasetVersionRow.dataset_uid == dataset_uid,
                            DatasetVersionRow.request_id == new.request_id,
                        )
                    )
                    if existing is not None:
                        return version_to_proto(existing)
                number = (
                    session.execute(
                        update(DatasetRow)
                        .where(DatasetRow.uid == dataset_uid)
                        .values(next_version=DatasetRow.next_version + 1)
                        .returning(DatasetRow.next_version)
                    ).scalar_one()
                    - 1
                )
                row = DatasetVersionRow(
                    uid=version_uid,
                    dataset_uid=dataset_uid,
                    number=number,
                    state=new.state,
                    kind=new.kind.value,
                    row_count=manifest["rows"],
                    character_count=characters_total,
                    skipped_row_count=new.skipped,
                    error_count=len(new.errors),
                    errors_by_reason=counts,
                    error_examples=[e.as_dict() for e in examples],
                    source_file=new.source_file,
                    source_format=new.source_format,
                    source_schema=new.source_schema,
                    files=files,
                    recipe=new.recipe,
                    cleaning=new.cleaning,
                    insights={},
                    description=new.description,
                    tags=new.tags,
                    storage_prefix=prefix,
                    request_id=new.request_id or None,
                    create_time=utcnow(),
                )
                session.add(row)
                session.flush()
                session.refresh(row)
                proto = version_to_proto(row)
                self.outbox.emit(
                    session,
                    "dataset_version",
                    "ready" if new.state == "ready" else "failed",
                    proto.name,
                    dataset.project,
                    data_events_pb2.DatasetVersionEvent(dataset_version=proto),
                )
                return proto

            proto = await self.outbox.write(self.db, insert)
        except BaseException:
            await self.store.delete_prefix(prefix)
            raise
        if proto.uid != version_uid:  # a concurrent retry with the same request id won
            await self.store.delete_prefix(prefix)
        return proto

    async def _ingest(
        self,
        dataset: DatasetRow,
        path: Path,
        options: IngestOptions,
        description: str,
        tags: dict[str, str],
        request_id: str,
        upload_kind: str,
    ) -> dataset_pb2.DatasetVersion:
        kind = Kind(dataset.kind)
        limits = Limits(
            max_line_bytes=self.limits.max_line_bytes,
            max_decompressed_bytes=self.limits.max_decompressed_bytes,
        )
        result: IngestResult = await asyncio.to_thread(ingest_file, path, kind, options, limits)
        failed = result.failed_under(options.policy)
        new = _NewVersion(
            kind=kind,
            rows=[] if failed else result.rows,
            state="failed" if failed else "ready",
            errors=result.errors,
            skipped=0 if failed else len(result.errors),
            source_file=options.filename,
            source_format=result.format.value if result.format else "",
            source_schema=result.schema.value if result.schema else "",
            source_path=path,
            recipe={
                "type": "upload",
                "via": upload_kind,
                "file": options.filename,
                "error_policy": options.policy.value,
            },
            description=description,
            tags=tags,
            request_id=request_id,
        )
        return await self._store_version(dataset.uid, new)

    # -- uploads -------------------------------------------------------------------------------

    async def upload_version(
        self, requests: AsyncIterator[data_service_pb2.UploadDatasetVersionRequest]
    ) -> dataset_pb2.DatasetVersion:
        first = await anext(requests, None)
        if first is None or first.WhichOneof("payload") != "header":
            raise InvalidArgument.field("header", "the first message of the stream must be the header")
        header = first.header
        parts = parse_in_project(DATASET, header.parent, "header.parent")
        options, description, tags = _options(header.options, "header.options")
        request_id = check_text(header.request_id, "header.request_id", 128)
        dataset = await self.db.run(lambda s: self._find_dataset(s, parts["project"], parts["dataset"]))
        existing = await self._existing_by_request(dataset.uid, request_id)
        if existing is not None:
            return existing
        with tempfile.TemporaryDirectory(dir=self.limits.spool_dir) as tmp:
            path = Path(tmp) / options.filename
            digest = hashlib.sha256()
            size = 0
            with path.open("wb") as spool:
                while True:
                    message = await anext(requests, None)
                    if message is None:
                        raise InvalidArgument.field(
                            "finish", "the stream ended before the finish message; nothing was stored"
                        )
                    which = message.WhichOneof("payload")
                    if which == "data":
                        size += len(message.data)
                        if size > self.limits.max_upload_bytes:
                            raise ResourceExhausted(
                                f"{options.filename} is larger than the upload limit of {self.limits.max_upload_bytes} bytes",
                                reason="FILE_TOO_LARGE",
                            )
                        spool.write(message.data)
                        digest.update(message.data)
                    elif which == "finish":
                        if message.finish.sha256 and message.finish.sha256 != digest.hexdigest():
                            raise InvalidArgument.field(
                                "finish.sha256",
                                "the bytes received do not match the sha256 the client sent; the upload was corrupted in transit",
                                reason="CHECKSUM_MISMATCH",
                            )
                        break
                    else:
                        raise InvalidArgument.field("header", "only one header may be sent")
            return await self._ingest(dataset, path, options, description, tags, request_id, "stream")

    async def create_upload(
        self,
        parent: str,
        options_message: data_service_pb2.IngestOptions,
        size_bytes: int,
        sha256: str,
        request_id: str,
    ) -> data_service_pb2.DatasetVersionUpload:
        parts = parse_in_project(DATASET, parent, "parent")
        _options(options_message, "options")
        if not 0 < size_bytes <= self.limits.max_upload_bytes:
            raise InvalidArgument.field("size_bytes", f"must be between 1 and {self.limits.max_upload_bytes}")
        if not _SHA256.match(sha256):
            raise InvalidArgument.field("sha256", "must be 64 lower-case hex digits")
        check_text(request_id, "request_id", 128)

        def create(session: Session) -> DatasetUploadRow:
            dataset = self._find_dataset(session, parts["project"], parts["dataset"])
            if request_id:
                existing = session.scalar(
                    select(DatasetUploadRow).where(
                        DatasetUploadRow.dataset_uid == dataset.uid, DatasetUploadRow.request_id == request_id
                    )
                )
                if existing is not None:
                    return existing
            uid = uuid.uuid4().hex
            now = utcnow()
            row = DatasetUploadRow(
                uid=uid,
                dataset_uid=dataset.uid,
                options=options_message.SerializeToString(),
                size_bytes=size_bytes,
                sha256=sha256,
                storage_key=f"datasets/{dataset.uid}/uploads/{uid}",
                request_id=request_id or None,
                version_uid=None,
                expire_time=now + self.limits.upload_ttl,
                create_time=now,
            )
            session.add(row)
            session.flush()
            return row

        row = await self.db.run(create)
        return data_service_pb2.DatasetVersionUpload(
            name=UPLOAD.format(project=parts["project"], dataset=parts["dataset"], upload=row.uid),
            url=common_pb2.PresignedUrl(
                path=data_service_pb2.IngestOptions.FromString(row.options).filename,
                url=self.store.presigned_put(row.storage_key, self.limits.url_ttl),
                method="PUT",
                sha256=row.sha256,
                size_bytes=row.size_bytes,
            ),
            expire_time=timestamp(row.expire_time),
        )

    async def commit_upload(self, name: str) -> dataset_pb2.DatasetVersion:
        parts = parse_in_project(UPLOAD, name, "name")

        def load(session: Session) -> tuple[DatasetRow, DatasetUploadRow, dataset_pb2.DatasetVersion | None]:
            dataset = self._find_dataset(session, parts["project"], parts["dataset"])
            upload = session.get(DatasetUploadRow, parts["upload"])
            if upload is None or upload.dataset_uid != dataset.uid:
                raise NotFound(f"upload {name} does not exist (it may have expired)")
            if upload.version_uid:
                version = session.get(DatasetVersionRow, upload.version_uid)
                if version is not None:
                    return dataset, upload, version_to_proto(version)
            if as_utc(upload.expire_time) < utcnow():
                raise FailedPrecondition(f"upload {name} expired; start a new one", reason="UPLOAD_EXPIRED")
            return dataset, upload, None

        dataset, upload, done = await self.db.run(load)
        if done is not None:
            return done
        options, description, tags = _options(
            data_service_pb2.IngestOptions.FromString(upload.options), "options"
        )
        if not await self.store.exists(upload.storage_key):
            raise FailedPrecondition(
                f"{options.filename} has not been uploaded yet; PUT it to the URL, then commit",
                reason="FILE_MISSING",
            )
        with tempfile.TemporaryDirectory(dir=self.limits.spool_dir) as tmp:
            path = Path(tmp) / options.filename
            try:
                await self.store.get_file(
                    upload.storage_key,
                    path,
                    sha256=upload.sha256,
                    size_bytes=upload.size_bytes,
                    label=options.filename,
                )
            except Exception as exc:
                if getattr(exc, "code", "") == "DATA_LOSS":
                    raise FailedPrecondition(
                        f"{options.filename}: the uploaded bytes do not match the declared size and sha256; upload it again",
                        reason="CHECKSUM_MISMATCH",
                    ) from None
                raise
            version = await self._ingest(
                dataset, path, options, description, tags, f"upload:{upload.uid}", "presigned"
            )

        def mark(session: Session) -> None:
            session.execute(
                update(DatasetUploadRow)
                .where(DatasetUploadRow.uid == upload.uid)
                .values(version_uid=version.uid)
            )

        await self.db.run(mark)
        await self.store.delete(upload.storage_key)
        return version

    async def sweep_expired_uploads(self) -> int:
        now = utcnow()
        rows = await self.db.run(
            lambda s: [
                (r.uid, r.storage_key)
                for r in s.scalars(select(DatasetUploadRow).where(DatasetUploadRow.expire_time < now))
            ]
        )
        for uid, key in rows:
            await self.store.delete(key)
            await self.db.run(
                lambda s, uid=uid: s.execute(delete(DatasetUploadRow).where(DatasetUploadRow.uid == uid))
            )
        return len(rows)

    # -- reading versions ----------------------------------------------------------------------

    async def get_version(self, name: str) -> dataset_pb2.DatasetVersion:
        return await self.db.run(lambda s: version_to_proto(self._version_row(s, name, "name")))

    async def list_versions(
        self, parent: str, size: int, token: str, filter_text: str
    ) -> tuple[list[dataset_pb2.DatasetVersion], str]:
        parts = parse_in_project(DATASET, parent, "parent")
        size = page_size(size)
        terms = parse_filter(
            filter_text, lambda k: k == "state" or bool(re.match(r"^tags\.[a-z][a-z0-9_.\-]*$", k))
        )

        def list_(session: Session) -> tuple[list[dataset_pb2.DatasetVersion], str]:
            dataset = self._find_dataset(session, parts["project"], parts["dataset"])
            query = select(DatasetVersionRow).where(DatasetVersionRow.dataset_uid == dataset.uid)
            for key, value in terms:
                if key == "state":
                    if value not in ("ready", "failed"):
                        raise InvalidArgument.field("filter", "state is ready or failed")
                    query = query.where(DatasetVersionRow.state == value)
                else:
                    query = query.where(
                        DatasetVersionRow.tags[key.removeprefix("tags.")].as_string() == value
                    )
            rows, next_token = keyset_page(
                session,
                query,
                tokens=self.page_tokens,
                columns={"version": DatasetVersionRow.number},
                order_by="",
                default_order="version",
                tie=DatasetVersionRow.uid,
                size=size,
                token=token,
                context=f"ListDatasetVersions|{parent}|{filter_text}",
            )
            return [version_to_proto(r) for r in rows], next_token

        return await self.db.run(list_)

    async def delete_version(self, name: str) -> None:
        parts = parse_in_project(VERSION, name, "name")
        if parts["version"] == "latest":
            raise InvalidArgument.field("name", "delete a version by its number")

        def delete_(session: Session) -> str:
            row = self._version_row(session, name, "name")
            proto = version_to_proto(row)
            prefix = row.storage_prefix
            session.delete(row)
            self.outbox.emit(
                session,
                "dataset_version",
                "deleted",
                proto.name,
                parts["project"],
                data_events_pb2.DatasetVersionEvent(dataset_version=proto),
            )
            return prefix

        prefix = await self.outbox.write(self.db, delete_)
        await self.store.delete_prefix(prefix)

    async def read_rows(self, name: str, size: int, token: str) -> tuple[list[Row], str, int]:
        row = await self.db.run(lambda s: self._version_row(s, name, "name", ready=True))
        size = page_size(size)
        context = f"ReadDatasetRows|{row.uid}"
        offset = self.page_tokens.decode(token, context)["o"] if token else 0
        rows = await self._load_rows(row)
        page = rows[offset : offset + size]
        end = offset + len(page)
        return page, self.page_tokens.encode({"o": end}, context) if end < len(rows) else "", len(rows)

    async def download_urls(self, name: str) -> list[common_pb2.PresignedUrl]:
        row = await self.db.run(lambda s: self._version_row(s, name, "name"))
        return [
            common_pb2.PresignedUrl(
                path=f["path"],
                url=self.store.presigned_get(row.storage_prefix + f["path"], self.limits.url_ttl),
                method="GET",
                sha256=f["sha256"],
                size_bytes=f["size_bytes"],
            )
            for f in row.files
        ]

    # -- insight -------------------------------------------------------------------------------

    async def _tokenizer(self, reference: str, project: str) -> Any:
        """A `tokenizers.Tokenizer` from a registry model version's `tokenizer.json`."""
        from tokenizers import Tokenizer

        from tuneforge import Client
        from tuneforge.errors import TuneForgeError

        if not reference.startswith("projects/"):
            raise InvalidArgument.field(
                "tokenizer", "give a model version name: projects/{project}/models/{model}/versions/{version}"
            )
        if not self.registry_endpoint:
            raise FailedPrecondition(
                "this data service has no registry endpoint configured (TUNEFORGE_REGISTRY_ENDPOINT)",
                reason="NO_REGISTRY",
            )
        token = bearer_var.get()

        def fetch() -> Any:
            with (
                tempfile.TemporaryDirectory(dir=self.limits.spool_dir) as tmp,
                Client(self.registry_endpoint, api_key=token, project=project) as client,
            ):
                try:
                    version = client.models.get_version(reference)
                    if "tokenizer.json" not in {f.path for f in version.files}:
                        raise InvalidArgument.field("tokenizer", f"{version.name} has no tokenizer.json")
                    client.models.download(version.name, tmp, paths=["tokenizer.json"])
                except TuneForgeError as error:
                    raise InvalidArgument.field("tokenizer", f"{reference}: {error.message}") from None
                return Tokenizer.from_file(str(Path(tmp) / "tokenizer.json"))

        return await asyncio.to_thread(fetch)

    async def compute_insight(
        self, name: str, tokenizer_ref: str, max_sequence_length: int
    ) -> dataset_pb2.DatasetInsight:
        if max_sequence_length < 0:
            raise InvalidArgument.field("max_sequence_length", "must not be negative")
        max_sequence_length = max_sequence_length or 2048
        row = await self.db.run(lambda s: self._version_row(s, name, "name", ready=True))
        key = hashlib.sha256(f"{tokenizer_ref}|{max_sequence_length}".encode()).hexdigest()[:16]
        prefix = f"{row.storage_prefix}insight/{key}/"
        cached = row.insights.get(key)
        if cached is None:
            tokenizer = await self._tokenizer(tokenizer_ref, row.dataset.project) if tokenizer_ref else None
            rows = await self._load_rows(row)
            report = await asyncio.to_thread(
                insight.compute,
                rows,
                Kind(row.kind),
                tokenizer=tokenizer,
                tokenizer_name=tokenizer_ref,
                max_sequence_length=max_sequence_length,
            )
            images = await asyncio.to_thread(insight.charts, report)
            await self.store.put_bytes(
                prefix + "insight.json",
                json.dumps(report, ensure_ascii=False, indent=1).encode(),
                "application/json",
            )
            for image_name, png in images.items():
                await self.store.put_bytes(prefix + image_name, png, "image/png")
            cached = {"charts": sorted(images)}

            def remember(session: Session) -> None:
                version = session.get(DatasetVersionRow, row.uid)
                if version is not None:
                    version.insights = {**version.insights, key: cached}

            await self.db.run(remember)
        else:
            report = json.loads(await self.store.get_bytes(prefix + "insight.json"))
        return dataset_pb2.DatasetInsight(
            dataset_version=version_name(row),
            report=struct(report),
            charts=[
                common_pb2.PresignedUrl(
                    path=chart,
                    url=self.store.presigned_get(prefix + chart, self.limits.url_ttl),
                    method="GET",
                )
                for chart in cached["charts"]
            ],
        )

    # -- derived versions ----------------------------------------------------------------------

    async def clean_version(
        self,
        name: str,
        operations: Sequence[data_service_pb2.CleaningOperation],
        description: str,
        request_id: str,
    ) -> dataset_pb2.DatasetVersion:
        steps = [_operation(op, f"operations[{i}]") for i, op in enumerate(operations)]
        if not steps:
            raise InvalidArgument.field("operations", "give at least one cleaning operation")
        if len(steps) > MAX_OPERATIONS:
            raise InvalidArgument.field("operations", f"at most {MAX_OPERATIONS} operations")
        check_text(description, "description", 4000)
        row = await self.db.run(lambda s: self._version_row(s, name, "name", ready=True))
        existing = await self._existing_by_request(row.dataset_uid, request_id)
        if existing is not None:
            return existing
        kind = Kind(row.kind)
        rows, reports = await asyncio.to_thread(
            cleaning.run_pipeline, await self._load_rows(row), kind, steps
        )
        if not rows:
            raise FailedPrecondition(
                "the pipeline removed every row; nothing would be left to train on", reason="EMPTY_RESULT"
            )
        return await self._store_version(
            row.dataset_uid,
            _NewVersion(
                kind=kind,
                rows=rows,
                source_file=version_name(row),
                recipe={
                    "type": "cleaning",
                    "source": version_name(row),
                    "operations": [{"name": s.name, **s.params} for s in steps],
                },
                cleaning=[r.__dict__ for r in reports],
                description=description or f"cleaned from {version_name(row)}",
                request_id=request_id,
            ),
        )

    async def split_version(
        self, name: str, validation_ratio: float, seed: int, request_id: str
    ) -> tuple[dataset_pb2.DatasetVersion, dataset_pb2.DatasetVersion]:
        if not 0 < validation_ratio <= 0.5:
            raise InvalidArgument.field(
                "validation_ratio", f"must be above 0 and at most 0.5 (got {validation_ratio})"
            )
        check_text(request_id, "request_id", 128)
        row = await self.db.run(lambda s: self._version_row(s, name, "name", ready=True))
        rows = await self._load_rows(row)
        if len(rows) < 2:
            raise FailedPrecondition(
                f"{version_name(row)} has {len(rows)} row; a split needs at least 2", reason="TOO_FEW_ROWS"
            )
        train, validation = mixing.split(rows, validation_ratio, seed)
        recipe = {
            "type": "split",
            "source": version_name(row),
            "validation_ratio": validation_ratio,
            "seed": seed,
        }
        out = []
        for part, part_rows in (("train", train), ("validation", validation)):
            out.append(
                await self._store_version(
                    row.dataset_uid,
                    _NewVersion(
                        kind=Kind(row.kind),
                        rows=part_rows,
                        source_file=version_name(row),
                        recipe={**recipe, "part": part},
                        description=f"{part} split of {version_name(row)}",
                        tags={"split": part},
                        request_id=f"{request_id}#{part}" if request_id else "",
                    ),
                )
            )
        return out[0], out[1]

    async def _sources(
        self, project: str, refs: Sequence[common_pb2.DatasetVersionRef]
    ) -> tuple[list[mixing.Source], Kind, list[str]]:
        if not refs:
            raise InvalidArgument.field("sources", "give at least one dataset version with its sampling rate")
        if len(refs) > MAX_SOURCES:
            raise InvalidArgument.field("sources", f"at most {MAX_SOURCES} sources")
        sources, kinds, names = [], set(), []
        for i, ref in enumerate(refs):
            field_name = f"sources[{i}]"
            parts = VERSION.parse(ref.dataset_version, f"{field_name}.dataset_version")
            if parts["project"] != project:
                raise InvalidArgument.field(
                    f"{field_name}.dataset_version", f"mixtures stay inside project {project}"
                )
            if not 0.01 <= ref.sampling_rate <= 10:
                raise InvalidArgument.field(
                    f"{field_name}.sampling_rate", f"must be between 0.01 and 10 (got {ref.sampling_rate})"
                )
            row = await self.db.run(
                lambda s, ref=ref, f=field_name: self._version_row(
                    s, ref.dataset_version, f"{f}.dataset_version", ready=True
                )
            )
            kinds.add(row.kind)
            label = f"{row.dataset.dataset_id}/v{row.number}"
            sources.append(
                mixing.Source(label=label, rows=await self._load_rows(row), sampling_rate=ref.sampling_rate)
            )
            names.append(version_name(row))
        if len(kinds) > 1:
            raise InvalidArgument.field(
                "sources", f"every source must be of one kind; these are {', '.join(sorted(kinds))}"
            )
        return sources, Kind(kinds.pop()), names

    async def plan_mixture(
        self, parent: str, refs: Sequence[common_pb2.DatasetVersionRef], seed: int
    ) -> dataset_pb2.MixturePlan:
        project = PROJECT.parse(parent, "parent")["project"]
        require_project(project)
        sources, kind, names = await self._sources(project, refs)
        plans = await asyncio.to_thread(mixing.plan, sources, kind, seed)
        return _plan_proto(plans, names, kind, seed)

    async def create_mixture(
        self,
        parent: str,
        refs: Sequence[common_pb2.DatasetVersionRef],
        seed: int,
        description: str,
        request_id: str,
    ) -> dataset_pb2.DatasetVersion:
        parts = parse_in_project(DATASET, parent, "parent")
        check_text(description, "description", 4000)
        dataset = await self.db.run(lambda s: self._find_dataset(s, parts["project"], parts["dataset"]))
        existing = await self._existing_by_request(dataset.uid, request_id)
        if existing is not None:
            return existing
        sources, kind, names = await self._sources(parts["project"], refs)
        if kind.value != dataset.kind:
            raise InvalidArgument.field(
                "parent", f"{parent} holds {dataset.kind} data; the sources are {kind.value}"
            )
        plans = await asyncio.to_thread(mixing.plan, sources, kind, seed)
        rows = await asyncio.to_thread(mixing.materialize, sources, plans, seed)
        plan = _plan_proto(plans, names, kind, seed)
        return await self._store_version(
            dataset.uid,
            _NewVersion(
                kind=kind,
                rows=rows,
                source_file="mixture",
                recipe={
                    "type": "mixture",
                    "seed": seed,
                    "plan": json_format.MessageToDict(plan, preserving_proto_field_name=True),
                },
                description=description or "mixture of " + ", ".join(names),
                request_id=request_id,
            ),
        )

    # -- presets -------------------------------------------------------------------------------

    async def install_preset(
        self, parent: str, preset: str, request_id: str
    ) -> tuple[list[dataset_pb2.DatasetVersion], str]:
        project = PROJECT.parse(parent, "parent")["project"]
        require_project(project)
        preset_id = PRESET.parse(preset, "preset")["preset"]
        if preset_id == presets.GENERAL_ID:
            datasets, all_rows = presets.GENERAL_DATASETS, await asyncio.to_thread(presets.general_rows)
        elif preset_id in presets.PRESETS:
            spec = presets.PRESETS[preset_id]
            datasets, all_rows = spec.datasets, await asyncio.to_thread(presets.rows, spec)
        else:
            raise NotFound(f"preset {preset} does not exist; `ListPresets` shows them")
        versions = []
        for dataset_id, kind in datasets.items():
            dataset = await self._ensure_dataset(project, dataset_id, kind, preset_id)
            key = f"{request_id or 'install'}:{preset_id}"
            existing = await self._existing_by_request(dataset.uid, key) if request_id else None
            if existing is not None:
                versions.append(existing)
                continue
            with tempfile.TemporaryDirectory(dir=self.limits.spool_dir) as tmp:
                path = Path(tmp) / f"{dataset_id}.jsonl"
                await asyncio.to_thread(
                    path.write_text,
                    "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in all_rows[dataset_id]),
                    "utf-8",
                )
                versions.append(
                    await self._ingest(
                        dataset,
                        path,
                        IngestOptions(filename=path.name, schema=Schema.CANONICAL, policy=Policy.FAIL),
                        f"installed from preset {preset_id}",
                        {"preset": preset_id},
                        key if request_id else "",
                        "preset",
                    )
                )
        return versions, preset_id

    async def _ensure_dataset(self, project: str, dataset_id: str, kind: Kind, preset_id: str) -> DatasetRow:
        def ensure(session: Session) -> DatasetRow:
            row = session.scalar(
                select(DatasetRow).where(DatasetRow.project == project, DatasetRow.dataset_id == dataset_id)
            )
            if row is not None:
                if row.kind != kind.value:
                    raise FailedPrecondition(
                        f"dataset {dataset_id} already exists with kind {row.kind}; the preset needs {kind.value}",
                        reason="KIND_CONFLICT",
                    )
                return row
            return self._insert_dataset(
                session, project, dataset_id, kind, "", f"from preset {preset_id}", {"preset": preset_id}, ""
            )

        return await self.outbox.write(self.db, ensure)


def preset_proto(preset_id: str) -> dataset_pb2.Preset:
    if preset_id == presets.GENERAL_ID:
        return dataset_pb2.Preset(
            name=f"presets/{presets.GENERAL_ID}",
            display_name="通用语料 (general corpus)",
            description=presets.GENERAL_DESCRIPTION,
            method="sft",
            datasets={k: v.value for k, v in presets.GENERAL_DATASETS.items()},
            train_rows=400,
            eval_rows=0,
        )
    spec = presets.PRESETS[preset_id]
    return dataset_pb2.Preset(
        name=f"presets/{spec.id}",
        display_name=spec.display_name,
        description=spec.description,
        method=spec.method,
        hyperparameters=struct(spec.hyperparameters),
        metrics=list(spec.metrics),
        datasets={k: v.value for k, v in spec.datasets.items()},
        train_rows=spec.train_rows,
        eval_rows=spec.eval_rows,
    )


def all_presets() -> list[dataset_pb2.Preset]:
    return [preset_proto(p) for p in [*presets.PRESETS, presets.GENERAL_ID]]


def get_preset(name: str) -> dataset_pb2.Preset:
    preset_id = PRESET.parse(name, "name")["preset"]
    if preset_id != presets.GENERAL_ID and preset_id not in presets.PRESETS:
        raise NotFound(f"preset {name} does not exist")
    return preset_proto(preset_id)


def _plan_proto(
    plans: list[mixing.SourcePlan], names: list[str], kind: Kind, seed: int
) -> dataset_pb2.MixturePlan:
    return dataset_pb2.MixturePlan(
        sources=[
            dataset_pb2.MixtureSource(
                source=common_pb2.DatasetVersionRef(dataset_version=name, sampling_rate=p.sampling_rate),
                characters=p.characters,
                samples=p.samples,
                sampled_samples=p.sampled_samples,
                sampled_characters=p.sampled_characters,
                share=p.share,
            )
            for p, name in zip(plans, names, strict=True)
        ],
        total_samples=sum(p.sampled_samples for p in plans),
        total_characters=sum(p.sampled_characters for p in plans),
        kind=KIND_TO_PROTO[kind],
        seed=seed,
    )


def _operation(message: data_service_pb2.CleaningOperation, field_name: str) -> cleaning.Operation:
    which = message.WhichOneof("operation")
    if which is None:
        raise InvalidArgument.field(field_name, "choose an operation: " + ", ".join(cleaning.OPERATIONS))
    body = getattr(message, which)
    path = f"{field_name}.{which}"
    if which == "near_dedup":
        threshold = body.threshold or 0.8
        if not 0 < threshold <= 1:
            raise InvalidArgument.field(f"{path}.threshold", "must be above 0 and at most 1")
        shingle = body.shingle_size or 5
        if not 1 <= shingle <= 32:
            raise InvalidArgument.field(f"{path}.shingle_size", "must be between 1 and 32")
        num_perm = body.num_perm or 128
        if not 16 <= num_perm <= 1024:
            raise InvalidArgument.field(f"{path}.num_perm", "must be between 16 and 1024")
        return cleaning.Operation(
            which, {"threshold": threshold, "shingle_size": shingle, "num_perm": num_perm}
        )
    if which == "length_filter":
        for attribute in ("min_characters", "max_characters", "min_response_characters"):
            if getattr(body, attribute) < 0:
                raise InvalidArgument.field(f"{path}.{attribute}", "must not be negative")
        if body.max_characters and body.max_characters < body.min_characters:
            raise InvalidArgument.field(f"{path}.max_characters", "must not be below min_characters")
        return cleaning.Operation(
            which,
            {
                "min_characters": body.min_characters,
                "max_characters": body.max_characters,
                "min_response_characters": body.min_response_characters,
            },
        )
    if which == "mask_pii":
        unknown = [k for k in body.kinds if k not in pii.KINDS]
        if unknown:
            raise InvalidArgument.field(
                f"{path}.kinds", f"unknown kinds {unknown}; choose from {', '.join(pii.KINDS)}"
            )
        return cleaning.Operation(which, {"kinds": list(body.kinds)})
    if which == "regex_filter":
        try:
            re.compile(body.pattern)
        except re.error as exc:
            raise InvalidArgument.field(f"{path}.pattern", f"not a valid regular expression: {exc}") from None
        if not body.pattern:
            raise InvalidArgument.field(f"{path}.pattern", "is empty")
        return cleaning.Operation(which, {"pattern": body.pattern, "keep_matching": body.keep_matching})
    if which == "keyword_filter":
        if not [k for k in body.keywords if k.strip()]:
            raise InvalidArgument.field(f"{path}.keywords", "give at least one keyword")
        return cleaning.Operation(which, {"keywords": list(body.keywords)})
    return cleaning.Operation(which)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()
