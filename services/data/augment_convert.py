"""Teachers, augmentation runs and annotation tasks: their names, their rows as API messages, and
their events."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session

from services.kit.errors import InvalidArgument
from services.kit.names import NamePattern
from services.kit.outbox import Outbox
from services.kit.times import to_timestamp
from tuneforge.common.v1 import common_pb2
from tuneforge.data.v1 import augmentation_pb2, dataset_pb2
from tuneforge.enums import enum_values
from tuneforge.events.v1 import data_events_pb2

TEACHER = NamePattern("projects/{project}/teachers/{teacher}")
RUN = NamePattern("projects/{project}/augmentationRuns/{run}")
TASK = NamePattern("projects/{project}/annotationTasks/{task}")


def _position(value: str, field: str) -> str:
    if not value.isdigit() or not 0 < int(value) <= 10**6 or value.startswith("0"):
        raise InvalidArgument.field(field, f"item {value[:20]!r} is not a row position (1, 2, ...)")
    return value


ITEM = NamePattern("projects/{project}/annotationTasks/{task}/items/{item}", {"item": _position})

OPERATION_TO_PROTO = enum_values(augmentation_pb2.AugmentationOperation, "AUGMENTATION_OPERATION_")
OPERATION_FROM_PROTO = {v: k for k, v in OPERATION_TO_PROTO.items()}
RUN_STATE_TO_PROTO = enum_values(augmentation_pb2.AugmentationState, "AUGMENTATION_STATE_")
ANNOTATION_KIND_TO_PROTO = enum_values(augmentation_pb2.AnnotationKind, "ANNOTATION_KIND_")
ANNOTATION_KIND_FROM_PROTO = {v: k for k, v in ANNOTATION_KIND_TO_PROTO.items()}
TASK_STATE_TO_PROTO = enum_values(augmentation_pb2.AnnotationState, "ANNOTATION_STATE_")
ACTION_TO_PROTO = enum_values(augmentation_pb2.ReviewAction, "REVIEW_ACTION_")
ACTION_FROM_PROTO = {v: k for k, v in ACTION_TO_PROTO.items()}
ITEM_STATUS_TO_PROTO = enum_values(augmentation_pb2.AnnotationItemStatus, "ANNOTATION_ITEM_STATUS_")
KIND_TO_PROTO = enum_values(dataset_pb2.DatasetKind, "DATASET_KIND_")


def teacher_name(row: Any) -> str:
    return TEACHER.format(project=row.project, teacher=row.teacher_id)


def run_name(row: Any) -> str:
    return RUN.format(project=row.project, run=row.run_id)


def task_name(row: Any) -> str:
    return TASK.format(project=row.project, task=row.task_id)


def teacher_to_proto(row: Any) -> augmentation_pb2.Teacher:
    limits = row.limits
    return augmentation_pb2.Teacher(
        name=teacher_name(row),
        uid=row.uid,
        display_name=row.display_name,
        deployment=row.deployment,
        base_url=row.base_url,
        model=row.model,
        has_api_key=bool(row.sealed_api_key),
        max_concurrency=limits["max_concurrency"],
        requests_per_minute=limits["requests_per_minute"],
        timeout_seconds=limits["timeout_seconds"],
        max_retries=limits["max_retries"],
        input_cost_per_million_tokens=limits["input_cost_per_million_tokens"],
        output_cost_per_million_tokens=limits["output_cost_per_million_tokens"],
        create_time=to_timestamp(row.create_time),
        update_time=to_timestamp(row.update_time),
    )


def emit_teacher(outbox: Outbox, session: Session, row: Any, verb: str) -> augmentation_pb2.Teacher:
    proto = teacher_to_proto(row)
    outbox.emit(
        session, "teacher", verb, proto.name, row.project, data_events_pb2.TeacherEvent(teacher=proto)
    )
    return proto


def run_to_proto(
    row: Any, rejects_url: common_pb2.PresignedUrl | None = None
) -> augmentation_pb2.AugmentationRun:
    spec, progress = row.spec, row.progress
    params = dict(spec["parameters"])
    params["output_kind"] = KIND_TO_PROTO[params["output_kind"]]
    filters = dict(spec["filters"])
    filters["json_schema"] = json.dumps(filters["json_schema"]) if filters["json_schema"] is not None else ""
    if filters["judge_min_score"] is None:
        del filters["judge_min_score"]
    proto = augmentation_pb2.AugmentationRun(
        name=run_name(row),
        uid=row.uid,
        source=row.source,
        output_dataset=row.output_dataset,
        operation=OPERATION_TO_PROTO[row.operation],
        teacher=spec["teacher"],
        judge=spec["judge"],
        templates=spec["templates"],
        parameters=augmentation_pb2.AugmentationParameters(**params),
        filters=augmentation_pb2.AugmentationFilters(**filters),
        state=RUN_STATE_TO_PROTO[row.state],
        progress=augmentation_pb2.AugmentationProgress(**progress),
        errors_by_reason=row.errors_by_reason,
        error_examples=[augmentation_pb2.AugmentationRowError(**e) for e in row.error_examples],
        output_version=row.output_version,
        description=row.description,
        create_time=to_timestamp(row.create_time),
        update_time=to_timestamp(row.update_time),
    )
    if row.failure_reason:
        proto.failure.CopyFrom(dataset_pb2.Failure(reason=row.failure_reason, message=row.failure_message))
    if rejects_url is not None:
        proto.rejects.CopyFrom(rejects_url)
    return proto


def emit_run(outbox: Outbox, session: Session, row: Any, verb: str) -> augmentation_pb2.AugmentationRun:
    proto = run_to_proto(row)
    outbox.emit(
        session,
        "augmentation_run",
        verb,
        proto.name,
        row.project,
        data_events_pb2.AugmentationRunEvent(augmentation_run=proto),
    )
    return proto


def value_to_proto(value: dict[str, Any]) -> augmentation_pb2.AnnotationValue:
    return augmentation_pb2.AnnotationValue(**value)


def task_to_proto(
    row: Any, agreement: augmentation_pb2.AnnotationAgreement | None = None
) -> augmentation_pb2.AnnotationTask:
    proto = augmentation_pb2.AnnotationTask(
        name=task_name(row),
        uid=row.uid,
        source=row.source,
        kind=ANNOTATION_KIND_TO_PROTO[row.kind],
        instructions=row.instructions,
        labels=row.labels,
        score_min=row.score_min,
        score_max=row.score_max,
        teacher=row.teacher,
        template=row.template,
        max_rows=row.max_rows,
        state=TASK_STATE_TO_PROTO[row.state],
        progress=augmentation_pb2.AnnotationProgress(**row.progress),
        output_version=row.output_version,
        create_time=to_timestamp(row.create_time),
        update_time=to_timestamp(row.update_time),
    )
    if agreement is not None:
        proto.agreement.CopyFrom(agreement)
    if row.failure_reason:
        proto.failure.CopyFrom(dataset_pb2.Failure(reason=row.failure_reason, message=row.failure_message))
    return proto


def emit_task(outbox: Outbox, session: Session, row: Any, verb: str) -> augmentation_pb2.AnnotationTask:
    proto = task_to_proto(row)
    outbox.emit(
        session,
        "annotation_task",
        verb,
        proto.name,
        row.project,
        data_events_pb2.AnnotationTaskEvent(annotation_task=proto),
    )
    return proto
