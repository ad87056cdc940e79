"""Uploading a file as a new version: a gRPC stream, or a presigned PUT then a commit.

Either way the file goes straight into the store, where the version will keep it as its source,
and is checked against the size and sha256 the client declared; only then is the version accepted
(PROCESSING) for a data worker to validate. An upload that does not finish, or does not match,
leaves no version and no bytes behind.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

from google.protobuf import json_format

from services.data.catalog import UPLOAD, DataCatalog
from services.data.convert import (
    DATASET,
    FORMAT_FROM_PROTO,
    SCHEMA_FROM_PROTO,
    TEXT_SPLIT_FROM_PROTO,
    enum_from_proto,
    policy_from_proto,
)
from services.data.formats import TextSplit
from services.data.ingest import ALIASES, MAPPABLE, IngestOptions
from services.data.repo import DatasetRow, DatasetUploadRow
from services.data.versions import NewVersion, Versions
from services.kit.auth import parse_in_project
from services.kit.errors import InvalidArgument, ResourceExhausted
from services.kit.names import check_tags, check_text
from services.kit.rows import Kind
from services.kit.store import StoredObject
from services.kit.times import to_timestamp
from services.kit.uploads import UploadSessions
from tuneforge.data.v1 import data_service_pb2, dataset_pb2

_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,199}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Upload:
    """An upload's settings, checked: how to read it, and what the version says of itself."""

    options: IngestOptions
    description: str
    tags: dict[str, str]
    provenance: dict[str, Any]


def parse_options(message: data_service_pb2.IngestOptions, field: str) -> Upload:
    """The ingest options, description, tags and provenance of an upload, checked."""
    if not _FILENAME.match(message.filename):
        raise InvalidArgument.field(
            f"{field}.filename",
            "give the file's name (letters, digits, '.', '_', '-'; it tells the format), e.g. train.jsonl",
        )
    provenance = json_format.MessageToDict(message.provenance) if message.HasField("provenance") else {}
    if len(json.dumps(provenance)) > 16_000:
        raise InvalidArgument.field(f"{field}.provenance", "is over 16 000 characters as JSON")
    return Upload(
        IngestOptions(
            filename=message.filename,
            format=enum_from_proto(message.format, FORMAT_FROM_PROTO, f"{field}.format"),
            schema=enum_from_proto(message.schema, SCHEMA_FROM_PROTO, f"{field}.schema"),
            policy=policy_from_proto(message.error_policy, f"{field}.error_policy"),
            columns=check_columns(dict(message.columns), f"{field}.columns"),
            text_split=enum_from_proto(message.text_split, TEXT_SPLIT_FROM_PROTO, f"{field}.text_split")
            or TextSplit.BLANK_LINE,
        ),
        check_text(message.description, f"{field}.description", 4000),
        check_tags(dict(message.tags), f"{field}.tags"),
        provenance,
    )


def check_columns(columns: dict[str, str], field: str) -> dict[str, str]:
    """A column mapping: known fields (aliases resolved) to distinct, non-empty column names."""
    if len(columns) > 32:
        raise InvalidArgument.field(field, f"maps {len(columns)} fields; at most 32")
    out: dict[str, str] = {}
    for target, source in sorted(columns.items()):
        name = ALIASES.get(target, target)
        if name not in MAPPABLE:
            raise InvalidArgument.field(
                f"{field}[{target[:64]}]",
                f"is not a field TuneForge reads; map one of {', '.join(sorted(MAPPABLE))}",
            )
        if not source.strip() or len(source) > 200:
            raise InvalidArgument.field(
                f"{field}[{target}]", "give the file's column name (1-200 characters)"
            )
        if name in out:
            raise InvalidArgument.field(f"{field}[{target}]", f"maps `{name}` a second time")
        out[name] = source
    if len(set(out.values())) != len(out):
        raise InvalidArgument.field(field, "maps one of the file's columns to two fields")
    return out


