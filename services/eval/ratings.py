"""Human evaluation (人工评估) of a finished evaluation's answers: rating tasks (a score 1-N per answer,
or a blind side-by-side A/B), the raters' judgements, and their agreement."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.eval.evaluations import EVALUATION, TASK, Evaluations, evaluation_name
from services.eval.repo import EvaluationRow, RatingRow, RatingTaskRow
from services.kit.agreement import fleiss_kappa, percent_agreement
from services.kit.auth import parse_in_project
from services.kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from services.kit.names import check_id, check_text, page_size
from services.kit.times import to_timestamp, utcnow
from tuneforge.eval.v1 import evaluation_pb2


class Ratings:
    def __init__(self, evaluations: Evaluations) -> None:
        self.evaluations = evaluations

    def _task(self, session: Session, name: str, field: str = "name") -> tuple[EvaluationRow, RatingTaskRow]:
        parts = parse_in_project(TASK, name, field)
        evaluation = self.evaluations.find(
            session, EVALUATION.format(project=parts["project"], evaluation=parts["evaluation"])
        )
        task = session.scalar(
            select(RatingTaskRow).where(
                RatingTaskRow.evaluation_uid == evaluation.uid, RatingTaskRow.task_id == parts["task"]
            )
        )
        if task is None:
            raise NotFound(f"rating task {name} does not exist")
        return evaluation, task

    @staticmethod
    def _task_proto(evaluation: EvaluationRow, task: RatingTaskRow) -> evaluation_pb2.RatingTask:
        return evaluation_pb2.RatingTask(
            name=f"{evaluation_name(evaluation)}/ratingTasks/{task.task_id}",
            kind=task.kind,
            model_versions=task.model_versions,
            scale=task.scale,
            items=task.items,
            create_time=to_timestamp(task.create_time),
        )

    async def create_task(self, parent: str, task: evaluation_pb2.RatingTask) -> evaluation_pb2.RatingTask:
        evaluation = await self.evaluations.db.run(lambda s: self.evaluations.find(s, parent, "parent"))
        if evaluation.state != "succeeded":
            raise FailedPrecondition(
                f"{parent} has not succeeded; rate the answers of a finished evaluation",
                reason="NOT_FINISHED",
            )
        kind = task.kind or "rating"
        expected = {"rating": 1, "side_by_side": 2}
        if kind not in expected:
            raise InvalidArgument.field("rating_task.kind", "rating or side_by_side")
        models = list(task.model_versions) or [m["name"] for m in evaluation.spec["models"]][: expected[kind]]
        evaluated = {m["name"] for m in evaluation.spec["models"]}
        if len(models) != expected[kind] or not set(models) <= evaluated:
            raise InvalidArgument.field(
                "rating_task.model_versions",
                f"{kind} takes {expected[kind]} of this evaluation's model versions",
            )
        scale = task.scale or 5
        if not 2 <= scale <= 100:
            raise InvalidArgument.field("rating_task.scale", "must be between 2 and 100")
        task_id = task.name.rsplit("/", 1)[-1] if task.name else f"task-{uuid.uuid4().hex[:8]}"
        check_id(task_id, "rating_task.name", what="task id")

        def insert(session: Session) -> evaluation_pb2.RatingTask:
            row = RatingTaskRow(
                uid=uuid.uuid4().hex,
                evaluation_uid=evaluation.uid,
                task_id=task_id,
                kind=kind,
                model_versions=models,
                scale=scale,
                items=evaluation.total_samples,
                create_time=utcnow(),
            )
            session.add(row)
            session.flush()
            return self._task_proto(evaluation, row)

        try:
            return await self.evaluations.db.run(insert)
        except IntegrityError:
            raise AlreadyExists(f"rating task {task_id} already exists") from None

    async def items(self, parent: str, size: int, token: str) -> tuple[list[evaluation_pb2.RatingItem], str]:
        evaluation, task = await self.evaluations.db.run(lambda s: self._task(s, parent, "parent"))
        size = page_size(size)
        predictions = {}
        for model in task.model_versions:
            predictions[model] = {p.sample_id: p for p in (await self._all_predictions(evaluation, model))}
        ids = sorted(predictions[task.model_versions[0]])
        context = f"ListRatingItems|{task.uid}"
        offset = self.evaluations.page_tokens.decode(token, context)["o"] if token else 0
        page = ids[offset : offset + size]
        first = predictions[task.model_versions[0]]
        items = [
            evaluation_pb2.RatingItem(
                sample_id=i,
                prompt=first[i].prompt,
                reference=first[i].reference,
                answers=[predictions[m][i].prediction for m in task.model_versions],
            )
            for i in page
        ]
        end = offset + len(page)
        return items, self.evaluations.page_tokens.encode({"o": end}, context) if end < len(ids) else ""

    async def _all_predictions(
        self, evaluation: EvaluationRow, model: str
    ) -> list[evaluation_pb2.SamplePrediction]:
        out, token = [], ""
        while True:
            page, token = await self.evaluations.predictions(
                evaluation_name(evaluation), model, "", 1000, token
            )
            out.extend(page)
            if not token:
                return out

    async def submit(
        self, name: str, sample_id: str, rater: str, score: int, preference: str, comment: str
    ) -> int:
        evaluation, task = await self.evaluations.db.run(lambda s: self._task(s, name, "rating_task"))
        if not rater.strip() or len(rater) > 200:
            raise InvalidArgument.field("rater", "name the rater (at most 200 characters)")
        check_text(comment, "comment", 4000)
        if task.kind == "rating":
            if not 1 <= score <= task.scale:
                raise InvalidArgument.field("score", f"must be between 1 and {task.scale}")
            preference = ""
        else:
            if preference not in ("A", "B", "tie"):
                raise InvalidArgument.field("preference", "A, B or tie")
            score = 0
        known = {p.sample_id for p in await self._all_predictions(evaluation, task.model_versions[0])}
        if sample_id not in known:
            raise InvalidArgument.field("sample_id", f"{sample_id!r} is not an item of this task")

        def upsert(session: Session) -> int:
            row = session.scalar(
                select(RatingRow).where(
                    RatingRow.task_uid == task.uid, RatingRow.sample_id == sample_id, RatingRow.rater == rater
                )
            )
            if row is None:
                row = RatingRow(task_uid=task.uid, sample_id=sample_id, rater=rater)
                session.add(row)
            row.score, row.preference, row.comment, row.time = (score or None), preference, comment, utcnow()
            session.flush()
            return (
                session.scalar(
                    select(func.count())
                    .select_from(RatingRow)
                    .where(RatingRow.task_uid == task.uid, RatingRow.sample_id == sample_id)
                )
                or 0
            )

        return await self.evaluations.db.run(upsert)

    async def summary(self, name: str) -> evaluation_pb2.RatingSummary:
        evaluation, task = await self.evaluations.db.run(lambda s: self._task(s, name))
        rows = await self.evaluations.db.run(
            lambda s: list(s.scalars(select(RatingRow).where(RatingRow.task_uid == task.uid)))
        )
        by_item: dict[str, list[str]] = {}
        for row in rows:
            by_item.setdefault(row.sample_id, []).append(
                str(row.score) if task.kind == "rating" else row.preference
            )
        multi = [j for j in by_item.values() if len(j) >= 2]
        summary = evaluation_pb2.RatingSummary(
            rating_task=self._task_proto(evaluation, task).name,
            ratings=len(rows),
            raters=len({r.rater for r in rows}),
            percent_agreement=percent_agreement(multi),
            fleiss_kappa=fleiss_kappa(multi),
            items_with_agreement=len(multi),
        )
        if rows and task.kind == "rating":
            summary.mean_score = sum(r.score or 0 for r in rows) / len(rows)
        elif rows:
            summary.share_a = sum(r.preference == "A" for r in rows) / len(rows)
            summary.share_b = sum(r.preference == "B" for r in rows) / len(rows)
            summary.share_tie = sum(r.preference == "tie" for r in rows) / len(rows)
        return summary
