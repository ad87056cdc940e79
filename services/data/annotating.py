"""An annotation task's work on a data worker: its items made from the source rows, each
pre-labelled by the teacher (replies cached as augmentation's are, so a restarted worker asks only
what it lacks), progress stored every second; then the task is open for review. And the rows of a
finished task, for the version it writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import uuid
from typing import Any

import httpx2 as httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.data import annotation_labels as labels
from services.data.augment_convert import emit_task
from services.data.augment_runs import TeacherAccess, sql_cache
from services.data.augment_templates import render
from services.data.catalog import read_version_rows
from services.data.repo import (
    AnnotationItemRow,
    AnnotationReviewRow,
    AnnotationTaskRow,
    DatasetVersionRow,
    TeacherRow,
)
from services.data.teacher_calls import CallCounts, ReplyError, TeacherCalls, TeacherUnusable
from services.kit.db import Database
from services.kit.outbox import Outbox
from services.kit.rows import Kind, Row
from services.kit.store import ObjectStore
from services.kit.times import utcnow

PROGRESS_SECONDS = 1.0


def _shape(task: AnnotationTaskRow) -> labels.TaskShape:
    return labels.TaskShape(task.kind, tuple(task.labels), task.score_min, task.score_max)


class Annotating:
    def __init__(
        self, db: Database, store: ObjectStore, outbox: Outbox, access: TeacherAccess, http: httpx.AsyncClient
    ) -> None:
        self.db = db
        self.store = store
        self.outbox = outbox
        self.access = access
        self.http = http

    async def _set(self, uid: str, states: tuple[str, ...], changes: dict[str, Any], verb: str) -> bool:
        """Apply `changes` if the task is in one of `states`; False when it is not (cancelled, say)."""

        def set_(session: Session) -> bool:
            task = session.get(AnnotationTaskRow, uid, with_for_update=True)
            if task is None or task.state not in states:
                return False
            for key, value in changes.items():
                setattr(task, key, value)
            task.update_time = utcnow()
            session.flush()
            emit_task(self.outbox, session, task, verb)
            return True

        return await self.outbox.write(self.db, set_)

    async def fail(self, uid: str, reason: str, message: str) -> None:
        await self._set(
            uid,
            ("pending", "labelling"),
            {"state": "failed", "failure_reason": reason, "failure_message": message[:4000]},
            "failed",
        )

    async def prelabel(self, uid: str) -> None:
        task = await self.db.run(lambda s: s.get(AnnotationTaskRow, uid))
        if task is None or task.state not in ("pending", "labelling"):
            return
        source = await self.db.run(lambda s: s.get(DatasetVersionRow, task.source_uid))
        if source is None or source.state != "ready":
            await self.fail(uid, "SOURCE_DELETED", f"{task.source} was deleted before its items were made")
            return
        await self._make_items(task, source)
        if not await self._set(uid, ("pending", "labelling"), {"state": "labelling"}, "labelling"):
            return
        if task.teacher_uid:
            teacher = await self.db.run(lambda s: s.get(TeacherRow, task.teacher_uid))
            if teacher is None:
                await self.fail(uid, "TEACHER_DELETED", "the task's teacher was deleted")
                return
            counts = CallCounts()
            try:
                calls = TeacherCalls(
                    task.project,
                    self.access.endpoint(teacher),
                    sql_cache(self.db, task.project, teacher.uid),
                    counts,
                    self.http,
                )
                if not await self._label_all(task, calls, counts):
                    return  # cancelled
            except TeacherUnusable as error:
                await self.fail(uid, error.reason, error.message)
                return
        await self._set(uid, ("labelling",), {"state": "reviewing"}, "reviewing")

    async def _make_items(self, task: AnnotationTaskRow, source: DatasetVersionRow) -> None:
        """One item per source row (once: a redelivered task finds them made)."""
        if await self.db.run(
            lambda s: s.scalar(
                select(AnnotationItemRow.uid).where(AnnotationItemRow.task_uid == task.uid).limit(1)
            )
        ):
            return
        rows = await read_version_rows(self.store, source)
        if task.max_rows:
            rows = rows[: task.max_rows]
        kind = Kind(task.source_kind)
        chooser = random.Random(task.seed)

        def insert(session: Session) -> None:
            for position, row in enumerate(rows, start=1):
                candidates = (
                    labels.choice_candidates(row, kind, chooser.random() < 0.5)
                    if task.kind == "choice"
                    else []
                )
                session.add(
                    AnnotationItemRow(
                        uid=uuid.uuid4().hex,
                        task_uid=task.uid,
                        position=position,
                        row_id=str(row["id"]),
                        row=row,
                        candidates=candidates,
                        model_value={},
                        model_output="",
                        model_error="",
                        labelled=False,
                    )
                )

        await self.db.run(insert)

    async def _label_all(self, task: AnnotationTaskRow, calls: TeacherCalls, counts: CallCounts) -> bool:
        """Pre-label every item not labelled yet, `max_concurrency` at a time; False if cancelled."""
        todo = await self.db.run(
            lambda s: [
                (i.uid, i.row, i.candidates)
                for i in s.scalars(
                    select(AnnotationItemRow)
                    .where(AnnotationItemRow.task_uid == task.uid, AnnotationItemRow.labelled.is_(False))
                    .order_by(AnnotationItemRow.position)
                )
            ]
        )
        shape, kind = _shape(task), Kind(task.source_kind)
        queue = iter(todo)
        results: list[tuple[str, dict[str, Any], str, str]] = []

        async def worker() -> None:
            for item_uid, row, candidates in queue:
                prompt = render(
                    task.template, labels.item_values(row, kind, shape, candidates, task.instructions)
                )
                value, output, error = {}, "", ""
                try:
                    reply = await calls.ask(
                        [{"role": "user", "content": prompt}], temperature=0.0, max_tokens=_max_tokens(shape)
                    )
                    output = reply.text
                    value = labels.parse_model_label(shape, reply.text)
                except ReplyError as failure:
                    error = f"{failure.reason}: {failure.message}"
                except labels.LabelError as failure:
                    error = f"UNPARSEABLE: {failure}"
                results.append((item_uid, value, output[:20_000], error[:1000]))

        unusable: list[TeacherUnusable] = []

        async def guarded() -> None:
            try:
                await worker()
            except TeacherUnusable as error:
                unusable.append(error)

        tasks = [asyncio.create_task(guarded()) for _ in range(calls.endpoint.max_concurrency)]
        everything = asyncio.gather(*tasks)
        try:
            while not everything.done() and not unusable:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(everything), PROGRESS_SECONDS)
                if not await self._store_labels(task.uid, results, counts):
                    return False
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        # What arrived before the teacher became unusable stays, reviewable.
        stored = await self._store_labels(task.uid, results, counts)
        if unusable:
            raise unusable[0]
        return stored

    async def _store_labels(
        self, uid: str, results: list[tuple[str, dict[str, Any], str, str]], counts: CallCounts
    ) -> bool:
        """Write the labels received since the last time, with the progress; False if cancelled."""
        batch = results[:]
        del results[: len(batch)]

        def store(session: Session) -> bool:
            task = session.get(AnnotationTaskRow, uid, with_for_update=True)
            if task is None or task.state != "labelling":
                return False
            for item_uid, value, output, error in batch:
                item = session.get(AnnotationItemRow, item_uid)
                if item is not None:
                    item.model_value, item.model_output, item.model_error, item.labelled = (
                        value,
                        output,
                        error,
                        True,
                    )
            session.flush()
            labelled = session.scalars(
                select(AnnotationItemRow.model_error).where(
                    AnnotationItemRow.task_uid == uid, AnnotationItemRow.labelled.is_(True)
                )
            ).all()
            task.progress = {
                **task.progress,
                "prelabelled": sum(1 for e in labelled if not e),
                "prelabel_failed": sum(1 for e in labelled if e),
                "calls": counts.calls,
                "cached_calls": counts.cached_calls,
                "prompt_tokens": counts.prompt_tokens,
                "completion_tokens": counts.completion_tokens,
                "cost_estimate": round(counts.cost, 6),
            }
            task.update_time = utcnow()
            session.flush()
            emit_task(self.outbox, session, task, "progress")
            return True

        return await self.outbox.write(self.db, store)


def _max_tokens(shape: labels.TaskShape) -> int | None:
    """A label needs a line; a corrected answer as long as the teacher's default allows."""
    return None if shape.kind == "correction" else 64