def ingest_version(
    catalog: DataCatalog,
    kind: Kind,
    upload: Upload,
    source: StoredObject,
    *,
    via: str,
    request_id: str,
    uid: str,
) -> NewVersion:
    """A version to be made by ingesting the stored file `source`."""
    options = upload.options
    recipe: dict[str, Any] = {
        "type": "upload",
        "via": via,
        "file": options.filename,
        "error_policy": options.policy.value,
    }
    if options.columns:
        recipe["columns"] = options.columns
    if options.text_split != TextSplit.BLANK_LINE:
        recipe["text_split"] = options.text_split.value
    if upload.provenance:
        recipe["provenance"] = upload.provenance
    return NewVersion(
        kind=kind,
        uid=uid,
        source_file=options.filename,
        task={
            "op": "ingest",
            "source": {"key": source.key, "size_bytes": source.size_bytes, "sha256": source.sha256},
            "options": {
                k: (v.value if v is not None else None)
                for k, v in asdict(options).items()
                if k not in ("filename", "columns")
            }
            | {"filename": options.filename, "columns": options.columns},
            "limits": {
                "max_line_bytes": catalog.limits.max_line_bytes,
                "max_decompressed_bytes": catalog.limits.max_decompressed_bytes,
            },
        },
        recipe=recipe,
        description=upload.description,
        tags=upload.tags,
        request_id=request_id,
    )


