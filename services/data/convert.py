"""Rows and domain values to API messages, and API enums to domain values."""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2

from services.data.formats import Format, TextSplit
from services.data.ingest import Policy
from services.data.repo import DatasetInsightRow, DatasetRow, DatasetVersionRow, MixtureRow
from services.data.schemas import Schema
from services.kit.errors import InvalidArgument
from services.kit.names import NamePattern
from services.kit.rows import Kind
from services.kit.times import to_timestamp as timestamp
from tuneforge.common.v1 import common_pb2
from tuneforge.data.v1 import dataset_pb2
from tuneforge.enums import enum_values

DATASET = NamePattern("projects/{project}/datasets/{dataset}")
VERSION_TEMPLATE = "projects/{project}/datasets/{dataset}/versions/{version}"

KIND_TO_PROTO = {Kind(k): v for k, v in enum_values(dataset_pb2.DatasetKind, "DATASET_KIND_").items()}
KIND_FROM_PROTO = {v: k for k, v in KIND_TO_PROTO.items()}
FORMAT_TO_PROTO = {Format(k): v for k, v in enum_values(dataset_pb2.DataFormat, "DATA_FORMAT_").items()}
FORMAT_FROM_PROTO = {v: k for k, v in FORMAT_TO_PROTO.items()}
SCHEMA_TO_PROTO = {Schema(k): v for k, v in enum_values(dataset_pb2.DataSchema, "DATA_SCHEMA_").items()}
SCHEMA_FROM_PROTO = {v: k for k, v in SCHEMA_TO_PROTO.items()}
STATE_TO_PROTO = enum_values(dataset_pb2.DatasetVersionState, "DATASET_VERSION_STATE_")
COMPUTATION_TO_PROTO = enum_values(dataset_pb2.ComputationState, "COMPUTATION_STATE_")
TEXT_SPLIT_FROM_PROTO = {
    v: TextSplit(k) for k, v in enum_values(dataset_pb2.TextSplit, "TEXT_SPLIT_").items()
}
POLICY_FROM_PROTO = {v: Policy(k) for k, v in enum_values(dataset_pb2.ErrorPolicy, "ERROR_POLICY_").items()}


def kind_from_proto(value: int, field: str) -> Kind:
    if value not in KIND_FROM_PROTO:
        names = ", ".join(k.value for k in Kind)
        raise InvalidArgument.field(field, f"choose a kind: {names}")
    return KIND_FROM_PROTO[value]


def policy_from_proto(value: int, field: str = "options.error_policy") -> Policy:
    if value == 0:
        return Policy.FAIL
    return enum_from_proto(value, POLICY_FROM_PROTO, field)


def enum_from_proto(value: int, known: dict[int, Any], field: str) -> Any:
    """An enum field's value, refused when it is none this server knows (0: not set, None)."""
    if value == 0:
        return None
    if value not in known:
        raise InvalidArgument.field(
            field, f"{value} is not one of the values this server knows ({', '.join(map(str, known))})"
        )
    return known[value]


def check_seed(seed: int, field: str = "seed") -> int:
    """Seeds are 0 … 2^32 - 1 (what numpy's generators and Python's random accept alike)."""
    if not 0 <= seed < 2**32:
        raise InvalidArgument.field(field, f"must be between 0 and 4294967295 (got {seed})")
    return seed


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
        warnings=[warning_to_proto(w) for w in row.warnings or []],
        create_time=timestamp(row.create_time),
        failure=dataset_pb2.Failure(reason=row.failure_reason, message=row.failure_message)
        if row.failure_reason
        else None,
        update_time=timestamp(row.update_time or row.create_time),
    )


def insight_name(row: DatasetInsightRow) -> str:
    return f"{version_name(row.version)}/insights/{row.uid}"


def insight_to_proto(
    row: DatasetInsightRow, report: dict[str, Any] | None = None
) -> dataset_pb2.DatasetInsight:
    """The insight; `report` (its stored JSON) once READY. Presigned chart URLs are added by the caller."""
    report = report or {}
    return dataset_pb2.DatasetInsight(
        name=insight_name(row),
        dataset_version=version_name(row.version),
        state=COMPUTATION_TO_PROTO[row.state],
        tokenizer=row.tokenizer or report.get("tokenizer") or "",
        max_sequence_length=row.max_sequence_length or int(report.get("max_sequence_length") or 0),
        report=struct(report) if report else None,
        failure=dataset_pb2.Failure(reason=row.failure_reason, message=row.failure_message)
        if row.failure_reason
        else None,
        create_time=timestamp(row.create_time),
    )


def mixture_name(row: MixtureRow) -> str:
    return f"projects/{row.project}/mixtures/{row.mixture_id}"


def mixture_to_proto(row: MixtureRow) -> dataset_pb2.Mixture:
    from google.protobuf import json_format

    return dataset_pb2.Mixture(
        name=mixture_name(row),
        state=COMPUTATION_TO_PROTO[row.state],
        plan=json_format.ParseDict(row.plan, dataset_pb2.MixturePlan()) if row.plan else None,
        validation_ratio=row.validation_ratio,
        train_rows=row.train_rows,
        validation_rows=row.validation_rows,
        files=[common_pb2.FileEntry(**f) for f in row.files],
        failure=dataset_pb2.Failure(reason=row.failure_reason, message=row.failure_message)
        if row.failure_reason
        else None,
        create_time=timestamp(row.create_time),
    )


def warning_to_proto(warning: dict[str, Any]) -> dataset_pb2.DataWarning:
    details = {k: v for k, v in warning.items() if k not in ("reason", "message", "count", "row_ids")}
    return dataset_pb2.DataWarning(
        reason=warning["reason"],
        message=warning["message"],
        count=warning["count"],
        row_ids=warning["row_ids"],
        details=struct(details),
    )
