"""Aliases (`production`, `staging`...): names for versions, moved as a model evolves, with their history."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.kit.auth import principal_var, require_project
from services.kit.db import keyset_page
from services.kit.errors import InvalidArgument, NotFound
from services.kit.names import page_size
from services.kit.times import utcnow
from services.registry.convert import alias_to_proto, timestamp, version_name
from services.registry.lookup import RegistryContext
from services.registry.repo import AliasHistoryRow, AliasRow
from services.registry.validation import ALIAS_NAME, RESERVED_ALIASES, VERSION, check_alias
from tuneforge.events.v1 import registry_events_pb2
from tuneforge.registry.v1 import model_pb2


class Aliases:
    def __init__(self, ctx: RegistryContext) -> None:
        self.ctx = ctx

    async def set(self, parent: str, alias: str, version: str) -> model_pb2.ModelAlias:
        project, model_id = self.ctx.model_ref(parent, "parent")
        check_alias(alias, "alias")
        if alias in RESERVED_ALIASES:
            raise InvalidArgument.field("alias", f"{alias!r} is reserved")
        target = VERSION.parse(version, "version")
        if (target["project"], target["model"]) != (project, model_id):
            raise InvalidArgument.field("version", f"{version} is not a version of {parent}")

        def set_(session: Session) -> model_pb2.ModelAlias:
            model = self.ctx.find_model(session, project, model_id, lock=True)
            row_version = self.ctx.resolve_version(session, project, model_id, target["version"], "version")
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
            record_alias(session, model.uid, alias, previous, proto.version)
            self.ctx.outbox.emit(
                session,
                "model_alias",
                "set",
                proto.name,
                project,
                registry_events_pb2.ModelAliasEvent(alias=proto, previous_version=previous),
            )
            return proto

        return await self.ctx.outbox.write(self.ctx.db, set_)

    def alias_ref(self, name: str) -> dict[str, str]:
        parts = ALIAS_NAME.parse(name, "name")
        require_project(parts["project"])
        return parts

    def find_alias(self, session: Session, parts: dict[str, str]) -> AliasRow:
        model = self.ctx.find_model(session, parts["project"], parts["model"])
        row = session.get(AliasRow, (model.uid, parts["alias"]))
        if row is None:
            raise NotFound(
                f"projects/{parts['project']}/models/{parts['model']} has no alias {parts['alias']!r}",
                reason="ALIAS_NOT_FOUND",
            )
        return row

    async def get(self, name: str) -> model_pb2.ModelAlias:
        parts = self.alias_ref(name)
        return await self.ctx.db.run(lambda s: alias_to_proto(self.find_alias(s, parts)))

    async def list(self, parent: str, size: int, token: str) -> tuple[list[model_pb2.ModelAlias], str]:
        project, model_id = self.ctx.model_ref(parent, "parent")
        size = page_size(size)

        def list_(session: Session) -> tuple[list[model_pb2.ModelAlias], str]:
            model = self.ctx.find_model(session, project, model_id)
            rows, next_token = keyset_page(
                session,
                select(AliasRow).where(AliasRow.model_uid == model.uid),
                tokens=self.ctx.page_tokens,
                columns={"alias": AliasRow.alias},
                order_by="",
                default_order="alias",
                tie=AliasRow.alias,
                size=size,
                token=token,
                context=f"ListModelAliases|{project}|{model_id}",
            )
            return [alias_to_proto(r) for r in rows], next_token

        return await self.ctx.db.run(list_)

    async def delete(self, name: str) -> None:
        parts = self.alias_ref(name)

        def delete_(session: Session) -> None:
            row = self.find_alias(session, parts)
            proto = alias_to_proto(row)
            record_alias(session, row.model_uid, row.alias, proto.version, "")
            session.delete(row)
            self.ctx.outbox.emit(
                session,
                "model_alias",
                "deleted",
                proto.name,
                parts["project"],
                registry_events_pb2.ModelAliasEvent(alias=proto, previous_version=proto.version),
            )

        await self.ctx.outbox.write(self.ctx.db, delete_)

    async def history(self, parent: str) -> list[model_pb2.AliasHistoryEntry]:
        project, model_id = self.ctx.model_ref(parent, "parent")

        def list_(session: Session) -> list[model_pb2.AliasHistoryEntry]:
            model = self.ctx.find_model(session, project, model_id)
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

        return await self.ctx.db.run(list_)


def record_alias(session: Session, model_uid: str, alias: str, before: str, after: str) -> None:
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