class Uploads:
    def __init__(self, catalog: DataCatalog, versions: Versions) -> None:
        self.catalog = catalog
        self.versions = versions
        self.sessions = UploadSessions(
            catalog.db,
            catalog.store,
            DatasetUploadRow,
            "dataset_uid",
            ttl=catalog.limits.upload_ttl,
            url_ttl=catalog.limits.url_ttl,
        )

    async def _dataset(self, parent: str, field: str) -> DatasetRow:
        parts = parse_in_project(DATASET, parent, field)
        return await self.catalog.db.run(
            lambda s: self.catalog.find_dataset(s, parts["project"], parts["dataset"])
        )

    async def upload(
        self, requests: AsyncIterator[data_service_pb2.UploadDatasetVersionRequest]
    ) -> dataset_pb2.DatasetVersion:
        """A stream: header, data chunks, finish (with the sha256 of what was sent)."""
        first = await anext(requests, None)
        if first is None or first.WhichOneof("payload") != "header":
            raise InvalidArgument.field("header", "the first message of the stream must be the header")
        header = first.header
        dataset = await self._dataset(header.parent, "header.parent")
        upload = parse_options(header.options, "header.options")
        request_id = check_text(header.request_id, "header.request_id", 128)
        existing = await self.versions.existing_by_request(dataset.uid, request_id)
        if existing is not None:
            return existing
        # Recorded before any byte is stored: if this process dies mid-stream, the sweeper finds
        # the session once it expires and deletes what was stored.
        session = await self.catalog.db.run(
            lambda s: self.sessions.open(
                s,
                dataset.uid,
                mode="stream",
                prefix=lambda uid: f"datasets/{dataset.uid}/versions/{uid}/source/",
            )
        )
        keep_alive = asyncio.create_task(self.sessions.keep_alive(session.uid))
        received: dict[str, Any] = {}
        try:
            key = session.storage_prefix + upload.options.filename
            stored = await self._receive(requests, key, upload.options, received)
            await self.catalog.check_storage(dataset.project, stored.size_bytes, "header.parent")
            new = ingest_version(
                self.catalog,
                Kind(dataset.kind),
                upload,
                stored,
                via="stream",
                request_id=request_id,
                uid=session.uid,
            )
            version = await self.versions.accept(dataset.uid, new)
        except BaseException:
            await self.sessions.discard(session.uid, session.storage_prefix)
            raise
        finally:
            keep_alive.cancel()
        if version.uid != session.uid:  # a concurrent retry with the same request id won
            await self.sessions.discard(session.uid, session.storage_prefix)
        else:
            await self.sessions.mark_committed(session.uid, version.uid)
        return version

    async def _receive(
        self,
        requests: AsyncIterator[data_service_pb2.UploadDatasetVersionRequest],
        key: str,
        options: IngestOptions,
        received: dict[str, Any],
    ) -> StoredObject:
        limit = self.catalog.limits.max_upload_bytes

        async def data() -> AsyncIterator[bytes]:
            while True:
                message = await anext(requests, None)
                if message is None:
                    raise InvalidArgument.field(
                        "finish", "the stream ended before the finish message; nothing was stored"
                    )
                which = message.WhichOneof("payload")
                if which == "data":
                    yield message.data
                elif which == "finish":
                    received["sha256"] = message.finish.sha256
                    if await anext(requests, None) is not None:
                        raise InvalidArgument.field(
                            "finish", "nothing may follow the finish message; nothing was stored"
                        )
                    return
                else:
                    raise InvalidArgument.field("header", "only one header may be sent")

        try:
            stored = await self.catalog.store.put_stream(key, data(), max_bytes=limit)
        except ResourceExhausted:
            raise ResourceExhausted(
                f"{options.filename} is larger than the upload limit of {limit} bytes",
                reason="FILE_TOO_LARGE",
            ) from None
        if received.get("sha256") and received["sha256"] != stored.sha256:
            raise InvalidArgument.field(
                "finish.sha256",
                "the bytes received do not match the sha256 the client sent; the upload was corrupted in transit",
                reason="CHECKSUM_MISMATCH",
            )
        return stored

    async def create(
        self,
        parent: str,
        options_message: data_service_pb2.IngestOptions,
        size_bytes: int,
        sha256: str,
        request_id: str,
    ) -> data_service_pb2.DatasetVersionUpload:
        options = parse_options(options_message, "options").options
        limit = self.catalog.limits.max_upload_bytes
        if not 0 < size_bytes <= limit:
            raise InvalidArgument.field("size_bytes", f"must be between 1 and {limit}")
        if not _SHA256.match(sha256):
            raise InvalidArgument.field("sha256", "must be 64 lower-case hex digits")
        check_text(request_id, "request_id", 128)
        dataset = await self._dataset(parent, "parent")
        await self.catalog.check_storage(dataset.project, size_bytes, "size_bytes")
        declared = [{"path": options.filename, "size_bytes": size_bytes, "sha256": sha256}]

        def open_(session: Any) -> DatasetUploadRow:
            return self.sessions.existing(session, dataset.uid, request_id) or self.sessions.open(
                session,
                dataset.uid,
                mode="presigned",
                prefix=lambda uid: f"datasets/{dataset.uid}/versions/{uid}/source/",
                files=declared,
                spec=options_message.SerializeToString(),
                request_id=request_id,
            )

        row = await self.catalog.db.run(open_)
        return data_service_pb2.DatasetVersionUpload(
            name=UPLOAD.format(project=dataset.project, dataset=dataset.dataset_id, upload=row.uid),
            url=self.sessions.urls(row)[0],
            expire_time=to_timestamp(row.expire_time),
        )

    async def commit(self, name: str) -> dataset_pb2.DatasetVersion:
        parts = parse_in_project(UPLOAD, name, "name")
        dataset = await self._dataset(f"projects/{parts['project']}/datasets/{parts['dataset']}", "name")
        row = await self.catalog.db.run(
            lambda s: self.sessions.for_commit(s, parts["upload"], dataset.uid, name)
        )
        if row.version_uid:
            return await self.versions.get_by_uid(row.version_uid)
        upload = parse_options(data_service_pb2.IngestOptions.FromString(row.spec), "options")
        stored = (await self.sessions.verify(row))[0]
        new = ingest_version(
            self.catalog,
            Kind(dataset.kind),
            upload,
            stored,
            via="presigned",
            request_id=f"upload:{row.uid}",
            uid=row.uid,
        )
        version = await self.versions.accept(dataset.uid, new)
        await self.sessions.mark_committed(row.uid, version.uid)
        return version

    async def sweep(self) -> int:
        return await self.sessions.sweep()
