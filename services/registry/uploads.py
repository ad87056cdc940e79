"""Uploading a new version: a gRPC stream of file chunks, or presigned PUTs then a commit.

Every file is checked as it arrives (`weights.py`: its path, then every byte: safetensors validated
whole, never a pickle or code) and hashed; the version exists only once every file is stored and verified. An upload that does not
finish leaves nothing behind (its session is swept, `services.kit.uploads`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import delete

from services.kit.errors import InvalidArgument
from services.kit.names import check_text
from services.kit.times import to_timestamp
from services.kit.uploads import UploadSessions
from services.registry import weights
from services.registry.catalog import read_catalog
from services.registry.convert import UPLOAD
from services.registry.lookup import RegistryContext
from services.registry.repo import UploadRow, VersionRow
from services.registry.validation import (
    MANIFEST_FILE,
    SHA256_HEX,
    UPLOAD_NAME,
    check_declared_files,
    check_version_spec,
)
from services.registry.versions import Versions
from tuneforge.common.v1 import common_pb2
from tuneforge.registry.v1 import model_pb2, registry_service_pb2


class Uploads:
    def __init__(self, ctx: RegistryContext, versions: Versions) -> None:
        self.ctx = ctx
        self.versions = versions
        self.sessions = UploadSessions(
            ctx.db, ctx.store, UploadRow, "model_uid", ttl=ctx.limits.upload_ttl, url_ttl=ctx.limits.url_ttl
        )

    async def upload(
        self, requests: AsyncIterator[registry_service_pb2.UploadModelVersionRequest]
    ) -> model_pb2.ModelVersion:
        """Create a version from an upload stream; on any failure nothing is left behind."""
        first = await anext(requests, None)
        if first is None or first.WhichOneof("payload") != "header":
            raise InvalidArgument.field("header", "the first message of the stream must be the header")
        header = first.header
        project, model_id = self.ctx.model_ref(header.parent, "header.parent")
        spec = check_version_spec(header.model_version, "header.model_version")
        request_id = check_text(header.request_id, "header.request_id", 128)
        await self.versions.check_references(project, spec, "header.model_version")

        def prepare(session: Any) -> tuple[str, model_pb2.ModelVersion | None, Any]:
            model = self.ctx.find_model(session, project, model_id)
            existing = self.ctx.find_by_request_id(session, model.uid, request_id)
            if existing is not None:
                return model.uid, self.ctx.version_proto(session, existing), None
            self.versions.resolve_lineage(session, project, spec, "header.model_version")
            # Recorded before any byte is stored: if this process dies mid-stream, the sweeper
            # finds the session once it expires and deletes what was stored.
            row = self.sessions.open(
                session, model.uid, mode="stream", prefix=lambda uid: f"models/{model.uid}/versions/{uid}/"
            )
            return model.uid, None, row

        model_uid, existing, session_row = await self.ctx.db.run(prepare)
        if existing is not None:
            return existing
        version_uid, prefix = session_row.uid, session_row.storage_prefix
        keep_alive = asyncio.create_task(self.sessions.keep_alive(version_uid))
        try:
            files = await self._receive_files(requests, prefix)
            catalog = await read_catalog(self.ctx.store, prefix, files)
            await self.versions.write_manifest(prefix, files)

            def commit(session: Any) -> model_pb2.ModelVersion:
                proto = self.versions.insert_version(
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

            proto = await self.ctx.outbox.write(self.ctx.db, commit)
        except BaseException:
            await self.sessions.discard(version_uid, prefix)
            raise
        finally:
            keep_alive.cancel()
        if proto.uid != version_uid:  # a concurrent retry with the same request id won
            await self.sessions.discard(version_uid, prefix)
        return proto

    async def _receive_files(
        self, requests: AsyncIterator[registry_service_pb2.UploadModelVersionRequest], prefix: str
    ) -> list[dict[str, Any]]:
        files: list[dict[str, Any]] = []
        facts: list[weights.FileFacts] = []
        seen: set[str] = set()
        total = 0
        limits = self.ctx.limits
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
                if await anext(requests, None) is not None:
                    raise InvalidArgument.field("finish", "the finish message must be the last of the stream")
                weights.check_version(facts)
                return files
            if kind != "chunk":
                raise InvalidArgument.field(
                    kind or "payload", "only chunks and a finish message may follow the header"
                )
            field = f"files[{len(files)}]"
            path = weights.check_path(message.chunk.path, f"{field}.path")
            if path == MANIFEST_FILE:
                raise InvalidArgument.field(f"{field}.path", f"{MANIFEST_FILE} is written by the registry")
            if path in seen:
                raise InvalidArgument.field(f"{field}.path", f"{path} was sent twice")
            seen.add(path)
            state: dict[str, Any] = {}
            stored = await self.ctx.store.put_stream(
                prefix + path,
                _file_chunks(requests, message.chunk, path, field, state),
                max_bytes=min(limits.max_file_bytes, limits.max_version_bytes - total),
            )
            if state["sha256"] != stored.sha256:
                raise InvalidArgument.field(
                    f"{field}.sha256",
                    f"{path}: the client says sha256 {state['sha256'][:12]}… but the bytes received hash to "
                    f"{stored.sha256[:12]}…; the upload was corrupted in transit",
                    reason="CHECKSUM_MISMATCH",
                )
            total += stored.size_bytes
            facts.append(state["facts"])
            files.append({"path": path, "size_bytes": stored.size_bytes, "sha256": stored.sha256})
            message = await anext(requests, None)

    async def create(
        self,
        parent: str,
        spec_message: model_pb2.ModelVersion,
        files: Sequence[common_pb2.FileEntry],
        request_id: str,
    ) -> model_pb2.ModelVersionUpload:
        project, model_id = self.ctx.model_ref(parent, "parent")
        spec = check_version_spec(spec_message, "model_version")
        declared = check_declared_files(files, self.ctx.limits)
        check_text(request_id, "request_id", 128)
        await self.versions.check_references(project, spec, "model_version")

        def open_(session: Any) -> UploadRow:
            model = self.ctx.find_model(session, project, model_id)
            existing = self.sessions.existing(session, model.uid, request_id)
            if existing is not None:
                return existing
            self.versions.resolve_lineage(session, project, spec, "model_version")
            return self.sessions.open(
                session,
                model.uid,
                mode="presigned",
                prefix=lambda uid: f"models/{model.uid}/versions/{uid}/",
                files=declared,
                spec=spec_message.SerializeToString(),
                request_id=request_id,
            )

        row = await self.ctx.db.run(open_)
        return model_pb2.ModelVersionUpload(
            name=UPLOAD.format(project=project, model=model_id, upload=row.uid),
            urls=self.sessions.urls(row),
            expire_time=to_timestamp(row.expire_time),
        )

    async def commit(self, name: str) -> model_pb2.ModelVersion:
        parts = UPLOAD_NAME.parse(name, "name")
        project, model_id = self.ctx.model_ref(f"projects/{parts['project']}/models/{parts['model']}", "name")

        row, done = await self.ctx.db.run(self._load_for_commit(project, model_id, parts["upload"], name))
        if done is not None:
            return done
        spec = check_version_spec(model_pb2.ModelVersion.FromString(row.spec), "model_version")
        checks: list[weights.FileCheck] = []

        def check(path: str, field: str) -> weights.FileCheck:
            checks.append(weights.FileCheck(path, field))
            return checks[-1]

        await self.sessions.verify(row, check=check)
        weights.check_version([c.finish() for c in checks])
        catalog = await read_catalog(self.ctx.store, row.storage_prefix, row.files)
        await self.versions.write_manifest(row.storage_prefix, row.files)

        def commit(session: Any) -> model_pb2.ModelVersion:
            upload = session.get(UploadRow, row.uid, with_for_update=True)
            if upload is None:
                raise InvalidArgument.field("name", f"upload {name} does not exist (it may have expired)")
            if upload.version_uid:
                committed = session.get(VersionRow, upload.version_uid)
                if committed is not None:
                    return self.ctx.version_proto(session, committed)
            proto = self.versions.insert_version(
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

        return await self.ctx.outbox.write(self.ctx.db, commit)

    def _load_for_commit(self, project: str, model_id: str, upload_uid: str, name: str) -> Any:
        def load(session: Any) -> tuple[UploadRow, model_pb2.ModelVersion | None]:
            model = self.ctx.find_model(session, project, model_id)
            row = self.sessions.for_commit(session, upload_uid, model.uid, name)
            if row.version_uid:
                version = session.get(VersionRow, row.version_uid)
                if version is not None:
                    return row, self.ctx.version_proto(session, version)
            return row, None

        return load

    async def sweep(self) -> int:
        return await self.sessions.sweep()


async def _file_chunks(
    requests: AsyncIterator[registry_service_pb2.UploadModelVersionRequest],
    chunk: common_pb2.FileChunk,
    path: str,
    field: str,
    state: dict[str, Any],
) -> AsyncIterator[bytes]:
    """The data of one file: chunks up to the one marked eof, each checked before it is stored."""
    check = weights.FileCheck(path, f"{field}.path")
    while True:
        check.feed(chunk.data)
        if chunk.data:
            yield chunk.data
        if chunk.eof:
            if not SHA256_HEX.match(chunk.sha256):
                raise InvalidArgument.field(
                    f"{field}.sha256", "the eof chunk must carry the file's sha256 (64 lower-case hex digits)"
                )
            state["sha256"] = chunk.sha256
            state["facts"] = check.finish()
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
