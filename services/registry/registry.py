"""The model registry's domain logic: models, immutable versions, aliases, uploads and downloads.

Handlers in `server.py` call these methods with API messages; everything here runs without grpc.
Every change is written with its event in one transaction (the outbox), so an event is published
exactly for the changes that were stored.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import sys
import tarfile
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.kit.auth import principal_var, require_project
from services.kit.db import Database, keyset_page
from services.kit.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from services.kit.names import PROJECT, PageTokens, check_id, check_tags, check_text, page_size, parse_filter
from services.kit.outbox import Outbox
from services.kit.store import ObjectStore
from services.kit.times import as_utc, utcnow
from services.registry import weights
from services.registry.catalog import read_catalog
from services.registry.convert import (
    MODEL,
    UPLOAD,
    alias_to_proto,
    model_to_proto,
    timestamp,
    version_name,
    version_to_proto,
)
from services.registry.repo import AliasHistoryRow, AliasRow, ModelRow, UploadRow, VersionRow
from services.registry.validation import (
    ALIAS_NAME,
    MANIFEST_FILE,
    RESERVED_ALIASES,
    SHA256_HEX,
    UPLOAD_NAME,
    VERSION,
    VERSION_SEGMENT,
    RegistryLimits,
    VersionSpec,
    check_alias,
    check_declared_files,
    check_metrics,
    check_version_spec,
    detect_kind,
    resolve_update_mask,
)
from tuneforge.common.v1 import common_pb2
from tuneforge.events.v1 import registry_events_pb2
from tuneforge.registry.v1 import model_pb2, registry_service_pb2

SOURCE = "tuneforge/registry"
# Operation -> the targets it takes (empty: none).
DERIVATIONS = {"merge_lora": (), "convert_dtype": ("bfloat16", "float16"), "quantize": ("int8", "int4")}
HEAD_BYTES = 64 * 1024
# Download messages: large enough to keep per-message overhead small, well under the 16 MiB limit.
DOWNLOAD_CHUNK_BYTES = 4 * 1024 * 1024


@dataclass
class _Lineage:
    base_model_ref: str
    base_version_uid: str | None
    parent_version_uid: str | None


class ModelRegistry:
    """Models, versions and aliases of every project, stored in SQL and S3."""

    def __init__(
        self,
        db: Database,
        store: ObjectStore,
        outbox: Outbox,
        page_tokens: PageTokens,
        limits: RegistryLimits,
    ) -> None:
        self.db = db
        self.store = store
        self.outbox = outbox
        self.page_tokens = page_tokens
        self.limits = limits

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _project(parent: str, field: str = "parent") -> str:
        project = PROJECT.parse(parent, field)["project"]
        require_project(project)
        return project

    @staticmethod
    def _model_ref(name: str, field: str) -> tuple[str, str]:
        parts = MODEL.parse(name, field)
        require_project(parts["project"])
        return parts["project"], parts["model"]

    @staticmethod
    def _find_model(session: Session, project: str, model_id: str, *, lock: bool = False) -> ModelRow:
        query = select(ModelRow).where(ModelRow.project == project, ModelRow.model_id == model_id)
        if lock:
            query = query.with_for_update()
        row = session.scalar(query)
        if row is None:
            raise NotFound(f"model projects/{project}/models/{model_id} does not exist")
        return row

    @staticmethod
    def _stats(session: Session, uids: Sequence[str]) -> dict[str, tuple[int, int | None]]:
        if not uids:
            return {}
        rows = session.execute(
            select(VersionRow.model_uid, func.count(), func.max(VersionRow.number))
            .where(VersionRow.model_uid.in_(uids))
            .group_by(VersionRow.model_uid)
        ).all()
        return {uid: (count, latest) for uid, count, latest in rows}

    def _model_proto(self, session: Session, row: ModelRow) -> model_pb2.Model:
        count, latest = self._stats(session, [row.uid]).get(row.uid, (0, None))
        return model_to_proto(row, count, latest)

    @staticmethod
    def _aliases_of(session: Session, version_uids: Sequence[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        if version_uids:
            for version_uid, alias in session.execute(
                select(AliasRow.version_uid, AliasRow.alias).where(AliasRow.version_uid.in_(version_uids))
            ):
                out.setdefault(version_uid, []).append(alias)
        return out

    def _version_proto(self, session: Session, row: VersionRow) -> model_pb2.ModelVersion:
        return version_to_proto(row, self._aliases_of(session, [row.uid]).get(row.uid, []))

    @staticmethod
    def _resolve_version(
        session: Session, project: str, model_id: str, segment: str, field: str
    ) -> VersionRow:
        model = ModelRegistry._find_model(session, project, model_id)
        if VERSION_SEGMENT.match(segment):
            row = session.scalar(
                select(VersionRow).where(VersionRow.model_uid == model.uid, VersionRow.number == int(segment))
            )
            if row is None:
                raise NotFound(f"version {segment} of projects/{project}/models/{model_id} does not exist")
            return row
        if segment == "latest":
            row = session.scalar(
                select(VersionRow)
                .where(VersionRow.model_uid == model.uid)
                .order_by(VersionRow.number.desc())
                .limit(1)
            )
            if row is None:
                raise NotFound(f"projects/{project}/models/{model_id} has no versions yet")
            return row
        alias = session.get(AliasRow, (model.uid, segment))
        if alias is None:
            raise NotFound(
                f"projects/{project}/models/{model_id} has no alias {segment!r}", reason="ALIAS_NOT_FOUND"
            )
        return alias.version

    def _version_by_name(self, session: Session, name: str, field: str) -> VersionRow:
        parts = VERSION.parse(name, field)
        require_project(parts["project"])
        return self._resolve_version(session, parts["project"], parts["model"], parts["version"], field)

    # -- models --------------------------------------------------------------------------------

    async def create_model(
        self, parent: str, model_id: str, model: model_pb2.Model, request_id: str
    ) -> model_pb2.Model:
        project = self._project(parent)
        check_id(model_id, "model_id", what="model id")
        display_name = check_text(model.display_name, "model.display_name", 200)
        description = check_text(model.description, "model.description", 4000)
        tags = check_tags(dict(model.tags), "model.tags")
        check_text(request_id, "request_id", 128)

        def create(session: Session) -> model_pb2.Model:
            if request_id:
                existing = session.scalar(
                    select(ModelRow).where(ModelRow.project == project, ModelRow.request_id == request_id)
                )
                if existing is not None:
                    return self._model_proto(session, existing)
            if session.scalar(
                select(ModelRow.uid).where(ModelRow.project == project, ModelRow.model_id == model_id)
            ):
                raise AlreadyExists(f"model projects/{project}/models/{model_id} already exists")
            now = utcnow()
            row = ModelRow(
                uid=uuid.uuid4().hex,
                project=project,
                model_id=model_id,
                display_name=display_name or model_id,
                description=description,
                tags=tags,
                next_version=1,
                request_id=request_id or None,
                create_time=now,
                update_time=now,
            )
            session.add(row)
            session.flush()
            proto = model_to_proto(row)
            self.outbox.emit(
                session, "model", "created", proto.name, project, registry_events_pb2.ModelEvent(model=proto)
            )
            return proto

        try:
            return await self.outbox.write(self.db, create)
        except IntegrityError:
            # A concurrent twin won the insert: the retry finds it (same request id) or reports the clash.
            return await self.outbox.write(self.db, create)

    async def get_model(self, name: str) -> model_pb2.Model:
        project, model_id = self._model_ref(name, "name")
        return await self.db.run(lambda s: self._model_proto(s, self._find_model(s, project, model_id)))

    async def list_models(
        self, parent: str, size: int, token: str, filter_text: str, order_by: str
    ) -> tuple[list[model_pb2.Model], str]:
        project = self._project(parent)
        size = page_size(size)
        terms = parse_filter(
            filter_text, lambda k: k == "model_id" or bool(re.match(r"^tags\.[a-z][a-z0-9_.\-]*$", k))
        )

        def list_(session: Session) -> tuple[list[model_pb2.Model], str]:
            query = select(ModelRow).where(ModelRow.project == project)
            for key, value in terms:
                if key == "model_id":
                    query = query.where(ModelRow.model_id == value)
                else:
                    query = query.where(ModelRow.tags[key.removeprefix("tags.")].as_string() == value)
            rows, next_token = keyset_page(
                session,
                query,
                tokens=self.page_tokens,
                columns={
                    "create_time": ModelRow.create_time,
                    "update_time": ModelRow.update_time,
                    "model_id": ModelRow.model_id,
                },
                order_by=order_by,
                default_order="create_time",
                tie=ModelRow.uid,
                size=size,
                token=token,
                context=f"ListModels|{project}|{filter_text}",
            )
            stats = self._stats(session, [r.uid for r in rows])
            return [model_to_proto(r, *stats.get(r.uid, (0, None))) for r in rows], next_token

        return await self.db.run(list_)

    async def update_model(self, model: model_pb2.Model, mask_paths: Sequence[str]) -> model_pb2.Model:
        project, model_id = self._model_ref(model.name, "model.name")
        paths = resolve_update_mask(mask_paths, model, {"display_name", "description", "tags"})
        if "display_name" in paths:
            check_text(model.display_name, "model.display_name", 200)
        if "description" in paths:
            check_text(model.description, "model.description", 4000)
        tags = check_tags(dict(model.tags), "model.tags") if "tags" in paths else None

        def update_(session: Session) -> model_pb2.Model:
            row = self._find_model(session, project, model_id, lock=True)
            if "display_name" in paths:
                row.display_name = model.display_name or model_id
            if "description" in paths:
                row.description = model.description
            if tags is not None:
                row.tags = tags
            row.update_time = utcnow()
            session.flush()
            proto = self._model_proto(session, row)
            self.outbox.emit(
                session, "model", "updated", proto.name, project, registry_events_pb2.ModelEvent(model=proto)
            )
            return proto

        return await self.outbox.write(self.db, update_)

    async def delete_model(self, name: str, force: bool) -> None:
        project, model_id = self._model_ref(name, "name")

        def delete_(session: Session) -> str:
            row = self._find_model(session, project, model_id, lock=True)
            aliases = session.scalars(select(AliasRow.alias).where(AliasRow.model_uid == row.uid)).all()
            if aliases:
                raise FailedPrecondition(
                    f"{name} cannot be deleted while aliases point at its versions: {', '.join(sorted(aliases))}; "
                    "remove them first",
                    reason="ALIASED",
                )
            versions = session.scalars(select(VersionRow).where(VersionRow.model_uid == row.uid)).all()
            if versions and not force:
                raise FailedPrecondition(
                    f"{name} has {len(versions)} versions; delete them first or pass force",
                    reason="HAS_VERSIONS",
                )
            uids = [v.uid for v in versions]
            if uids:
                dependents = session.scalars(
                    select(VersionRow).where(
                        VersionRow.model_uid != row.uid,
                        or_(VersionRow.base_version_uid.in_(uids), VersionRow.parent_version_uid.in_(uids)),
                    )
                ).all()
                if dependents:
                    raise FailedPrecondition(
                        f"{name} cannot be deleted: other versions build on its versions: "
                        + ", ".join(version_name(d) for d in dependents[:10]),
                        reason="HAS_DESCENDANTS",
                    )
            model_proto = self._model_proto(session, row)
            # Children before parents, so the self-referencing foreign keys hold at each step.
            for version in sorted(versions, key=lambda v: -v.number):
                proto = version_to_proto(version)
                session.delete(version)
                session.flush()
                self.outbox.emit(
                    session,
                    "model_version",
                    "deleted",
                    proto.name,
                    project,
                    registry_events_pb2.ModelVersionEvent(model_version=proto),
                )
            session.execute(delete(UploadRow).where(UploadRow.model_uid == row.uid))
            session.delete(row)
            self.outbox.emit(
                session,
                "model",
                "deleted",
                model_proto.name,
                project,
                registry_events_pb2.ModelEvent(model=model_proto),
            )
            return row.uid

        model_uid = await self.outbox.write(self.db, delete_)
        await self.store.delete_prefix(f"models/{model_uid}/")

    # -- versions: creation ---------------------------------------------------------------------

    def _resolve_lineage(self, session: Session, project: str, spec: VersionSpec, field: str) -> _Lineage:
        def local_version(name: str, subfield: str) -> VersionRow:
            parts = VERSION.parse(name, subfield)
            if parts["project"] != project:
                raise InvalidArgument.field(
                    subfield, f"{name} is in another project; lineage stays inside project {project}"
                )
            try:
                return self._resolve_version(session, project, parts["model"], parts["version"], subfield)
            except NotFound as exc:
                raise InvalidArgument.field(subfield, exc.message) from None

        base_uid = None
        base_ref = spec.base_model
        if spec.base_model.startswith("projects/"):
            base_uid = local_version(spec.base_model, f"{field}.lineage.base_model").uid
            base_ref = ""
        parent_uid = None
        if spec.parent_version:
            parent_uid = local_version(spec.parent_version, f"{field}.lineage.parent_version").uid
        return _Lineage(base_ref, base_uid, parent_uid)

    def _find_by_request_id(self, session: Session, model_uid: str, request_id: str) -> VersionRow | None:
        if not request_id:
            return None
        return session.scalar(
            select(VersionRow).where(VersionRow.model_uid == model_uid, VersionRow.request_id == request_id)
        )

    def _insert_version(
        self,
        session: Session,
        *,
        model_uid: str,
        version_uid: str,
        spec: VersionSpec,
        files: list[dict[str, Any]],
        request_id: str,
        field: str,
        catalog: dict[str, Any] | None = None,
    ) -> model_pb2.ModelVersion:
        model = session.get(ModelRow, model_uid)
        if model is None:
            raise FailedPrecondition(
                "the model was deleted while the version was uploading", reason="MODEL_DELETED"
            )
        existing = self._find_by_request_id(session, model_uid, request_id)
        if existing is not None:
            return self._version_proto(session, existing)
        lineage = self._resolve_lineage(session, model.project, spec, field)
        number = (
            session.execute(
                update(ModelRow)
                .where(ModelRow.uid == model_uid)
                .values(next_version=ModelRow.next_version + 1)
                .returning(ModelRow.next_version)
            ).scalar_one()
            - 1
        )
        now = utcnow()
        row = VersionRow(
            uid=version_uid,
            model_uid=model_uid,
            number=number,
            description=spec.description,
            tags=spec.tags,
            kind=detect_kind([f["path"] for f in files]),
            files=files,
            total_size_bytes=sum(f["size_bytes"] for f in files),
            base_model_ref=lineage.base_model_ref,
            base_version_uid=lineage.base_version_uid,
            parent_version_uid=lineage.parent_version_uid,
            source_job=spec.source_job,
            dataset_versions=spec.dataset_versions,
            hyperparameters=spec.hyperparameters,
            metrics=spec.metrics,
            storage_prefix=f"models/{model_uid}/versions/{version_uid}/",
            request_id=request_id or None,
            create_time=now,
            update_time=now,
            catalog=catalog or {},
        )
        session.add(row)
        session.flush()
        session.refresh(row)
        proto = version_to_proto(row)
        self.outbox.emit(
            session,
            "model_version",
            "created",
            proto.name,
            model.project,
            registry_events_pb2.ModelVersionEvent(model_version=proto),
        )
        return proto

    async def _write_manifest(self, prefix: str, files: list[dict[str, Any]]) -> None:
        manifest = {"files": sorted(files, key=lambda f: f["path"])}
        await self.store.put_bytes(
            prefix + MANIFEST_FILE, json.dumps(manifest, indent=1).encode(), content_type="application/json"
        )

    async def upload_version(
        self, requests: AsyncIterator[registry_service_pb2.UploadModelVersionRequest]
    ) -> model_pb2.ModelVersion:
        """Create a version from an upload stream; on any failure nothing is left behind."""
        first = await anext(requests, None)
        if first is None or first.WhichOneof("payload") != "header":
            raise InvalidArgument.field("header", "the first message of the stream must be the header")
        header = first.header
        project, model_id = self._model_ref(header.parent, "header.parent")
        spec = check_version_spec(header.model_version, "header.model_version")
        request_id = check_text(header.request_id, "header.request_id", 128)

        def prepare(session: Session) -> tuple[str, model_pb2.ModelVersion | None, str]:
            model = self._find_model(session, project, model_id)
            existing = self._find_by_request_id(session, model.uid, request_id)
            if existing is not None:
                return model.uid, self._version_proto(session, existing), ""
            self._resolve_lineage(session, project, spec, "header.model_version")
            upload_uid = uuid.uuid4().hex
            now = utcnow()
            # Recorded before any byte is stored: if this process dies mid-stream, the sweeper
            # finds the row once it expires and deletes what was stored.
            session.add(
                UploadRow(
                    uid=upload_uid,
                    model_uid=model.uid,
                    mode="stream",
                    spec=b"",
                    files=[],
                    storage_prefix=f"models/{model.uid}/versions/{upload_uid}/",
                    request_id=None,
                    version_uid=None,
                    expire_time=now + self.limits.upload_ttl,
                    create_time=now,
                )
            )
            return model.uid, None, upload_uid

        model_uid, existing, version_uid = await self.db.run(prepare)
        if existing is not None:
            return existing
        prefix = f"models/{model_uid}/versions/{version_uid}/"
        heartbeat = asyncio.create_task(self._keep_upload_alive(version_uid))
        try:
            files = await self._receive_files(requests, prefix)
            catalog = await read_catalog(self.store, prefix, files)

            def commit(session: Session) -> model_pb2.ModelVersion:
                proto = self._insert_version(
                    session,
                    model_uid=model_uid,
                    version_uid=version_uid,
                    spec=spec,
                    files=files,
                    request_id=request_id,
                    field="header.model_version",
                    catalog=catalog,
                )
                session.execute(delete(UploadRow).where(UploadRow.uid == version_uid))
                return proto

            await self._write_manifest(prefix, files)
            proto = await self.outbox.write(self.db, commit)
        except BaseException:
            await self._discard_upload(version_uid, prefix)
            raise
        finally:
            heartbeat.cancel()
        if proto.uid != version_uid:  # a concurrent retry with the same request id won
            await self._discard_upload(version_uid, prefix)
        return proto

    async def _keep_upload_alive(self, upload_uid: str) -> None:
        """Push a streaming upload's expiry forward while it runs, so only dead uploads are swept."""
        interval = self.limits.upload_ttl.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            expire = utcnow() + self.limits.upload_ttl
            await self.db.run(
                lambda s, expire=expire: s.execute(
                    update(UploadRow).where(UploadRow.uid == upload_uid).values(expire_time=expire)
                )
            )

    async def _discard_upload(self, upload_uid: str, prefix: str) -> None:
        await self.store.delete_prefix(prefix)
        await self.db.run(lambda s: s.execute(delete(UploadRow).where(UploadRow.uid == upload_uid)))

    async def _receive_files(
        self, requests: AsyncIterator[registry_service_pb2.UploadModelVersionRequest], prefix: str
    ) -> list[dict[str, Any]]:
        files: list[dict[str, Any]] = []
        seen: set[str] = set()
        total = 0
        message = await anext(requests, None)
        while True:
            if message is None:
                raise InvalidArgument.field(
                    "finish", "the stream ended before the finish message; nothing was stored"
                )
            kind = message.WhichOneof("payload")
            if kind == "finish":
                if message.finish.file_count != len(files):
                    raise InvalidArgument.field(
                        "finish.file_count",
                        f"says {message.finish.file_count} files but {len(files)} were sent",
                    )
                if not files:
                    raise InvalidArgument.field("chunk", "a version needs at least one file")
                return files
            if kind != "chunk":
                raise InvalidArgument.field(
                    kind or "payload", "only chunks and a finish message may follow the header"
                )
            index = len(files)
            field = f"files[{index}]"
            path = weights.check_path(message.chunk.path, f"{field}.path")
            if path == MANIFEST_FILE:
                raise InvalidArgument.field(f"{field}.path", f"{MANIFEST_FILE} is written by the registry")
            if path in seen:
                raise InvalidArgument.field(f"{field}.path", f"{path} was sent twice")
            seen.add(path)
            state: dict[str, Any] = {}
            stored = await self.store.put_stream(
                prefix + path,
                self._file_chunks(requests, message.chunk, path, field, state),
                max_bytes=min(self.limits.max_file_bytes, self.limits.max_version_bytes - total),
            )
            if state["sha256"] and state["sha256"] != stored.sha256:
                raise InvalidArgument.field(
                    f"{field}.sha256",
                    f"{path}: the client says sha256 {state['sha256'][:12]}… but the bytes received hash to "
                    f"{stored.sha256[:12]}…; the upload was corrupted in transit",
                    reason="CHECKSUM_MISMATCH",
                )
            total += stored.size_bytes
            files.append({"path": path, "size_bytes": stored.size_bytes, "sha256": stored.sha256})
            message = await anext(requests, None)

    @staticmethod
    async def _file_chunks(
        requests: AsyncIterator[registry_service_pb2.UploadModelVersionRequest],
        chunk: common_pb2.FileChunk,
        path: str,
        field: str,
        state: dict[str, Any],
    ) -> AsyncIterator[bytes]:
        """The data of one file: chunks up to the one marked eof. The head is checked first."""
        head = bytearray()
        checked = False
        while True:
            if not checked:
                head += chunk.data
                if len(head) >= HEAD_BYTES or chunk.eof:
                    weights.check_content(path, bytes(head), f"{field}.path")
                    checked = True
                    yield bytes(head)
            elif chunk.data:
                yield chunk.data
            if chunk.eof:
                if chunk.sha256 and not SHA256_HEX.match(chunk.sha256):
                    raise InvalidArgument.field(f"{field}.sha256", "must be 64 lower-case hex digits")
                state["sha256"] = chunk.sha256
                return
            message = await anext(requests, None)
            if message is None:
                raise InvalidArgument.field(
                    "finish", f"the stream ended in the middle of {path}; nothing was stored"
                )
            if message.WhichOneof("payload") != "chunk" or message.chunk.path != path:
                raise InvalidArgument.field(
                    f"{field}.eof", f"{path} was not finished (no chunk with eof) before the next message"
                )
            chunk = message.chunk

    async def create_upload(
        self,
        parent: str,
        spec_message: model_pb2.ModelVersion,
        files: Sequence[common_pb2.FileEntry],
        request_id: str,
    ) -> model_pb2.ModelVersionUpload:
        project, model_id = self._model_ref(parent, "parent")
        check_version_spec(spec_message, "model_version")
        declared = check_declared_files(files, self.limits)
        check_text(request_id, "request_id", 128)

        def create(session: Session) -> UploadRow:
            model = self._find_model(session, project, model_id)
            if request_id:
                existing = session.scalar(
                    select(UploadRow).where(
                        UploadRow.model_uid == model.uid, UploadRow.request_id == request_id
                    )
                )
                if existing is not None:
                    return existing
            self._resolve_lineage(
                session, project, check_version_spec(spec_message, "model_version"), "model_version"
            )
            uid = uuid.uuid4().hex
            now = utcnow()
            row = UploadRow(
                uid=uid,
                model_uid=model.uid,
                mode="presigned",
                spec=spec_message.SerializeToString(),
                files=declared,
                storage_prefix=f"models/{model.uid}/versions/{uid}/",
                request_id=request_id or None,
                version_uid=None,
                expire_time=now + self.limits.upload_ttl,
                create_time=now,
            )
            session.add(row)
            session.flush()
            return row

        row = await self.db.run(create)
        expires = min(self.limits.url_ttl, as_utc(row.expire_time) - utcnow())
        return model_pb2.ModelVersionUpload(
            name=UPLOAD.format(project=project, model=model_id, upload=row.uid),
            urls=[
                common_pb2.PresignedUrl(
                    path=f["path"],
                    url=self.store.presigned_put(
                        row.storage_prefix + f["path"], max(expires, timedelta(seconds=1))
                    ),
                    method="PUT",
                    sha256=f["sha256"],
                    size_bytes=f["size_bytes"],
                )
                for f in row.files
            ],
            expire_time=timestamp(row.expire_time),
        )

    async def commit_upload(self, name: str) -> model_pb2.ModelVersion:
        parts = UPLOAD_NAME.parse(name, "name")
        require_project(parts["project"])

        def load(session: Session) -> tuple[UploadRow, model_pb2.ModelVersion | None]:
            model = self._find_model(session, parts["project"], parts["model"])
            row = session.get(UploadRow, parts["upload"])
            if row is None or row.model_uid != model.uid or row.mode != "presigned":
                raise NotFound(f"upload {name} does not exist (it may have expired)")
            if row.version_uid:
                version = session.get(VersionRow, row.version_uid)
                if version is not None:
                    return row, self._version_proto(session, version)
            if as_utc(row.expire_time) < utcnow():
                raise FailedPrecondition(f"upload {name} expired; start a new one", reason="UPLOAD_EXPIRED")
            return row, None

        row, done = await self.db.run(load)
        if done is not None:
            return done
        spec_message = model_pb2.ModelVersion.FromString(row.spec)
        spec = check_version_spec(spec_message, "model_version")
        for i, declared in enumerate(row.files):
            key = row.storage_prefix + declared["path"]
            field = f"files[{i}]"
            if not await self.store.exists(key):
                raise FailedPrecondition(
                    f"{declared['path']} has not been uploaded yet; PUT it to its URL, then commit",
                    reason="FILE_MISSING",
                    metadata={"path": declared["path"]},
                )
            stored = await self.store.hash_object(key, head_bytes=HEAD_BYTES)
            weights.check_content(declared["path"], stored.head, f"{field}.path")
            if (stored.size_bytes, stored.sha256) != (declared["size_bytes"], declared["sha256"]):
                raise FailedPrecondition(
                    f"{declared['path']}: declared {declared['size_bytes']} bytes with sha256 {declared['sha256'][:12]}…, "
                    f"uploaded {stored.size_bytes} bytes with sha256 {stored.sha256[:12]}…; upload it again",
                    reason="CHECKSUM_MISMATCH",
                    metadata={"path": declared["path"]},
                )
        catalog = await read_catalog(self.store, row.storage_prefix, row.files)
        await self._write_manifest(row.storage_prefix, row.files)

        def commit(session: Session) -> model_pb2.ModelVersion:
            upload = session.get(UploadRow, row.uid, with_for_update=True)
            if upload is None:
                raise NotFound(f"upload {name} does not exist (it may have expired)")
            if upload.version_uid:
                version = session.get(VersionRow, upload.version_uid)
                if version is not None:
                    return self._version_proto(session, version)
            proto = self._insert_version(
                session,
                model_uid=row.model_uid,
                version_uid=row.uid,
                spec=spec,
                files=row.files,
                request_id="",
                field="model_version",
                catalog=catalog,
            )
            upload.version_uid = proto.uid
            return proto

        return await self.outbox.write(self.db, commit)

    async def sweep_expired_uploads(self) -> int:
        """Delete the stored files of uploads that expired uncommitted; return how many were swept."""
        now = utcnow()
        rows = await self.db.run(
            lambda s: [
                (r.uid, r.storage_prefix, r.version_uid)
                for r in s.scalars(select(UploadRow).where(UploadRow.expire_time < now))
            ]
        )
        for uid, prefix, committed in rows:
            if not committed:
                await self.store.delete_prefix(prefix)
            await self.db.run(lambda s, uid=uid: s.execute(delete(UploadRow).where(UploadRow.uid == uid)))
        return len(rows)

    # -- versions: reading, updating, deleting --------------------------------------------------

    async def get_version(self, name: str) -> model_pb2.ModelVersion:
        return await self.db.run(lambda s: self._version_proto(s, self._version_by_name(s, name, "name")))

    async def list_versions(
        self, parent: str, size: int, token: str, filter_text: str, order_by: str
    ) -> tuple[list[model_pb2.ModelVersion], str]:
        project, model_id = self._model_ref(parent, "parent")
        size = page_size(size)
        lineage_keys = {"lineage.parent_version", "lineage.base_model", "lineage.source_job"}
        terms = parse_filter(
            filter_text,
            lambda k: k == "kind" or k in lineage_keys or bool(re.match(r"^tags\.[a-z][a-z0-9_.\-]*$", k)),
        )

        def list_(session: Session) -> tuple[list[model_pb2.ModelVersion], str]:
            model = self._find_model(session, project, model_id)
            query = select(VersionRow).where(VersionRow.model_uid == model.uid)
            for key, value in terms:
                if key == "kind":
                    kinds = {
                        k.removeprefix("MODEL_VERSION_KIND_"): v
                        for k, v in model_pb2.ModelVersionKind.items()
                    }
                    if value.upper().removeprefix("MODEL_VERSION_KIND_") not in kinds:
                        raise InvalidArgument.field(
                            "filter", f"kind {value!r} is not one of {', '.join(kinds)}"
                        )
                    query = query.where(
                        VersionRow.kind == kinds[value.upper().removeprefix("MODEL_VERSION_KIND_")]
                    )
                elif key == "lineage.source_job":
                    query = query.where(VersionRow.source_job == value)
                elif key in ("lineage.parent_version", "lineage.base_model"):
                    column = (
                        VersionRow.parent_version_uid
                        if key.endswith("parent_version")
                        else VersionRow.base_version_uid
                    )
                    try:
                        target = self._version_by_name(session, value, "filter").uid
                    except (InvalidArgument, NotFound):
                        if key.endswith("base_model"):
                            query = query.where(VersionRow.base_model_ref == value)
                            continue
                        raise
                    query = query.where(column == target)
                else:
                    query = query.where(VersionRow.tags[key.removeprefix("tags.")].as_string() == value)
            rows, next_token = keyset_page(
                session,
                query,
                tokens=self.page_tokens,
                columns={"version": VersionRow.number, "create_time": VersionRow.create_time},
                order_by=order_by,
                default_order="version",
                tie=VersionRow.uid,
                size=size,
                token=token,
                context=f"ListModelVersions|{project}|{model_id}|{filter_text}",
            )
            aliases = self._aliases_of(session, [r.uid for r in rows])
            return [version_to_proto(r, aliases.get(r.uid, [])) for r in rows], next_token

        return await self.db.run(list_)

    async def update_version(
        self, version: model_pb2.ModelVersion, mask_paths: Sequence[str]
    ) -> model_pb2.ModelVersion:
        parts = VERSION.parse(version.name, "model_version.name")
        require_project(parts["project"])
        paths = resolve_update_mask(mask_paths, version, {"description", "tags", "metrics"})
        if "description" in paths:
            check_text(version.description, "model_version.description", 4000)
        tags = check_tags(dict(version.tags), "model_version.tags") if "tags" in paths else None
        metrics = (
            check_metrics(dict(version.metrics), "model_version.metrics") if "metrics" in paths else None
        )

        def update_(session: Session) -> model_pb2.ModelVersion:
            row = self._version_by_name(session, version.name, "model_version.name")
            if "description" in paths:
                row.description = version.description
            if tags is not None:
                row.tags = tags
            if metrics is not None:
                row.metrics = metrics
            row.update_time = utcnow()
            session.flush()
            proto = self._version_proto(session, row)
            self.outbox.emit(
                session,
                "model_version",
                "updated",
                proto.name,
                parts["project"],
                registry_events_pb2.ModelVersionEvent(model_version=proto),
            )
            return proto

        return await self.outbox.write(self.db, update_)

    async def delete_version(self, name: str) -> None:
        parts = VERSION.parse(name, "name")
        require_project(parts["project"])
        if not VERSION_SEGMENT.match(parts["version"]):
            raise InvalidArgument.field("name", "delete a version by its number, not by an alias")

        def delete_(session: Session) -> str:
            row = self._version_by_name(session, name, "name")
            aliases = self._aliases_of(session, [row.uid]).get(row.uid, [])
            if aliases:
                raise FailedPrecondition(
                    f"{name} cannot be deleted while aliases point at it: {', '.join(sorted(aliases))}; move or remove them first",
                    reason="ALIASED",
                )
            dependents = session.scalars(
                select(VersionRow).where(
                    or_(VersionRow.base_version_uid == row.uid, VersionRow.parent_version_uid == row.uid)
                )
            ).all()
            if dependents:
                raise FailedPrecondition(
                    f"{name} cannot be deleted: these versions build on it: "
                    + ", ".join(version_name(d) for d in dependents[:10]),
                    reason="HAS_DESCENDANTS",
                )
            proto = version_to_proto(row)
            prefix = row.storage_prefix
            session.delete(row)
            self.outbox.emit(
                session,
                "model_version",
                "deleted",
                proto.name,
                parts["project"],
                registry_events_pb2.ModelVersionEvent(model_version=proto),
            )
            return prefix

        prefix = await self.outbox.write(self.db, delete_)
        await self.store.delete_prefix(prefix)

    async def download(self, name: str, paths: Sequence[str]) -> AsyncIterator[common_pb2.FileChunk]:
        """The version's files as chunks; each file's last chunk comes only after it verified."""
        row = await self.db.run(lambda s: self._version_by_name(s, name, "name"))
        by_path = {f["path"]: f for f in row.files}
        if paths:
            missing = [p for p in paths if p not in by_path]
            if missing:
                raise InvalidArgument.field("paths", f"not in this version: {', '.join(missing)}")
            selected = [by_path[p] for p in paths]
        else:
            selected = row.files
        for entry in selected:
            previous: bytes | None = None
            async for data in self.store.iter_verified(
                row.storage_prefix + entry["path"],
                sha256=entry["sha256"],
                size_bytes=entry["size_bytes"],
                label=entry["path"],
                chunk_size=DOWNLOAD_CHUNK_BYTES,
            ):
                if previous is not None:
                    yield common_pb2.FileChunk(path=entry["path"], data=previous)
                previous = data
            yield common_pb2.FileChunk(
                path=entry["path"], data=previous or b"", eof=True, sha256=entry["sha256"]
            )

    async def download_urls(self, name: str) -> tuple[str, list[common_pb2.PresignedUrl]]:
        row = await self.db.run(lambda s: self._version_by_name(s, name, "name"))
        return version_name(row), [
            common_pb2.PresignedUrl(
                path=f["path"],
                url=self.store.presigned_get(row.storage_prefix + f["path"], self.limits.url_ttl),
                method="GET",
                sha256=f["sha256"],
                size_bytes=f["size_bytes"],
            )
            for f in row.files
        ]

    # -- aliases -------------------------------------------------------------------------------

    async def set_alias(self, parent: str, alias: str, version: str) -> model_pb2.ModelAlias:
        project, model_id = self._model_ref(parent, "parent")
        check_alias(alias, "alias")
        if alias in RESERVED_ALIASES:
            raise InvalidArgument.field("alias", f"{alias!r} is reserved")
        target = VERSION.parse(version, "version")
        if (target["project"], target["model"]) != (project, model_id):
            raise InvalidArgument.field("version", f"{version} is not a version of {parent}")

        def set_(session: Session) -> model_pb2.ModelAlias:
            model = self._find_model(session, project, model_id, lock=True)
            row_version = self._resolve_version(session, project, model_id, target["version"], "version")
            row = session.get(AliasRow, (model.uid, alias))
            previous = ""
            if row is None:
                row = AliasRow(
                    model_uid=model.uid, alias=alias, version_uid=row_version.uid, update_time=utcnow()
                )
                session.add(row)
            else:
                previous = version_name(row.version)
                row.version_uid = row_version.uid
                row.update_time = utcnow()
            session.flush()
            session.refresh(row)
            proto = alias_to_proto(row)
            self._record_alias(session, model.uid, alias, previous, proto.version)
            self.outbox.emit(
                session,
                "model_alias",
                "set",
                proto.name,
                project,
                registry_events_pb2.ModelAliasEvent(alias=proto, previous_version=previous),
            )
            return proto

        return await self.outbox.write(self.db, set_)

    def _alias_ref(self, name: str) -> dict[str, str]:
        parts = ALIAS_NAME.parse(name, "name")
        require_project(parts["project"])
        return parts

    def _find_alias(self, session: Session, parts: dict[str, str]) -> AliasRow:
        model = self._find_model(session, parts["project"], parts["model"])
        row = session.get(AliasRow, (model.uid, parts["alias"]))
        if row is None:
            raise NotFound(
                f"projects/{parts['project']}/models/{parts['model']} has no alias {parts['alias']!r}",
                reason="ALIAS_NOT_FOUND",
            )
        return row

    async def get_alias(self, name: str) -> model_pb2.ModelAlias:
        parts = self._alias_ref(name)
        return await self.db.run(lambda s: alias_to_proto(self._find_alias(s, parts)))

    async def list_aliases(
        self, parent: str, size: int, token: str
    ) -> tuple[list[model_pb2.ModelAlias], str]:
        project, model_id = self._model_ref(parent, "parent")
        size = page_size(size)

        def list_(session: Session) -> tuple[list[model_pb2.ModelAlias], str]:
            model = self._find_model(session, project, model_id)
            rows, next_token = keyset_page(
                session,
                select(AliasRow).where(AliasRow.model_uid == model.uid),
                tokens=self.page_tokens,
                columns={"alias": AliasRow.alias},
                order_by="",
                default_order="alias",
                tie=AliasRow.alias,
                size=size,
                token=token,
                context=f"ListModelAliases|{project}|{model_id}",
            )
            return [alias_to_proto(r) for r in rows], next_token

        return await self.db.run(list_)

    async def delete_alias(self, name: str) -> None:
        parts = self._alias_ref(name)

        def delete_(session: Session) -> None:
            row = self._find_alias(session, parts)
            proto = alias_to_proto(row)
            self._record_alias(session, row.model_uid, row.alias, proto.version, "")
            session.delete(row)
            self.outbox.emit(
                session,
                "model_alias",
                "deleted",
                proto.name,
                parts["project"],
                registry_events_pb2.ModelAliasEvent(alias=proto, previous_version=proto.version),
            )

        await self.outbox.write(self.db, delete_)

    # -- alias history, lineage, catalogue, export, derivation ----------------------------------

    @staticmethod
    def _record_alias(session: Session, model_uid: str, alias: str, before: str, after: str) -> None:
        principal = principal_var.get()
        session.add(
            AliasHistoryRow(
                model_uid=model_uid,
                alias=alias,
                from_version=before,
                to_version=after,
                actor=principal.key_id if principal else "",
                time=utcnow(),
            )
        )

    async def alias_history(self, parent: str) -> list[model_pb2.AliasHistoryEntry]:
        project, model_id = self._model_ref(parent, "parent")

        def list_(session: Session) -> list[model_pb2.AliasHistoryEntry]:
            model = self._find_model(session, project, model_id)
            rows = session.scalars(
                select(AliasHistoryRow)
                .where(AliasHistoryRow.model_uid == model.uid)
                .order_by(AliasHistoryRow.id)
            )
            return [
                model_pb2.AliasHistoryEntry(
                    alias=r.alias,
                    from_version=r.from_version,
                    to_version=r.to_version,
                    actor=r.actor,
                    time=timestamp(r.time),
                )
                for r in rows
            ]

        return await self.db.run(list_)

    async def lineage_graph(
        self, name: str
    ) -> tuple[str, list[model_pb2.LineageNode], list[model_pb2.LineageEdge]]:
        """Ancestors (base, parent, derivation source) and descendants of a version, with edges."""

        def walk(session: Session) -> tuple[str, list[model_pb2.LineageNode], list[model_pb2.LineageEdge]]:
            root = self._version_by_name(session, name, "name")
            seen: dict[str, VersionRow] = {root.uid: root}
            edges: set[tuple[str, str, str]] = set()
            frontier = [root]
            while frontier:  # ancestors
                row = frontier.pop()
                for relation, source in (("base", row.base_version), ("parent", row.parent_version)):
                    if source is None:
                        continue
                    if relation == "parent" and (row.catalog or {}).get("derivation"):
                        relation = "derived"
                    edges.add((row.uid, source.uid, relation))
                    if source.uid not in seen:
                        seen[source.uid] = source
                        frontier.append(source)
            frontier = [root]
            while frontier:  # descendants
                row = frontier.pop()
                children = session.scalars(
                    select(VersionRow).where(
                        or_(VersionRow.base_version_uid == row.uid, VersionRow.parent_version_uid == row.uid)
                    )
                ).all()
                for child in children:
                    if child.model.project != root.model.project:
                        continue
                    relation = (
                        "base"
                        if child.base_version_uid == row.uid
                        else "derived"
                        if (child.catalog or {}).get("derivation")
                        else "parent"
                    )
                    edges.add((child.uid, row.uid, relation))
                    if child.uid not in seen:
                        seen[child.uid] = child
                        frontier.append(child)
            aliases = self._aliases_of(session, list(seen))
            nodes = []
            for row in sorted(seen.values(), key=lambda r: r.create_time):
                proto = version_to_proto(row, aliases.get(row.uid, []))
                nodes.append(
                    model_pb2.LineageNode(
                        model_version=proto.name,
                        kind=proto.kind,
                        lineage=proto.lineage,
                        derivation=(row.catalog or {}).get("derivation", ""),
                        aliases=proto.aliases,
                    )
                )
            return (
                version_name(root),
                nodes,
                [
                    model_pb2.LineageEdge(
                        child=version_name(seen[c]), source=version_name(seen[p]), relation=r
                    )
                    for c, p, r in sorted(edges)
                ],
            )

        return await self.db.run(walk)

    async def search_catalog(self, parent: str, filter_text: str) -> list[tuple[model_pb2.ModelVersion, str]]:
        project = self._project(parent)
        keys = {"family", "kind", "method", "alias", "min_parameters", "max_parameters"}
        terms = parse_filter(
            filter_text, lambda k: k in keys or bool(re.match(r"^tags\.[a-z][a-z0-9_.\-]*$", k))
        )
        for key, value in terms:
            if key.endswith("_parameters") and not value.isdigit():
                raise InvalidArgument.field("filter", f"{key} takes a whole number (got {value!r})")

        def search(session: Session) -> list[tuple[model_pb2.ModelVersion, str]]:
            rows = session.scalars(
                select(VersionRow)
                .join(ModelRow)
                .where(ModelRow.project == project)
                .order_by(VersionRow.create_time.desc())
                .limit(1000)
            ).all()
            aliases = self._aliases_of(session, [r.uid for r in rows])
            out = []
            for row in rows:
                proto = version_to_proto(row, aliases.get(row.uid, []))
                method = (
                    str(row.hyperparameters.get("method", ""))
                    if row.source_job
                    else ("derived" if (row.catalog or {}).get("derivation") else "base")
                )
                facts = {
                    "family": proto.catalog.family,
                    "kind": model_pb2.ModelVersionKind.Name(proto.kind)
                    .removeprefix("MODEL_VERSION_KIND_")
                    .lower(),
                    "method": method,
                }
                keep = True
                for key, value in terms:
                    if key in facts:
                        keep &= facts[key] == value.lower() if key == "kind" else facts[key] == value
                    elif key == "alias":
                        keep &= value in proto.aliases
                    elif key == "min_parameters":
                        keep &= proto.catalog.parameter_count >= int(value)
                    elif key == "max_parameters":
                        keep &= proto.catalog.parameter_count <= int(value)
                    else:  # a version's own tags, then its model's
                        tag = key.removeprefix("tags.")
                        keep &= proto.tags.get(tag, row.model.tags.get(tag)) == value
                if keep:
                    out.append((proto, method))
            return out

        return await self.db.run(search)

    async def export_archive(self, name: str) -> AsyncIterator[bytes]:
        """The version's files as a tar stream (a plain Hugging Face folder), verified as read."""
        row = await self.db.run(lambda s: self._version_by_name(s, name, "name"))
        manifest = json.dumps({"model_version": version_name(row), "files": row.files}, indent=1).encode()
        for entry in [*row.files, {"path": MANIFEST_FILE, "size_bytes": len(manifest), "sha256": ""}]:
            info = tarfile.TarInfo(entry["path"])
            info.size = entry["size_bytes"]
            info.mode = 0o644
            info.mtime = int(row.create_time.timestamp())
            yield info.tobuf(format=tarfile.PAX_FORMAT)
            if entry["path"] == MANIFEST_FILE:
                yield manifest
            else:
                async for chunk in self.store.iter_verified(
                    row.storage_prefix + entry["path"],
                    sha256=entry["sha256"],
                    size_bytes=entry["size_bytes"],
                    label=entry["path"],
                    chunk_size=DOWNLOAD_CHUNK_BYTES,
                ):
                    yield chunk
            padding = -entry["size_bytes"] % tarfile.BLOCKSIZE
            if padding:
                yield b"\0" * padding
        yield b"\0" * (2 * tarfile.BLOCKSIZE)

    async def derive(
        self, name: str, operation: str, target: str, output_model: str, request_id: str
    ) -> model_pb2.ModelVersion:
        """Merge, convert or quantize a version in a child process (torch), and register the result."""
        if operation not in DERIVATIONS:
            raise InvalidArgument.field("operation", f"{operation!r} is not one of {', '.join(DERIVATIONS)}")
        allowed = DERIVATIONS[operation]
        if allowed and target not in allowed:
            raise InvalidArgument.field(
                "target", f"{operation} takes one of {', '.join(allowed)} (got {target!r})"
            )
        check_text(request_id, "request_id", 128)

        def load(session: Session) -> tuple[VersionRow, VersionRow | None, model_pb2.ModelVersion]:
            row = self._version_by_name(session, name, "name")
            return row, row.base_version, version_to_proto(row)  # relations read while the session is open

        source, base_row, source_proto = await self.db.run(load)
        project = source.model.project
        out_project, out_model = (
            self._model_ref(output_model, "output_model")
            if output_model
            else (project, source.model.model_id)
        )
        if out_project != project:
            raise InvalidArgument.field("output_model", "derived versions stay in the source's project")
        is_adapter = source.kind == model_pb2.MODEL_VERSION_KIND_LORA_ADAPTER
        if operation == "merge_lora" and not is_adapter:
            raise FailedPrecondition(
                f"{version_name(source)} is not a LoRA adapter; nothing to merge", reason="NOT_AN_ADAPTER"
            )
        if operation != "merge_lora" and source.kind != model_pb2.MODEL_VERSION_KIND_FULL:
            raise FailedPrecondition(
                f"{version_name(source)} is not a full model; merge the adapter first",
                reason="NOT_A_FULL_MODEL",
            )
        if operation == "merge_lora" and base_row is None:
            raise FailedPrecondition(
                f"{version_name(source)} names no registered base model to merge into", reason="NO_BASE"
            )
        if importlib.util.find_spec("torch") is None:
            raise FailedPrecondition(
                "this registry host has no torch: install tuneforge[worker] to derive models",
                reason="NO_TORCH",
            )
        key = request_id or f"derive-{source.uid}-{operation}-{target}"
        target_model = await self.db.run(lambda s: self._find_model(s, out_project, out_model))
        existing = await self.db.run(lambda s: self._find_by_request_id(s, target_model.uid, key))
        if existing is not None:
            return await self.db.run(lambda s: self._version_proto(s, s.get(VersionRow, existing.uid)))
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            await self._fetch(source, work / "source")
            if operation == "merge_lora":
                await self._fetch(base_row, work / "base")
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "services.registry.derive",
                operation,
                target,
                str(work),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            output, _ = await process.communicate()
            if process.returncode != 0:
                raise FailedPrecondition(
                    f"{operation} failed: {output.decode(errors='replace')[-600:]}",
                    reason="DERIVATION_FAILED",
                )
            lineage = model_pb2.Lineage(
                base_model=version_name(source.base_version)
                if source.base_version
                else source.base_model_ref,
                parent_version=version_name(source),
                source_job=source.source_job,
            )
            lineage.dataset_versions.extend(source_proto.lineage.dataset_versions)
            lineage.hyperparameters.update(source.hyperparameters)
            label = operation if operation == "merge_lora" else f"{operation}:{target}"
            spec = model_pb2.ModelVersion(
                description=f"{label} of {version_name(source)}",
                tags={"derivation": label},
                metrics={"source_size_bytes": float(source.total_size_bytes)},
                lineage=lineage,
            )
            return await self._create_from_folder(
                out_project,
                out_model,
                work / "output",
                spec,
                key,
                {"derivation": label, "derived_from": version_name(source)},
            )

    async def _fetch(self, row: VersionRow, folder: Path) -> None:
        for entry in row.files:
            target = folder / entry["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            await self.store.get_file(
                row.storage_prefix + entry["path"],
                target,
                sha256=entry["sha256"],
                size_bytes=entry["size_bytes"],
                label=entry["path"],
            )

    async def _create_from_folder(
        self,
        project: str,
        model_id: str,
        folder: Path,
        spec_message: model_pb2.ModelVersion,
        request_id: str,
        catalog_extra: dict[str, str],
    ) -> model_pb2.ModelVersion:
        """A new version from files on this host, through the same checks as an upload."""
        spec = check_version_spec(spec_message, "model_version")
        model = await self.db.run(lambda s: self._find_model(s, project, model_id))
        version_uid = uuid.uuid4().hex
        prefix = f"models/{model.uid}/versions/{version_uid}/"
        try:
            files = []
            paths = await asyncio.to_thread(lambda: sorted(p for p in folder.rglob("*") if p.is_file()))
            for path in paths:
                relative = weights.check_path(path.relative_to(folder).as_posix(), "files")
                head = await asyncio.to_thread(lambda p=path: p.open("rb").read(HEAD_BYTES))
                weights.check_content(relative, head, "files")
                await self.store.put_file(prefix + relative, path)
                stored = await self.store.hash_object(prefix + relative)
                files.append({"path": relative, "size_bytes": stored.size_bytes, "sha256": stored.sha256})
            catalog = {**await read_catalog(self.store, prefix, files), **catalog_extra}
            await self._write_manifest(prefix, files)
            spec.metrics["size_bytes"] = float(sum(f["size_bytes"] for f in files))
            return await self.outbox.write(
                self.db,
                lambda s: self._insert_version(
                    s,
                    model_uid=model.uid,
                    version_uid=version_uid,
                    spec=spec,
                    files=files,
                    request_id=request_id,
                    field="model_version",
                    catalog=catalog,
                ),
            )
        except BaseException:
            await self.store.delete_prefix(prefix)
            raise