def finished_rows(
    db_session: Session, task_uid: str, options: dict[str, Any]
) -> tuple[Kind, list[Row], bytes]:
    """The rows a finished task keeps, in row order, and its `labels.jsonl` (each kept row's label,
    whether people or the model gave it, and the reviews)."""
    task = db_session.get(AnnotationTaskRow, task_uid)
    if task is None:
        raise LookupError("the annotation task was deleted")
    shape, kind = _shape(task), Kind(task.source_kind)
    items = db_session.scalars(
        select(AnnotationItemRow)
        .where(AnnotationItemRow.task_uid == task_uid)
        .order_by(AnnotationItemRow.position)
    ).all()
    reviews: dict[str, list[labels.Review]] = {}
    for r in db_session.scalars(select(AnnotationReviewRow).where(AnnotationReviewRow.task_uid == task_uid)):
        reviews.setdefault(r.item_uid, []).append(
            labels.Review(r.annotator, r.action, r.value, r.review_time)
        )
    rows: list[Row] = []
    lines: list[str] = []
    for item in items:
        status, value = labels.decide(reviews.get(item.uid, []))
        by = "review"
        if status == "unreviewed" and options["include_unreviewed"] and item.model_value:
            status, value, by = "kept", dict(item.model_value), "model"
        if status != "kept":
            continue
        if options["min_score"] and value.get("score", options["min_score"]) < options["min_score"]:
            continue
        if options["keep_labels"] and value.get("label") not in options["keep_labels"]:
            continue
        rows.append(labels.output_row(item.row, kind, shape, value, item.candidates))
        lines.append(
            json.dumps(
                {"id": item.row_id, **value, "by": by, "reviews": len(reviews.get(item.uid, []))},
                ensure_ascii=False,
            )
        )
    return shape.output_kind(kind), rows, "".join(line + "\n" for line in lines).encode()
