"""Annotation tasks (智能标注), the resource: created with their checks, pre-labelled by a data worker
(`annotating.py`), reviewed item by item by people (accept, edit or reject), with the agreement
between the model and people and among people; finishing writes a dataset version of what the
reviews keep.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from typing import Any

from google.protobuf import json_format
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.data import annotation_labels as labels
from services.data import augment_templates as templates
from services.data.augment_convert import (
    ACTION_FROM_PROTO,
    ANNOTATION_KIND_FROM_PROTO,
    ITEM,
    ITEM_STATUS_TO_PROTO,
    TASK,
    emit_task,
    task_name,
    task_to_proto,
    value_to_proto,
)
from services.data.catalog import DataCatalog
from services.data.convert import DATASET, version_name
from services.data.datasets import Datasets
from services.data.repo import (
    AnnotationItemRow,
    AnnotationReviewRow,
    AnnotationTaskRow,
    DatasetRow,
    TeacherRow,
)
from services.data.teachers import Teachers
from services.data.versions import NewVersion, accept_version_in
from services.kit.auth import parse_in_project, require_project
from services.kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from services.kit.names import PROJECT, check_id, check_text, page_size, parse_filter, quote
from services.kit.rows import Kind
from services.kit.times import to_timestamp, utcnow
from services.kit.watch import changes
from tuneforge.data.v1 import augmentation_pb2

MAX_ITEMS = 10_000
OPEN = ("pending", "labelling", "reviewing", "failed")
# States in which people may review (a task whose pre-labelling failed keeps what was labelled).
REVIEWABLE = ("labelling", "reviewing", "failed")
TEMPLATE_OF = {kind: f"annotate_{kind}" for kind in labels.KINDS}
ZERO_PROGRESS = {
    "items": 0,
    "prelabelled": 0,
    "prelabel_failed": 0,
    "reviewed": 0,
    "calls": 0,
    "cached_calls": 0,
    "prompt_tokens": 0,
    "completion_tokens": 0,
    "cost_estimate": 0.0,
}


def shape_of(row: AnnotationTaskRow) -> labels.TaskShape:
    return labels.TaskShape(row.kind, tuple(row.labels), row.score_min, row.score_max)


def reviews_of(rows: Sequence[AnnotationReviewRow]) -> list[labels.Review]:
    return [labels.Review(r.annotator, r.action, r.value, r.review_time) for r in rows]


def item_to_proto(task: AnnotationTaskRow, item: AnnotationItemRow, reviews: Sequence[AnnotationReviewRow]):  # type: ignore[no-untyped-def]
    status, final = labels.decide(reviews_of(reviews))
    proto = augmentation_pb2.AnnotationItem(
        name=f"{task_name(task)}/items/{item.position}",
        row_id=item.row_id,
        candidates=item.candidates,
        model_output=item.model_output,
        model_error=item.model_error,
        status=ITEM_STATUS_TO_PROTO[status],
        reviews=[
            augmentation_pb2.AnnotationReview(
                annotator=r.annotator,
                action=ACTION_TO_PROTO_BY_NAME[r.action],
                value=value_to_proto(r.value),
                review_time=to_timestamp(r.review_time),
            )
            for r in sorted(reviews, key=lambda r: r.review_time)
        ],
    )
    proto.row.update(item.row)
    if item.model_value:
        proto.model_value.CopyFrom(value_to_proto(item.model_value))
    if final:
        proto.final_value.CopyFrom(value_to_proto(final))
    return proto


ACTION_TO_PROTO_BY_NAME = {name: value for value, name in ACTION_FROM_PROTO.items()}


def _check_template(
    task: augmentation_pb2.AnnotationTask,
    shape: labels.TaskShape,
    has_teacher: bool,
    rows: list[Any],
    kind: Kind,
) -> str:
    """The pre-labelling prompt (the task's, or the kind's default), checked against the rows."""
    if not has_teacher:
        if task.template:
            raise InvalidArgument.field(
                "annotation_task.template", "a template needs a teacher to send it to"
            )
        return ""
    name = TEMPLATE_OF[shape.kind]
    try:
        return templates.check({name: task.template} if task.template else {}, [name], rows, kind)[name]
    except templates.TemplateError as error:
        raise InvalidArgument.field("annotation_task.template", str(error)) from None


class Annotations:
    def __init__(self, catalog: DataCatalog, datasets: Datasets, teachers: Teachers) -> None:
        self.catalog = catalog
        self.datasets = datasets
        self.teachers = teachers

    # -- creating ------------------------------------------------------------------------------

    def _check_shape(self, task: augmentation_pb2.AnnotationTask, source: Kind) -> labels.TaskShape:
        kind = ANNOTATION_KIND_FROM_PROTO.get(task.kind)
        if kind not in labels.KINDS:
            raise InvalidArgument.field("annotation_task.kind", f"choose a kind: {', '.join(labels.KINDS)}")
        if source not in labels.SOURCE_KINDS[kind]:
            raise InvalidArgument.field(
                "annotation_task.source",
                f"a {kind} task reads {', '.join(k.value for k in labels.SOURCE_KINDS[kind])} rows, "
                f"not {source.value}",
            )
        names: tuple[str, ...] = ()
        low, high = task.score_min or 1, task.score_max or 5
        if kind == "label":
            names = tuple(task.labels)
            if not 2 <= len(names) <= 50 or len(set(names)) != len(names):
                raise InvalidArgument.field("annotation_task.labels", "give 2-50 distinct labels")
            if any(not n.strip() or len(n) > 100 or n == labels.REJECT for n in names):
                raise InvalidArgument.field("annotation_task.labels", "each label is 1-100 characters")
        elif task.labels:
            raise InvalidArgument.field("annotation_task.labels", "only a label task takes labels")
        if kind == "score" and not (-1000 <= low < high <= 1000 and high - low <= 100):
            raise InvalidArgument.field(
                "annotation_task.score_max", f"the range {low}-{high} must rise by 1-100 within -1000…1000"
            )
        return labels.TaskShape(kind, names, low, high)

    async def create(
        self, parent: str, task_id: str, task: augmentation_pb2.AnnotationTask, request_id: str
    ) -> augmentation_pb2.AnnotationTask:
        project = PROJECT.parse(parent, "parent")["project"]
        require_project(project)
        task_id = check_id(task_id, "annotation_task_id", what="task id") if task_id else ""
        check_text(request_id, "request_id", 128)
        instructions = check_text(task.instructions, "annotation_task.instructions", 4000)
        if request_id:
            found = await self.catalog.db.run(lambda s: self._by_request(s, project, request_id))
            if found is not None:
                return found

        source, teacher = await self.catalog.db.run(lambda s: self._resolve(s, project, task))
        kind = Kind(source.kind)
        shape = self._check_shape(task, kind)
        if not 0 <= task.max_rows <= MAX_ITEMS:
            raise InvalidArgument.field("annotation_task.max_rows", f"must be between 0 and {MAX_ITEMS}")
        rows = await self.catalog.load_rows(source)
        if len(rows) > MAX_ITEMS and not task.max_rows:
            raise InvalidArgument.field(
                "annotation_task.max_rows",
                f"{version_name(source)} has {len(rows)} rows; a task holds at most {MAX_ITEMS}: set max_rows",
            )
        used = rows[: task.max_rows] if task.max_rows else rows
        template = _check_template(task, shape, teacher is not None, used, kind)

        def insert(session: Session) -> augmentation_pb2.AnnotationTask:
            uid, now = uuid.uuid4().hex, utcnow()
            chosen = task_id or f"task-{uid[:12]}"
            if session.scalar(
                select(AnnotationTaskRow.uid).where(
                    AnnotationTaskRow.project == project, AnnotationTaskRow.task_id == chosen
                )
            ):
                raise AlreadyExists(f"{TASK.format(project=project, task=chosen)} already exists")
            row = AnnotationTaskRow(
                uid=uid,
                project=project,
                task_id=chosen,
                source_uid=source.uid,
                source=version_name(source),
                source_kind=kind.value,
                kind=shape.kind,
                instructions=instructions,
                labels=list(shape.labels),
                score_min=shape.score_min,
                score_max=shape.score_max,
                teacher_uid=teacher.uid if teacher else "",
                teacher=task.teacher if teacher else "",
                template=template,
                max_rows=task.max_rows,
                seed=int(uid[:8], 16),
                state="pending",
                progress={**ZERO_PROGRESS, "items": len(used)},
                output_version_uid="",
                output_version="",
                failure_reason="",
                failure_message="",
                request_id=request_id or None,
                create_time=now,
                update_time=now,
            )
            session.add(row)
            session.flush()
            self.catalog.enqueue(session, "annotation", uid)
            return emit_task(self.catalog.outbox, session, row, "created")

        try:
            return await self.catalog.outbox.write(self.catalog.db, insert)
        except IntegrityError:
            found = await self.catalog.db.run(lambda s: self._by_request(s, project, request_id))
            if found is None:
                raise
            return found

    def _resolve(
        self, session: Session, project: str, task: augmentation_pb2.AnnotationTask
    ) -> tuple[Any, TeacherRow | None]:
        """The task's source version (ready, in the project) and its teacher, if it has one."""
        source = self.catalog.version_row(session, task.source, "annotation_task.source", ready=True)
        if source.dataset.project != project:
            raise InvalidArgument.field("annotation_task.source", f"is not in project {project}")
        teacher = (
            self.teachers.find(session, task.teacher, "annotation_task.teacher") if task.teacher else None
        )
        session.expunge_all()
        return source, teacher

    @staticmethod
    def _by_request(
        session: Session, project: str, request_id: str
    ) -> augmentation_pb2.AnnotationTask | None:
        row = session.scalar(
            select(AnnotationTaskRow).where(
                AnnotationTaskRow.project == project, AnnotationTaskRow.request_id == request_id
            )
        )
        return task_to_proto(row) if row else None

    # -- reading -------------------------------------------------------------------------------

    @staticmethod
    def find(session: Session, name: str, field: str = "name", *, lock: bool = False) -> AnnotationTaskRow:
        parts = parse_in_project(TASK, name, field)
        query = select(AnnotationTaskRow).where(
            AnnotationTaskRow.project == parts["project"], AnnotationTaskRow.task_id == parts["task"]
        )
        row = session.scalar(query.with_for_update() if lock else query)
        if row is None:
            raise NotFound(f"annotation task {name} does not exist")
        return row

    @staticmethod
    def _items_with_reviews(
        session: Session, task_uid: str
    ) -> list[tuple[AnnotationItemRow, list[AnnotationReviewRow]]]:
        items = session.scalars(
            select(AnnotationItemRow)
            .where(AnnotationItemRow.task_uid == task_uid)
            .order_by(AnnotationItemRow.position)
        ).all()
        by_item: dict[str, list[AnnotationReviewRow]] = defaultdict(list)
        for review in session.scalars(
            select(AnnotationReviewRow).where(AnnotationReviewRow.task_uid == task_uid)
        ):
            by_item[review.item_uid].append(review)
        return [(item, by_item[item.uid]) for item in items]

    def _proto_with_agreement(
        self, session: Session, row: AnnotationTaskRow
    ) -> augmentation_pb2.AnnotationTask:
        items = self._items_with_reviews(session, row.uid)
        found = labels.agreement(row.kind, [(i.model_value, reviews_of(r)) for i, r in items])
        proto = task_to_proto(row, augmentation_pb2.AnnotationAgreement(**found.__dict__))
        proto.progress.reviewed = found.reviewed_items
        return proto

    async def get(self, name: str) -> augmentation_pb2.AnnotationTask:
        return await self.catalog.db.run(lambda s: self._proto_with_agreement(s, self.find(s, name)))

    async def list(
        self, parent: str, size: int, token: str
    ) -> tuple[list[augmentation_pb2.AnnotationTask], str]:
        return await self.catalog.list_newest(
            parent, size, token, AnnotationTaskRow, "ListAnnotationTasks", task_to_proto
        )

    async def watch(self, name: str) -> AsyncIterator[augmentation_pb2.AnnotationTask]:
        await self.catalog.db.run(lambda s: self.find(s, name))
        assert self.catalog.feed is not None
        settled = (
            augmentation_pb2.ANNOTATION_STATE_REVIEWING,
            augmentation_pb2.ANNOTATION_STATE_FINISHED,
            augmentation_pb2.ANNOTATION_STATE_FAILED,
            augmentation_pb2.ANNOTATION_STATE_CANCELLED,
        )
        async for task in changes(
            self.catalog.feed, name, lambda: self.get(name), lambda t: t.state in settled
        ):
            yield task

    async def items(
        self, parent: str, size: int, token: str, filter_text: str
    ) -> tuple[list[augmentation_pb2.AnnotationItem], str]:
        size = min(page_size(size), 500)
        terms = parse_filter(filter_text, lambda k: k in ("status", "annotator", "model"))
        for key, value in terms:
            allowed = {"status": ("unreviewed", "kept", "rejected"), "model": ("failed", "labelled")}.get(key)
            if allowed and value not in allowed:
                raise InvalidArgument.field(
                    "filter", f"{key} is one of {', '.join(allowed)} (got {quote(value)})"
                )
        start = 0
        if token:
            start = int(
                self.catalog.page_tokens.decode(token, f"ListAnnotationItems|{parent}|{filter_text}")["p"]
            )

        def list_(session: Session) -> tuple[list[augmentation_pb2.AnnotationItem], str]:
            task = self.find(session, parent, "parent")
            page: list[augmentation_pb2.AnnotationItem] = []
            for item, reviews in self._items_with_reviews(session, task.uid):
                if item.position <= start or not _matches(item, reviews, terms):
                    continue
                if len(page) == size:
                    token_out = self.catalog.page_tokens.encode(
                        {"p": page[-1].name.rsplit("/", 1)[1]}, f"ListAnnotationItems|{parent}|{filter_text}"
                    )
                    return page, token_out
                page.append(item_to_proto(task, item, reviews))
            return page, ""

        return await self.catalog.db.run(list_)

    # -- reviewing -----------------------------------------------------------------------------

    async def review(
        self, name: str, annotator: str, action: int, value: augmentation_pb2.AnnotationValue
    ) -> augmentation_pb2.AnnotationItem:
        parts = parse_in_project(ITEM, name, "name")
        annotator = check_text(annotator.strip(), "annotator", 100)
        if not annotator:
            raise InvalidArgument.field("annotator", "name who reviews (1-100 characters)")
        verb = ACTION_FROM_PROTO.get(action)
        if verb not in ("accept", "edit", "reject"):
            raise InvalidArgument.field("action", "choose accept, edit or reject")
        given = json_format.MessageToDict(value, preserving_proto_field_name=True)
        if verb != "edit" and given:
            raise InvalidArgument.field("value", f"{verb} takes no value (edit does)")

        def review_(session: Session) -> augmentation_pb2.AnnotationItem:
            task = self.find(
                session, TASK.format(project=parts["project"], task=parts["task"]), "name", lock=True
            )
            if task.state not in REVIEWABLE:
                raise FailedPrecondition(
                    f"{task_name(task)} is {task.state}: items can be reviewed once pre-labelling has started "
                    "and until the task is finished",
                    reason="TASK_NOT_REVIEWABLE",
                )
            item = session.scalar(
                select(AnnotationItemRow).where(
                    AnnotationItemRow.task_uid == task.uid, AnnotationItemRow.position == int(parts["item"])
                )
            )
            if item is None:
                raise NotFound(f"{name} does not exist")
            if verb == "accept":
                if not item.model_value:
                    raise FailedPrecondition(
                        f"{name} has no model label to accept ({item.model_error or 'not labelled yet'}); edit it",
                        reason="NO_MODEL_LABEL",
                    )
                chosen = dict(item.model_value)
            elif verb == "edit":
                try:
                    chosen = labels.check_value(shape_of(task), given)
                except labels.LabelError as error:
                    raise InvalidArgument.field("value", str(error)) from None
            else:
                chosen = {}
            existing = session.get(AnnotationReviewRow, (item.uid, annotator))
            if existing is None:
                session.add(
                    AnnotationReviewRow(
                        item_uid=item.uid,
                        annotator=annotator,
                        task_uid=task.uid,
                        action=verb,
                        value=chosen,
                        review_time=utcnow(),
                    )
                )
            else:
                existing.action, existing.value, existing.review_time = verb, chosen, utcnow()
            task.update_time = utcnow()
            session.flush()
            emit_task(self.catalog.outbox, session, task, "reviewed")
            reviews = session.scalars(
                select(AnnotationReviewRow).where(AnnotationReviewRow.item_uid == item.uid)
            ).all()
            return item_to_proto(task, item, reviews)

        return await self.catalog.outbox.write(self.catalog.db, review_)

    async def finish(self, request: Any) -> augmentation_pb2.AnnotationTask:
        check_text(request.request_id, "request_id", 128)
        out_parts = parse_in_project(DATASET, request.output_dataset, "output_dataset")

        def finish_(session: Session) -> augmentation_pb2.AnnotationTask:
            task = self.find(session, request.name, lock=True)
            if out_parts["project"] != task.project:
                raise InvalidArgument.field("output_dataset", f"is not in project {task.project}")
            if task.state == "finished":
                return self._proto_with_agreement(session, task)  # a retried finish
            if task.state not in ("reviewing", "failed"):
                raise FailedPrecondition(
                    f"{request.name} is {task.state}; a task finishes once it is open for review",
                    reason="TASK_NOT_FINISHABLE",
                )
            shape = shape_of(task)
            keep_labels = list(request.keep_labels)
            if keep_labels and (shape.kind != "label" or set(keep_labels) - set(shape.labels)):
                raise InvalidArgument.field(
                    "keep_labels", f"must be labels of the task ({', '.join(shape.labels)})"
                )
            if request.min_score and (
                shape.kind != "score" or not shape.score_min <= request.min_score <= shape.score_max
            ):
                raise InvalidArgument.field(
                    "min_score", f"must be a score of the task ({shape.score_min}-{shape.score_max})"
                )
            out_kind = shape.output_kind(Kind(task.source_kind))
            output = session.scalar(
                select(DatasetRow).where(
                    DatasetRow.project == task.project, DatasetRow.dataset_id == out_parts["dataset"]
                )
            )
            if output is None:
                output = self.datasets.insert_dataset(
                    session, task.project, out_parts["dataset"], out_kind, "", "", {}, ""
                )
            elif output.kind != out_kind.value:
                raise InvalidArgument.field(
                    "output_dataset",
                    f"{request.output_dataset} holds {output.kind} rows; this task makes {out_kind.value} rows",
                )
            options = {
                "include_unreviewed": request.include_unreviewed,
                "min_score": request.min_score,
                "keep_labels": keep_labels,
            }
            recipe = {
                "op": "annotation",
                "annotation_task": task_name(task),
                "source": task.source,
                "kind": task.kind,
                "teacher": task.teacher,
                "instructions": task.instructions,
                "labels": task.labels,
                "score_range": [task.score_min, task.score_max],
                "template": task.template,
                **options,
            }
            made = accept_version_in(
                session,
                self.catalog.outbox,
                output.uid,
                NewVersion(
                    kind=out_kind,
                    task={"op": "annotation", "task_uid": task.uid, "options": options},
                    recipe=recipe,
                    source_file=f"annotation of {task.source}",
                    request_id=request.request_id,
                ),
            )
            task.output_version_uid = made.uid
            task.output_version = version_name(made)
            task.state, task.update_time = "finished", utcnow()
            session.flush()
            emit_task(self.catalog.outbox, session, task, "finished")
            return self._proto_with_agreement(session, task)

        return await self.catalog.outbox.write(self.catalog.db, finish_)

    async def cancel(self, name: str) -> augmentation_pb2.AnnotationTask:
        def cancel_(session: Session) -> augmentation_pb2.AnnotationTask:
            task = self.find(session, name, lock=True)
            if task.state not in OPEN:
                raise FailedPrecondition(f"{name} has already ended ({task.state})", reason="TASK_ENDED")
            task.state, task.update_time = "cancelled", utcnow()
            session.flush()
            return emit_task(self.catalog.outbox, session, task, "cancelled")

        return await self.catalog.outbox.write(self.catalog.db, cancel_)


def _matches(
    item: AnnotationItemRow, reviews: Sequence[AnnotationReviewRow], terms: list[tuple[str, str]]
) -> bool:
    for key, value in terms:
        if key == "status" and labels.decide(reviews_of(reviews))[0] != value:
            return False
        if key == "annotator" and all(r.annotator != value for r in reviews):
            return False
        if (
            key == "model"
            and (bool(item.model_error) if value == "failed" else bool(item.model_value)) is False
        ):
            return False
    return True
