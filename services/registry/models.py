"""Models: create, read, list, update and delete (with `force`, their versions too)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.kit.db import keyset_page
from services.kit.errors import AlreadyExists, FailedPrecondition
from services.kit.names import check_id, check_tags, check_text, page_size, parse_filter
from services.kit.times import utcnow
from services.registry.convert import model_to_proto, version_name, version_to_proto
from services.registry.lookup import RegistryContext
from services.registry.repo import AliasRow, ModelRow, UploadRow, VersionRow
from services.registry.validation import resolve_update_mask
from tuneforge.events.v1 import registry_events_pb2
from tuneforge.registry.v1 import model_pb2


class Models:
    def __init__(self, ctx: RegistryContext) -> None:
        self.ctx = ctx

    async def create(
        self, parent: str, model_id: str, model: model_pb2.Model, request_id: str
    ) -> model_pb2.Model:
        project = self.ctx.project_of(parent)
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
                    return self.ctx.model_proto(session, existing)
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
            self.ctx.outbox.emit(
                session, "model", "created", proto.name, project, registry_events_pb2.ModelEvent(model=proto)
            )
            return proto

        try:
            return await self.ctx.outbox.write(self.ctx.db, create)
        except IntegrityError:
            # A concurrent twin won the insert: the retry finds it (same request id) or reports the clash.
            return await self.ctx.outbox.write(self.ctx.db, create)

    async def get(self, name: str) -> model_pb2.Model:
        project, model_id = self.ctx.model_ref(name, "name")
        return await self.ctx.db.run(
            lambda s: self.ctx.model_proto(s, self.ctx.find_model(s, project, model_id))
        )

    async def list(
        self, parent: str, size: int, token: str, filter_text: str, order_by: str
    ) -> tuple[list[model_pb2.Model], str]:
        project = self.ctx.project_of(parent)
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
                tokens=self.ctx.page_tokens,
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
            stats = self.ctx.stats(session, [r.uid for r in rows])
            return [model_to_proto(r, *stats.get(r.uid, (0, None))) for r in rows], next_token

        return await self.ctx.db.run(list_)

    async def update(self, model: model_pb2.Model, mask_paths: Sequence[str]) -> model_pb2.Model:
        project, model_id = self.ctx.model_ref(model.name, "model.name")
        paths = resolve_update_mask(mask_paths, model, {"display_name", "description", "tags"})
        if "display_name" in paths:
            check_text(model.display_name, "model.display_name", 200)
        if "description" in paths:
            check_text(model.description, "model.description", 4000)
        tags = check_tags(dict(model.tags), "model.tags") if "tags" in paths else None

        def update_(session: Session) -> model_pb2.Model:
            row = self.ctx.find_model(session, project, model_id, lock=True)
            if "display_name" in paths:
                row.display_name = model.display_name or model_id
            if "description" in paths:
                row.description = model.description
            if tags is not None:
                row.tags = tags
            row.update_time = utcnow()
            session.flush()
            proto = self.ctx.model_proto(session, row)
            self.ctx.outbox.emit(
                session, "model", "updated", proto.name, project, registry_events_pb2.ModelEvent(model=proto)
            )
            return proto

        return await self.ctx.outbox.write(self.ctx.db, update_)

    async def delete(self, name: str, force: bool) -> None:
        project, model_id = self.ctx.model_ref(name, "name")

        def delete_(session: Session) -> str:
            row = self.ctx.find_model(session, project, model_id, lock=True)
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
            model_proto = self.ctx.model_proto(session, row)
            # Children before parents, so the self-referencing foreign keys hold at each step.
            for version in sorted(versions, key=lambda v: -v.number):
                proto = version_to_proto(version)
                session.delete(version)
                session.flush()
                self.ctx.outbox.emit(
                    session,
                    "model_version",
                    "deleted",
                    proto.name,
                    project,
                    registry_events_pb2.ModelVersionEvent(model_version=proto),
                )
            session.execute(delete(UploadRow).where(UploadRow.model_uid == row.uid))
            session.delete(row)
            self.ctx.outbox.emit(
                session,
                "model",
                "deleted",
                model_proto.name,
                project,
                registry_events_pb2.ModelEvent(model=model_proto),
            )
            return row.uid

        model_uid = await self.ctx.outbox.write(self.ctx.db, delete_)
        await self.ctx.store.delete_prefix(f"models/{model_uid}/")
