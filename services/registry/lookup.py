"""What every part of the registry shares: its database, store, outbox and limits, and the lookups
of models, versions and aliases by name.

The parts: `models`, `versions`, `uploads`, `aliases`, `lineage`, `search`, `derivations`.
Everything here runs without grpc; every change is written with its event in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.kit.access import Access
from services.kit.auth import require_project
from services.kit.db import Database
from services.kit.errors import NotFound
from services.kit.names import PROJECT, PageTokens
from services.kit.outbox import Outbox
from services.kit.peers import Peers
from services.kit.store import ObjectStore
from services.registry.convert import MODEL, model_to_proto, version_to_proto
from services.registry.repo import AliasRow, ModelRow, VersionRow
from services.registry.validation import VERSION, VERSION_SEGMENT, RegistryLimits
from tuneforge.registry.v1 import model_pb2


@dataclass
class RegistryContext:
    """Models, versions and aliases of every project, stored in SQL and S3."""

    db: Database
    store: ObjectStore
    outbox: Outbox
    page_tokens: PageTokens
    limits: RegistryLimits
    # The train and data services, to check the jobs and dataset versions a lineage names.
    peers: Peers | None = None
    # Project quotas (storage) and the storage each project uses, in the shared auth database.
    access: Access | None = None

    @staticmethod
    def project_bytes(session: Session, project: str) -> int:
        """Bytes of every model version the project stores."""
        return int(
            session.scalar(
                select(func.coalesce(func.sum(VersionRow.total_size_bytes), 0))
                .join(ModelRow, ModelRow.uid == VersionRow.model_uid)
                .where(ModelRow.project == project)
            )
        )

    async def record_storage(self) -> int:
        """Write every project's bytes to the shared usage table (quota checks of other services
        read it); returns how many projects it wrote."""
        if self.access is None:
            return 0

        def totals(session: Session) -> list[tuple[str, int]]:
            return [
                (project, int(total))
                for project, total in session.execute(
                    select(ModelRow.project, func.coalesce(func.sum(VersionRow.total_size_bytes), 0))
                    .join(VersionRow, VersionRow.model_uid == ModelRow.uid, isouter=True)
                    .group_by(ModelRow.project)
                )
            ]

        rows = await self.db.run(totals)
        access = self.access
        await access.db.run(lambda s: [access.record_storage(s, p, "registry", b) for p, b in rows])
        return 0

    @staticmethod
    def project_of(parent: str, field: str = "parent") -> str:
        project = PROJECT.parse(parent, field)["project"]
        require_project(project)
        return project

    @staticmethod
    def model_ref(name: str, field: str) -> tuple[str, str]:
        parts = MODEL.parse(name, field)
        require_project(parts["project"])
        return parts["project"], parts["model"]

    @staticmethod
    def find_model(session: Session, project: str, model_id: str, *, lock: bool = False) -> ModelRow:
        query = select(ModelRow).where(ModelRow.project == project, ModelRow.model_id == model_id)
        if lock:
            query = query.with_for_update()
        row = session.scalar(query)
        if row is None:
            raise NotFound(f"model projects/{project}/models/{model_id} does not exist")
        return row

    @staticmethod
    def stats(session: Session, uids: Sequence[str]) -> dict[str, tuple[int, int | None]]:
        """Per model: how many versions, and the newest one's number."""
        if not uids:
            return {}
        rows = session.execute(
            select(VersionRow.model_uid, func.count(), func.max(VersionRow.number))
            .where(VersionRow.model_uid.in_(uids))
            .group_by(VersionRow.model_uid)
        ).all()
        return {uid: (count, latest) for uid, count, latest in rows}

    def model_proto(self, session: Session, row: ModelRow) -> model_pb2.Model:
        count, latest = self.stats(session, [row.uid]).get(row.uid, (0, None))
        return model_to_proto(row, count, latest)

    @staticmethod
    def aliases_of(session: Session, version_uids: Sequence[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        if version_uids:
            for version_uid, alias in session.execute(
                select(AliasRow.version_uid, AliasRow.alias).where(AliasRow.version_uid.in_(version_uids))
            ):
                out.setdefault(version_uid, []).append(alias)
        return out

    def version_proto(self, session: Session, row: VersionRow) -> model_pb2.ModelVersion:
        return version_to_proto(row, self.aliases_of(session, [row.uid]).get(row.uid, []))

    @staticmethod
    def resolve_version(
        session: Session, project: str, model_id: str, segment: str, field: str
    ) -> VersionRow:
        """A version by number, `latest`, or an alias."""
        model = RegistryContext.find_model(session, project, model_id)
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

    def version_by_name(self, session: Session, name: str, field: str) -> VersionRow:
        parts = VERSION.parse(name, field)
        require_project(parts["project"])
        return self.resolve_version(session, parts["project"], parts["model"], parts["version"], field)

    @staticmethod
    def find_by_request_id(session: Session, model_uid: str, request_id: str) -> VersionRow | None:
        if not request_id:
            return None
        return session.scalar(
            select(VersionRow).where(VersionRow.model_uid == model_uid, VersionRow.request_id == request_id)
        )
