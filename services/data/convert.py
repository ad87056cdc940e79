"""Rows and domain values to API messages, and API enums to domain values."""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2

from services.data.canonical import Kind
from services.data.formats import Format
from services.data.ingest import Policy
from services.data.repo import DatasetRow, DatasetVersionRow
from services.data.schemas import Schema
from services.kit.errors import InvalidArgument
from services.kit.names import NamePattern
from services.kit.times import to_timestamp as timestamp
from tuneforge.common.v1 import common_pb2
from tuneforge.data.v1 import dataset_pb2

DATASET = NamePattern("projects/{project}/datasets/{dataset}")
VERSION_TEMPLATE = "projects/{project}/datasets/{dataset}/versions/{version}"

KIND_TO_PROTO = {
    Kind.TEXT: dataset_pb2.DATASET_KIND_TEXT,
    Kind.SFT: dataset_pb2.DATASET_KIND_SFT,
    Kind.PREFERENCE: dataset_pb2.DATASET_KIND_PREFERENCE,
    Kind.UNPAIRED_PREFERENCE: dataset_pb2.DATASET_KIND_UNPAIRED_PREFERENCE,
    Kind.PROMPT_ONLY: dataset_pb2.DATASET_KIND_PROMPT_ONLY,
    Kind.EVAL: dataset_pb2.DATASET_KIND_EVAL,
}
KIND_FROM_PROTO = {v: k for k, v in KIND_TO_PROTO.items()}
FORMAT_TO_PROTO = {
    Format.JSONL: dataset_pb2.DATA_FORMAT_JSONL,
    Format.JSON: dataset_pb2.DATA_FORMAT_JSON,
    Format.CSV: dataset_pb2.DATA_FORMAT_CSV,
    Format.PARQUET: dataset_pb2.DATA_FORMAT_PARQUET,
    Format.TEXT: dataset_pb2.DATA_FORMAT_TEXT,
}
FORMAT_FROM_PROTO = {v: k for k, v in FORMAT_TO_PROTO.items()}
SCHEMA_TO_PROTO = {
    Schema.CANONICAL: dataset_pb2.DATA_SCHEMA_CANONICAL,
    Schema.OPENAI_CHAT: dataset_pb2.DATA_SCHEMA_OPENAI_CHAT,
    Schema.ALPACA: dataset_pb2.DATA_SCHEMA_ALPACA,
    Schema.SHAREGPT: dataset_pb2.DATA_SCHEMA_SHAREGPT,
    Schema.QIANFAN: dataset_pb2.DATA_SCHEMA_QIANFAN,
    Schema.TRL: dataset_pb2.DATA_SCHEMA_TRL,
    Schema.TEXT: dataset_pb2.DATA_SCHEMA_TEXT,
}
SCHEMA_FROM_PROTO = {v: k for k, v in SCHEMA_TO_PROTO.items()}
STATE_TO_PROTO = {
    "ready": dataset_pb2.DATASET_VERSION_STATE_READY,
    "failed": dataset_pb2.DATASET_VERSION_STATE_FAILED,
}


def kind_from_proto(value: int, field: str) -> Kind:
    if value not in KIND_FROM_PROTO:
        names = ", ".join(k.value for k in Kind)
        raise InvalidArgument.field(field, f"choose a kind: {names}")
    return KIND_FROM_PROTO[value]


def policy_from_proto(value: int) -> Policy:
    return Policy.SKIP if value == dataset_pb2.ERROR_POLICY_SKIP else Policy.FAIL


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(value)
    return out


def dataset_name(row: DatasetRow) -> str:
    return DATASET.format(project=row.project, dataset=row.dataset_id)


def version_name(row: DatasetVersionRow) -> str:
    return VERSION_TEMPLATE.format(
        project=row.dataset.project, dataset=row.dataset.dataset_id, version=row.number
    )


def dataset_to_proto(row: DatasetRow, count: int = 0, latest: int | None = None) -> dataset_pb2.Dataset:
    return dataset_pb2.Dataset(
        name=dataset_name(row),
        uid=row.uid,
        display_name=row.display_name,
        description=row.description,
        kind=KIND_TO_PROTO[Kind(row.kind)],
        tags=row.tags,
        create_time=timestamp(row.create_time),
        update_time=timestamp(row.update_time),
        version_count=count,
        latest_version=VERSION_TEMPLATE.format(project=row.project, dataset=row.dataset_id, version=latest)
        if latest
        else "",
    )


def version_to_proto(row: DatasetVersionRow) -> dataset_pb2.DatasetVersion:
    return dataset_pb2.DatasetVersion(
        name=version_name(row),
        uid=row.uid,
        state=STATE_TO_PROTO[row.state],
        kind=KIND_TO_PROTO[Kind(row.kind)],
        row_count=row.row_count,
        character_count=row.character_count,
        skipped_row_count=row.skipped_row_count,
        errors=dataset_pb2.ErrorSummary(
            error_count=row.error_count,
            counts_by_reason=row.errors_by_reason,
            examples=[dataset_pb2.RowError(**e) for e in row.error_examples],
        ),
        source_file=row.source_file,
        source_format=FORMAT_TO_PROTO.get(Format(row.source_format), 0) if row.source_format else 0,
        source_schema=SCHEMA_TO_PROTO.get(Schema(row.source_schema), 0) if row.source_schema else 0,
        files=[common_pb2.FileEntry(**f) for f in row.files],
        recipe=struct(row.recipe),
        cleaning=[
            dataset_pb2.CleaningStepReport(
                operation=step["operation"],
                rows_in=step["rows_in"],
                rows_removed=step["rows_removed"],
                rows_changed=step["rows_changed"],
                examples=[struct(e) for e in step["examples"]],
            )
            for step in row.cleaning
        ],
        description=row.description,
        tags=row.tags,
        create_time=timestamp(row.create_time),
    )
