"""Datasets: create, read, list, update and delete (a dataset is a named line of versions of one kind)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.data.catalog import DataCatalog
from services.data.convert import DATASET, dataset_to_proto, kind_from_proto, version_to_proto
from services.data.repo import DatasetRow, DatasetUploadRow, DatasetVersionRow
from services.kit.auth import parse_in_project, require_project
from services.kit.db import keyset_page
from services.kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from services.kit.names import PROJECT, check_id, check_tags, check_text, page_size, parse_filter
from services.kit.rows import Kind
from services.kit.times import utcnow
from tuneforge.data.v1 import dataset_pb2
from tuneforge.events.v1 import data_events_pb2


class Datasets:
    def __init__(self, catalog: DataCatalog) -> None:
        self.catalog = catalog

    def insert_dataset(
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
        self.catalog.outbox.emit(
            session, "dataset", "created", proto.name, project, data_events_pb2.DatasetEvent(dataset=proto)
        )
        return row

    async def create(
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
                    return self.catalog.dataset_proto(session, existing)
            if session.scalar(
                select(DatasetRow.uid).where(
                    DatasetRow.project == project, DatasetRow.dataset_id == dataset_id
                )
            ):
                raise AlreadyExists(f"dataset projects/{project}/datasets/{dataset_id} already exists")
            row = self.insert_dataset(
                session, project, dataset_id, kind, display_name, description, tags, request_id
            )
            return dataset_to_proto(row)

        try:
            return await self.catalog.outbox.write(self.catalog.db, create)
        except IntegrityError:
            return await self.catalog.outbox.write(self.catalog.db, create)

    async def get(self, name: str) -> dataset_pb2.Dataset:
        parts = parse_in_project(DATASET, name, "name")
        return await self.catalog.db.run(
            lambda s: self.catalog.dataset_proto(
                s, self.catalog.find_dataset(s, parts["project"], parts["dataset"])
            )
        )

    async def list(
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
                tokens=self.catalog.page_tokens,
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
            stats = self.catalog.stats(session, [r.uid for r in rows])
            return [dataset_to_proto(r, *stats[r.uid]) for r in rows], next_token

        return await self.catalog.db.run(list_)

    async def update(self, dataset: dataset_pb2.Dataset, mask_paths: Sequence[str]) -> dataset_pb2.Dataset:
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
            row = self.catalog.find_dataset(session, parts["project"], parts["dataset"], lock=True)
            if "display_name" in paths:
                row.display_name = dataset.display_name or row.dataset_id
            if "description" in paths:
                row.description = dataset.description
            if "tags" in paths:
                row.tags = tags
            row.update_time = utcnow()
            session.flush()
            proto = self.catalog.dataset_proto(session, row)
            self.catalog.outbox.emit(
                session,
                "dataset",
                "updated",
                proto.name,
                parts["project"],
                data_events_pb2.DatasetEvent(dataset=proto),
            )
            return proto

        return await self.catalog.outbox.write(self.catalog.db, update_)

    async def delete(self, name: str, force: bool) -> None:
        parts = parse_in_project(DATASET, name, "name")

        def delete_(session: Session) -> str:
            row = self.catalog.find_dataset(session, parts["project"], parts["dataset"], lock=True)
            versions = session.scalars(
                select(DatasetVersionRow).where(DatasetVersionRow.dataset_uid == row.uid)
            ).all()
            if versions and not force:
                raise FailedPrecondition(
                    f"{name} has {len(versions)} versions; delete them first or pass force",
                    reason="HAS_VERSIONS",
                )
            proto = self.catalog.dataset_proto(session, row)
            for version in versions:
                version_proto = version_to_proto(version)
                session.delete(version)
                self.catalog.outbox.emit(
                    session,
                    "dataset_version",
                    "deleted",
                    version_proto.name,
                    parts["project"],
                    data_events_pb2.DatasetVersionEvent(dataset_version=version_proto),
                )
            session.execute(delete(DatasetUploadRow).where(DatasetUploadRow.dataset_uid == row.uid))
            session.delete(row)
            self.catalog.outbox.emit(
                session,
                "dataset",
                "deleted",
                proto.name,
                parts["project"],
                data_events_pb2.DatasetEvent(dataset=proto),
            )
            return row.uid

        uid = await self.catalog.outbox.write(self.catalog.db, delete_)
        await self.catalog.store.delete_prefix(f"datasets/{uid}/")
