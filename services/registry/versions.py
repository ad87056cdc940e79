"""Model versions: created immutable with their lineage (by an upload or a derivation), then read,
listed, annotated, downloaded (verified), exported as a tar stream, and deleted."""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from services.kit.auth import require_project
from services.kit.db import keyset_page
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.kit.names import check_tags, check_text, page_size, parse_filter
from services.kit.times import utcnow
from services.registry.convert import version_name, version_to_proto
from services.registry.lookup import RegistryContext
from services.registry.repo import ModelRow, VersionRow
from services.registry.validation import (
    MANIFEST_FILE,
    VERSION,
    VERSION_SEGMENT,
    VersionSpec,
    check_metrics,
    detect_kind,
    resolve_update_mask,
)
from tuneforge.common.v1 import common_pb2
from tuneforge.events.v1 import registry_events_pb2
from tuneforge.registry.v1 import model_pb2
from tuneforge.train.v1 import train_service_pb2

# Download messages: large enough to keep per-message overhead small, well under the 16 MiB limit.
DOWNLOAD_CHUNK_BYTES = 4 * 1024 * 1024


@dataclass
class _Lineage:
    base_model_ref: str
    base_version_uid: str | None
    parent_version_uid: str | None


class Versions:
    def __init__(self, ctx: RegistryContext) -> None:
        self.ctx = ctx

    async def check_references(self, project: str, spec: VersionSpec, field: str) -> None:
        """The job and dataset versions a lineage names are in `project` and exist (asked of the
        train and data services with the caller's key; unchecked for existence where the registry
        runs without them)."""
        job = [(spec.source_job, f"{field}.lineage.source_job")] if spec.source_job else []
        datasets = [
            (d["dataset_version"], f"{field}.lineage.dataset_versions[{i}].dataset_version")
            for i, d in enumerate(spec.dataset_versions)
        ]
        for ref, subfield in job + datasets:
            if ref.split("/")[1] != project:
                raise InvalidArgument.field(
                    subfield, f"{ref[:200]} is in another project; lineage stays inside project {project}"
                )
        peers = self.ctx.peers
        if peers is None:
            return
        if "train" in peers.endpoints:
            for ref, subfield in job:
                request = train_service_pb2.GetTrainingJobRequest(name=ref)
                await peers.call("train", "GetTrainingJob", request, field=subfield)
        if "data" in peers.endpoints:
            for ref, subfield in datasets:
                await peers.dataset_version(ref, subfield)

    def resolve_lineage(self, session: Session, project: str, spec: VersionSpec, field: str) -> _Lineage:
        def local_version(name: str, subfield: str) -> VersionRow:
            parts = VERSION.parse(name, subfield)
            if parts["project"] != project:
                raise InvalidArgument.field(
                    subfield, f"{name} is in another project; lineage stays inside project {project}"
                )
            try:
                return self.ctx.resolve_version(session, project, parts["model"], parts["version"], subfield)
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

    def insert_version(
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
        existing = self.ctx.find_by_request_id(session, model_uid, request_id)
        if existing is not None:
            return self.ctx.version_proto(session, existing)
        lineage = self.resolve_lineage(session, model.project, spec, field)
        if self.ctx.access is not None:
            self.ctx.access.check_storage_now(
                model.project,
                "registry",
                self.ctx.project_bytes(session, model.project),
                sum(f["size_bytes"] for f in files),
                field,
            )
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
        self.ctx.outbox.emit(
            session,
            "model_version",
            "created",
            proto.name,
            model.project,
            registry_events_pb2.ModelVersionEvent(model_version=proto),
        )
        return proto

    async def write_manifest(self, prefix: str, files: list[dict[str, Any]]) -> None:
        manifest = {"files": sorted(files, key=lambda f: f["path"])}
        await self.ctx.store.put_bytes(
            prefix + MANIFEST_FILE, json.dumps(manifest, indent=1).encode(), content_type="application/json"
        )

    async def get(self, name: str) -> model_pb2.ModelVersion:
        return await self.ctx.db.run(
            lambda s: self.ctx.version_proto(s, self.ctx.version_by_name(s, name, "name"))
        )

    async def list(
        self, parent: str, size: int, token: str, filter_text: str, order_by: str
    ) -> tuple[list[model_pb2.ModelVersion], str]:
        project, model_id = self.ctx.model_ref(parent, "parent")
        size = page_size(size)
        lineage_keys = {"lineage.parent_version", "lineage.base_model", "lineage.source_job"}
        terms = parse_filter(
            filter_text,
            lambda k: k == "kind" or k in lineage_keys or bool(re.match(r"^tags\.[a-z][a-z0-9_.\-]*$", k)),
        )

        def list_(session: Session) -> tuple[list[model_pb2.ModelVersion], str]:
            model = self.ctx.find_model(session, project, model_id)
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
                        target = self.ctx.version_by_name(session, value, "filter").uid
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
                tokens=self.ctx.page_tokens,
                columns={"version": VersionRow.number, "create_time": VersionRow.create_time},
                order_by=order_by,
                default_order="version",
                tie=VersionRow.uid,
                size=size,
                token=token,
                context=f"ListModelVersions|{project}|{model_id}|{filter_text}",
            )
            aliases = self.ctx.aliases_of(session, [r.uid for r in rows])
            return [version_to_proto(r, aliases.get(r.uid, [])) for r in rows], next_token

        return await self.ctx.db.run(list_)

    async def update(
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
            row = self.ctx.version_by_name(session, version.name, "model_version.name")
            if "description" in paths:
                row.description = version.description
            if tags is not None:
                row.tags = tags
            if metrics is not None:
                row.metrics = metrics
            row.update_time = utcnow()
            session.flush()
            proto = self.ctx.version_proto(session, row)
            self.ctx.outbox.emit(
                session,
                "model_version",
                "updated",
                proto.name,
                parts["project"],
                registry_events_pb2.ModelVersionEvent(model_version=proto),
            )
            return proto

        return await self.ctx.outbox.write(self.ctx.db, update_)

    async def delete(self, name: str) -> None:
        parts = VERSION.parse(name, "name")
        require_project(parts["project"])
        if not VERSION_SEGMENT.match(parts["version"]):
            raise InvalidArgument.field("name", "delete a version by its number, not by an alias")

        def delete_(session: Session) -> str:
            row = self.ctx.version_by_name(session, name, "name")
            aliases = self.ctx.aliases_of(session, [row.uid]).get(row.uid, [])
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
            self.ctx.outbox.emit(
                session,
                "model_version",
                "deleted",
                proto.name,
                parts["project"],
                registry_events_pb2.ModelVersionEvent(model_version=proto),
            )
            return prefix

        prefix = await self.ctx.outbox.write(self.ctx.db, delete_)
        await self.ctx.store.delete_prefix(prefix)

    async def download(self, name: str, paths: Sequence[str]) -> AsyncIterator[common_pb2.FileChunk]:
        """The version's files as chunks; each file's last chunk comes only after it verified."""
        row = await self.ctx.db.run(lambda s: self.ctx.version_by_name(s, name, "name"))
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
            async for data in self.ctx.store.iter_verified(
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
        row = await self.ctx.db.run(lambda s: self.ctx.version_by_name(s, name, "name"))
        return version_name(row), [
            common_pb2.PresignedUrl(
                path=f["path"],
                url=self.ctx.store.presigned_get(row.storage_prefix + f["path"], self.ctx.limits.url_ttl),
                method="GET",
                sha256=f["sha256"],
                size_bytes=f["size_bytes"],
            )
            for f in row.files
        ]

    async def export(self, name: str) -> AsyncIterator[bytes]:
        """The version's files as a tar stream (a plain Hugging Face folder), verified as read."""
        row = await self.ctx.db.run(lambda s: self.ctx.version_by_name(s, name, "name"))
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
                async for chunk in self.ctx.store.iter_verified(
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
