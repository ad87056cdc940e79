"""Mixtures (数据配比): the plan of versions at sampling rates, a mixture made as a new version of a
dataset, and a mixture materialized as files for a training job to read.

Plans are computed in the call (a pure function of the sources' rows, off the event loop); making
or materializing a mixture is work for a data worker (`tasks.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta

from google.protobuf import json_format
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.data import mixing
from services.data.catalog import MIXTURE, VERSION, DataCatalog
from services.data.convert import DATASET, KIND_TO_PROTO, check_seed, mixture_to_proto, version_name
from services.data.repo import DatasetVersionRow, MixtureRow
from services.data.versions import NewVersion, Versions, version_label
from services.kit.auth import parse_in_project, require_project
from services.kit.errors import InvalidArgument, NotFound
from services.kit.names import PROJECT, check_text
from services.kit.rows import Kind
from services.kit.times import utcnow
from services.kit.watch import changes
from tuneforge.common.v1 import common_pb2
from tuneforge.data.v1 import dataset_pb2
from tuneforge.events.v1 import data_events_pb2

MAX_SOURCES = 32


@dataclass(frozen=True)
class ResolvedSource:
    row: DatasetVersionRow
    sampling_rate: float

    @property
    def task(self) -> dict[str, object]:
        return {
            "version_uid": self.row.uid,
            "dataset_version": version_name(self.row),
            "label": version_label(self.row),
            "sampling_rate": self.sampling_rate,
        }


def plan_proto(
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


def plan_dict(plans: list[mixing.SourcePlan], names: list[str], kind: Kind, seed: int) -> dict[str, object]:
    return json_format.MessageToDict(plan_proto(plans, names, kind, seed), preserving_proto_field_name=True)


class Mixtures:
    def __init__(self, catalog: DataCatalog, versions: Versions) -> None:
        self.catalog = catalog
        self.versions = versions

    async def resolve(
        self, project: str, refs: Sequence[common_pb2.DatasetVersionRef]
    ) -> tuple[list[ResolvedSource], Kind]:
        """Every source READY, in `project`, at a rate of 0.01-10, all of one kind."""
        if not refs:
            raise InvalidArgument.field("sources", "give at least one dataset version with its sampling rate")
        if len(refs) > MAX_SOURCES:
            raise InvalidArgument.field("sources", f"at most {MAX_SOURCES} sources")
        sources = []
        for i, ref in enumerate(refs):
            field = f"sources[{i}]"
            parts = VERSION.parse(ref.dataset_version, f"{field}.dataset_version")
            if parts["project"] != project:
                raise InvalidArgument.field(
                    f"{field}.dataset_version", f"mixtures stay inside project {project}"
                )
            if not 0.01 <= ref.sampling_rate <= 10:
                raise InvalidArgument.field(
                    f"{field}.sampling_rate", f"must be between 0.01 and 10 (got {ref.sampling_rate})"
                )
            row = await self.catalog.db.run(
                lambda s, ref=ref, f=field: self.catalog.version_row(
                    s, ref.dataset_version, f"{f}.dataset_version", ready=True
                )
            )
            same = next((j for j, s in enumerate(sources) if s.row.uid == row.uid), None)
            if same is not None:
                raise InvalidArgument.field(
                    f"{field}.dataset_version",
                    f"is the same version as sources[{same}]; name each version once and set its sampling_rate",
                )
            sources.append(ResolvedSource(row, ref.sampling_rate))
        kinds = {s.row.kind for s in sources}
        if len(kinds) > 1:
            raise InvalidArgument.field(
                "sources", f"every source must be of one kind; these are {', '.join(sorted(kinds))}"
            )
        return sources, Kind(kinds.pop())

    async def plan(
        self, parent: str, refs: Sequence[common_pb2.DatasetVersionRef], seed: int
    ) -> dataset_pb2.MixturePlan:
        project = PROJECT.parse(parent, "parent")["project"]
        require_project(project)
        check_seed(seed)
        resolved, kind = await self.resolve(project, refs)
        sources = [
            mixing.Source(version_label(s.row), await self.catalog.load_rows(s.row), s.sampling_rate)
            for s in resolved
        ]
        plans = await asyncio.to_thread(mixing.plan, sources, kind, seed)
        return plan_proto(plans, [version_name(s.row) for s in resolved], kind, seed)

    async def create(
        self,
        parent: str,
        refs: Sequence[common_pb2.DatasetVersionRef],
        seed: int,
        description: str,
        request_id: str,
    ) -> dataset_pb2.DatasetVersion:
        """A mixture as a new version of the dataset `parent` (made by a data worker)."""
        parts = parse_in_project(DATASET, parent, "parent")
        check_text(description, "description", 4000)
        check_text(request_id, "request_id", 128)
        check_seed(seed)
        catalog = self.catalog
        dataset = await catalog.db.run(lambda s: catalog.find_dataset(s, parts["project"], parts["dataset"]))
        existing = await self.versions.existing_by_request(dataset.uid, request_id)
        if existing is not None:
            return existing
        resolved, kind = await self.resolve(parts["project"], refs)
        if kind.value != dataset.kind:
            raise InvalidArgument.field(
                "parent", f"{parent} holds {dataset.kind} data; the sources are {kind.value}"
            )
        names = [version_name(s.row) for s in resolved]
        return await self.versions.accept(
            dataset.uid,
            NewVersion(
                kind=kind,
                task={"op": "mixture", "sources": [s.task for s in resolved], "seed": seed},
                recipe={"type": "mixture", "seed": seed},
                source_file="mixture",
                description=description or "mixture of " + ", ".join(names),
                request_id=request_id,
            ),
        )

    # -- materialized mixtures -----------------------------------------------------------------

    async def materialize(
        self,
        parent: str,
        refs: Sequence[common_pb2.DatasetVersionRef],
        seed: int,
        validation_ratio: float,
        request_id: str,
    ) -> dataset_pb2.Mixture:
        project = PROJECT.parse(parent, "parent")["project"]
        require_project(project)
        check_seed(seed)
        if not 0 <= validation_ratio <= 0.5:
            raise InvalidArgument.field(
                "validation_ratio", f"must be between 0 and 0.5 (got {validation_ratio})"
            )
        check_text(request_id, "request_id", 128)
        if request_id:
            found = await self.catalog.db.run(lambda s: self._by_request(s, project, request_id))
            if found is not None:
                return found
        resolved, kind = await self.resolve(project, refs)

        def insert(session: Session) -> dataset_pb2.Mixture:
            uid = uuid.uuid4().hex
            now = utcnow()
            row = MixtureRow(
                uid=uid,
                project=project,
                mixture_id=f"mixture-{uid[:16]}",
                kind=kind.value,
                sources=[s.task for s in resolved],
                seed=seed,
                validation_ratio=validation_ratio,
                state="pending",
                plan={},
                train_rows=0,
                validation_rows=0,
                files=[],
                storage_prefix=f"mixtures/{uid}/",
                failure_reason="",
                failure_message="",
                request_id=request_id or None,
                create_time=now,
                update_time=now,
            )
            session.add(row)
            session.flush()
            self.catalog.enqueue(session, "mixture", uid)
            return emit_mixture(self.catalog, session, row, "created")

        try:
            return await self.catalog.outbox.write(self.catalog.db, insert)
        except IntegrityError:
            found = await self.catalog.db.run(lambda s: self._by_request(s, project, request_id))
            if found is None:
                raise
            return found

    @staticmethod
    def _by_request(session: Session, project: str, request_id: str) -> dataset_pb2.Mixture | None:
        row = session.scalar(
            select(MixtureRow).where(MixtureRow.project == project, MixtureRow.request_id == request_id)
        )
        return mixture_to_proto(row) if row else None

    def _find(self, session: Session, name: str) -> MixtureRow:
        parts = MIXTURE.parse(name, "name")
        row = session.scalar(
            select(MixtureRow).where(
                MixtureRow.project == parts["project"], MixtureRow.mixture_id == parts["mixture"]
            )
        )
        if row is None:
            raise NotFound(f"mixture {name} does not exist")
        return row

    async def get(self, name: str) -> dataset_pb2.Mixture:
        parse_in_project(MIXTURE, name, "name")
        row = await self.catalog.db.run(lambda s: self._find(s, name))
        proto = mixture_to_proto(row)
        if row.state == "ready":
            proto.urls.extend(
                common_pb2.PresignedUrl(
                    path=f["path"],
                    url=self.catalog.store.presigned_get(
                        row.storage_prefix + f["path"], self.catalog.limits.url_ttl
                    ),
                    method="GET",
                    sha256=f["sha256"],
                    size_bytes=f["size_bytes"],
                )
                for f in row.files
            )
        return proto

    async def watch(self, name: str) -> AsyncIterator[dataset_pb2.Mixture]:
        first = await self.get(name)
        assert self.catalog.feed is not None
        final = (dataset_pb2.COMPUTATION_STATE_READY, dataset_pb2.COMPUTATION_STATE_FAILED)
        async for mixture in changes(
            self.catalog.feed, first.name, lambda: self.get(first.name), lambda m: m.state in final
        ):
            yield mixture

    async def sweep(self, older_than: timedelta) -> int:
        """Delete finished mixtures unchanged for `older_than` (a job that still needs one makes it
        again from its request id: the rows are the same). Returns how many were deleted."""
        cutoff = utcnow() - older_than
        names = await self.catalog.db.run(
            lambda s: [
                (r.project, r.mixture_id)
                for r in s.scalars(
                    select(MixtureRow).where(
                        MixtureRow.update_time < cutoff, MixtureRow.state.in_(("ready", "failed"))
                    )
                )
            ]
        )
        for project, mixture_id in names:
            with contextlib.suppress(NotFound):
                await self._delete(f"projects/{project}/mixtures/{mixture_id}")
        return len(names)

    async def delete(self, name: str) -> None:
        parse_in_project(MIXTURE, name, "name")
        await self._delete(name)

    async def _delete(self, name: str) -> None:
        def delete_(session: Session) -> str:
            row = self._find(session, name)
            emit_mixture(self.catalog, session, row, "deleted")
            session.delete(row)
            return row.storage_prefix

        prefix = await self.catalog.outbox.write(self.catalog.db, delete_)
        await self.catalog.store.delete_prefix(prefix)


def emit_mixture(catalog: DataCatalog, session: Session, row: MixtureRow, verb: str) -> dataset_pb2.Mixture:
    proto = mixture_to_proto(row)
    catalog.outbox.emit(
        session, "mixture", verb, proto.name, row.project, data_events_pb2.MixtureEvent(mixture=proto)
    )
    return proto
