"""Rows to API messages. Names are formatted here, from ids checked on the way in."""

from __future__ import annotations

from google.protobuf import struct_pb2

from services.kit.names import NamePattern
from services.kit.times import to_timestamp
from services.registry.repo import AliasRow, ModelRow, VersionRow
from tuneforge.common.v1 import common_pb2
from tuneforge.registry.v1 import model_pb2

MODEL = NamePattern("projects/{project}/models/{model}")
VERSION_TEMPLATE = "projects/{project}/models/{model}/versions/{version}"
ALIAS = NamePattern("projects/{project}/models/{model}/aliases/{alias}")
UPLOAD = NamePattern("projects/{project}/models/{model}/uploads/{upload}")


timestamp = to_timestamp


def model_name(row: ModelRow) -> str:
    return MODEL.format(project=row.project, model=row.model_id)


def version_name(row: VersionRow) -> str:
    return VERSION_TEMPLATE.format(project=row.model.project, model=row.model.model_id, version=row.number)


def model_to_proto(
    row: ModelRow, version_count: int = 0, latest_number: int | None = None
) -> model_pb2.Model:
    return model_pb2.Model(
        name=model_name(row),
        uid=row.uid,
        display_name=row.display_name,
        description=row.description,
        tags=row.tags,
        create_time=timestamp(row.create_time),
        update_time=timestamp(row.update_time),
        version_count=version_count,
        latest_version=(
            VERSION_TEMPLATE.format(project=row.project, model=row.model_id, version=latest_number)
            if latest_number
            else ""
        ),
    )


def version_to_proto(row: VersionRow, aliases: list[str] | None = None) -> model_pb2.ModelVersion:
    hyperparameters = struct_pb2.Struct()
    hyperparameters.update(row.hyperparameters)
    base_model = version_name(row.base_version) if row.base_version is not None else row.base_model_ref
    return model_pb2.ModelVersion(
        name=version_name(row),
        uid=row.uid,
        description=row.description,
        tags=row.tags,
        kind=row.kind,
        files=[common_pb2.FileEntry(**f) for f in row.files],
        total_size_bytes=row.total_size_bytes,
        lineage=model_pb2.Lineage(
            base_model=base_model,
            parent_version=version_name(row.parent_version) if row.parent_version else "",
            source_job=row.source_job,
            dataset_versions=[common_pb2.DatasetVersionRef(**d) for d in row.dataset_versions],
            hyperparameters=hyperparameters,
        ),
        metrics=row.metrics,
        aliases=sorted(aliases or []),
        create_time=timestamp(row.create_time),
        update_time=timestamp(row.update_time),
        catalog=model_pb2.CatalogInfo(**(row.catalog or {})),
    )


def alias_to_proto(row: AliasRow) -> model_pb2.ModelAlias:
    return model_pb2.ModelAlias(
        name=ALIAS.format(project=row.model.project, model=row.model.model_id, alias=row.alias),
        version=version_name(row.version),
        update_time=timestamp(row.update_time),
    )
