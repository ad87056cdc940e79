"""Evaluations on the control plane: validate, queue, report, page through predictions.

No torch here: models and data are checked through the registry and the data service with the
caller's own key; generation runs on evaluation workers (`services.eval.worker`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import tempfile
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from google.protobuf import json_format, struct_pb2
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.eval import human, metrics
from services.eval.repo import EvaluationRow, RatingRow, RatingTaskRow
from services.kit.auth import bearer_var, parse_in_project, require_project
from services.kit.db import Database, keyset_page
from services.kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from services.kit.names import PROJECT, NamePattern, PageTokens, check_id, check_text, page_size
from services.kit.outbox import Outbox
from services.kit.store import ObjectStore
from services.kit.times import to_timestamp, utcnow
from tuneforge.common.v1 import common_pb2
from tuneforge.eval.v1 import evaluation_pb2
from tuneforge.events.v1 import eval_events_pb2

EVALUATION = NamePattern("projects/{project}/evaluations/{evaluation}")
TASK = NamePattern("projects/{project}/evaluations/{evaluation}/ratingTasks/{task}")
QUEUE_SUBJECT = "tuneforge.eval-queue.normal"
STATES = {
    "queued": evaluation_pb2.EVALUATION_STATE_QUEUED,
    "running": evaluation_pb2.EVALUATION_STATE_RUNNING,
    "succeeded": evaluation_pb2.EVALUATION_STATE_SUCCEEDED,
    "failed": evaluation_pb2.EVALUATION_STATE_FAILED,
}
TERMINAL = {"succeeded", "failed"}
REFERENCE_METRICS = set(metrics.METRICS) - {"word_count_deviation"}
_MODEL_VERSION = re.compile(r"^projects/[^/]+/models/[^/]+/versions/[^/]+$")


@dataclass(frozen=True)
class Endpoints:
    registry: str
    data: str


def evaluation_name(row: EvaluationRow) -> str:
    return EVALUATION.format(project=row.project, evaluation=row.evaluation_id)


def evaluation_to_proto(row: EvaluationRow) -> evaluation_pb2.Evaluation:
    spec = row.spec
    message = evaluation_pb2.Evaluation(
        name=evaluation_name(row),
        uid=row.uid,
        display_name=row.display_name,
        state=STATES[row.state],
        model_versions=[m["name"] for m in spec["models"]],
        dataset_version=spec["dataset_version"],
        metrics=spec["metrics"],
        generation=json_format.ParseDict(spec["generation"], evaluation_pb2.GenerationConfig()),
        results=[evaluation_pb2.ModelResult(**r) for r in row.results],
        error=row.error,
        total_samples=row.total_samples,
        done_samples=row.done_samples,
        create_time=to_timestamp(row.create_time),
    )
    if spec.get("judge"):
        j = spec["judge"]
        message.judge.CopyFrom(
            evaluation_pb2.JudgeConfig(
                model_version=j["model_version"],
                endpoint=j["endpoint"],
                endpoint_model=j["endpoint_model"],
                rubric=j["rubric"],
                pairwise=j["pairwise"],
                max_new_tokens=j["max_new_tokens"],
            )
        )
    message.pairwise.extend(evaluation_pb2.PairwiseResult(**p) for p in spec.get("pairwise", []))
    if row.end_time:
        message.end_time.CopyFrom(to_timestamp(row.end_time))
    return message


def emit(outbox: Outbox, session: Session, row: EvaluationRow, verb: str) -> evaluation_pb2.Evaluation:
    proto = evaluation_to_proto(row)
    outbox.emit(
        session,
        "evaluation",
        verb,
        proto.name,
        row.project,
        eval_events_pb2.EvaluationEvent(evaluation=proto),
    )
    return proto


class Evaluations:
    def __init__(
        self, db: Database, outbox: Outbox, store: ObjectStore, page_tokens: PageTokens, endpoints: Endpoints
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.store = store
        self.page_tokens = page_tokens
        self.endpoints = endpoints
        self._predictions: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()

    def _check_world(
        self, project: str, models: list[str], dataset: str, names: list[str]
    ) -> tuple[list[dict[str, Any]], str, int]:
        """Models exist and can run; the dataset is ready, of a fitting kind, with references."""
        import pyarrow.parquet as pq

        from tuneforge import Client
        from tuneforge.api.datasets import KIND_NAMES
        from tuneforge.errors import TuneForgeError
        from tuneforge.registry.v1 import model_pb2

        resolved = []
        with Client(
            {"registry": self.endpoints.registry, "data": self.endpoints.data},
            api_key=bearer_var.get(),
            project=project,
        ) as client:
            for i, ref in enumerate(models):
                field = f"evaluation.model_versions[{i}]"
                if not _MODEL_VERSION.match(ref) or ref.split("/")[1] != project:
                    raise InvalidArgument.field(field, f"{ref!r} is not a model version of project {project}")
                try:
                    version = client.models.get_version(ref)
                except TuneForgeError as error:
                    raise InvalidArgument.field(field, error.message) from None
                entry = {"name": version.name, "base": ""}
                if version.kind == model_pb2.MODEL_VERSION_KIND_LORA_ADAPTER:
                    if not _MODEL_VERSION.match(version.lineage.base_model):
                        raise InvalidArgument.field(
                            field, f"{version.name} is an adapter whose base model is not in the registry"
                        )
                    entry["base"] = version.lineage.base_model
                elif version.kind != model_pb2.MODEL_VERSION_KIND_FULL:
                    raise InvalidArgument.field(
                        field, f"{version.name} is not a model that can generate (no config and weights)"
                    )
                resolved.append(entry)
            try:
                data = client.data.get_version(dataset)
            except TuneForgeError as error:
                raise InvalidArgument.field("evaluation.dataset_version", error.message) from None
            kind = KIND_NAMES.get(data.kind)
            if data.state != 1:
                raise InvalidArgument.field(
                    "evaluation.dataset_version", f"{data.name} failed validation and holds no data"
                )
            if kind not in ("eval", "sft", "prompt_only"):
                raise InvalidArgument.field(
                    "evaluation.dataset_version",
                    f"{data.name} holds {kind} data; evaluate on eval, sft or prompt_only data",
                )
            if data.row_count == 0:
                raise InvalidArgument.field("evaluation.dataset_version", f"{data.name} is empty")
            needs_reference = [n for n in names if n in REFERENCE_METRICS]
            if needs_reference and kind == "prompt_only":
                with tempfile.TemporaryDirectory() as tmp:
                    client.data.download(data.name, tmp)
                    missing = sum(
                        1 for r in pq.read_table(Path(tmp) / "data.parquet").to_pylist() if not r["reference"]
                    )
                if missing:
                    raise InvalidArgument.field(
                        "evaluation.metrics",
                        f"{', '.join(needs_reference)} compare with references, and {missing} rows of {data.name} have none",
                    )
        return resolved, data.name, data.row_count

    async def create(
        self,
        parent: str,
        evaluation: evaluation_pb2.Evaluation,
        request_id: str,
        *,
        link_to_version: str = "",
    ) -> evaluation_pb2.Evaluation:
        project = PROJECT.parse(parent, "parent")["project"]
        require_project(project)
        check_text(request_id, "request_id", 128)
        check_text(evaluation.display_name, "evaluation.display_name", 200)
        evaluation_id = (
            check_id(evaluation.name.rsplit("/", 1)[-1], "evaluation.name", what="evaluation id")
            if evaluation.name
            else f"eval-{uuid.uuid4().hex[:10]}"
        )
        if not evaluation.model_versions:
            raise InvalidArgument.field(
                "evaluation.model_versions", "name at least one model version (the first is the baseline)"
            )
        if len(evaluation.model_versions) > 8:
            raise InvalidArgument.field(
                "evaluation.model_versions", "at most 8 model versions per evaluation"
            )
        names = list(evaluation.metrics) or ["bleu4", "rouge_l"]
        unknown = metrics.check_metrics(names)
        if unknown:
            raise InvalidArgument.field(
                "evaluation.metrics",
                f"unknown metric {', '.join(unknown)}; choose from {', '.join(metrics.METRICS)}",
            )
        g = evaluation.generation
        generation = {
            "max_new_tokens": g.max_new_tokens or 128,
            "temperature": g.temperature,
            "top_p": g.top_p or 1.0,
            "batch_size": g.batch_size or 16,
            "seed": g.seed,
        }
        if not 1 <= generation["max_new_tokens"] <= 8192:
            raise InvalidArgument.field("evaluation.generation.max_new_tokens", "must be between 1 and 8192")
        if not 0 <= generation["temperature"] <= 5 or not 0 < generation["top_p"] <= 1:
            raise InvalidArgument.field(
                "evaluation.generation.temperature", "temperature must be 0-5 and top_p in (0, 1]"
            )
        if not 1 <= generation["batch_size"] <= 1024:
            raise InvalidArgument.field("evaluation.generation.batch_size", "must be between 1 and 1024")
        if request_id:
            existing = await self.db.run(
                lambda s: s.scalar(
                    select(EvaluationRow).where(
                        EvaluationRow.project == project, EvaluationRow.request_id == request_id
                    )
                )
            )
            if existing is not None:
                return evaluation_to_proto(existing)
        judge = None
        if evaluation.HasField("judge"):
            j = evaluation.judge
            if bool(j.model_version) == bool(j.endpoint):
                raise InvalidArgument.field(
                    "evaluation.judge",
                    "name a judge model_version or an OpenAI-compatible endpoint (one of them)",
                )
            if j.endpoint and not (j.endpoint.startswith(("http://", "https://")) and j.endpoint_model):
                raise InvalidArgument.field(
                    "evaluation.judge.endpoint", "give the API's base URL (http(s)://…/v1) and endpoint_model"
                )
            if j.pairwise and len(evaluation.model_versions) < 2:
                raise InvalidArgument.field(
                    "evaluation.judge.pairwise", "pairwise judging compares at least two model versions"
                )
            judge = {
                "model_version": j.model_version,
                "endpoint": j.endpoint,
                "endpoint_model": j.endpoint_model,
                "rubric": check_text(j.rubric, "evaluation.judge.rubric", 4000),
                "pairwise": j.pairwise,
                "max_new_tokens": j.max_new_tokens or 64,
                "base": "",
            }
        to_check = list(evaluation.model_versions) + (
            [judge["model_version"]] if judge and judge["model_version"] else []
        )
        models, dataset, rows = await asyncio.to_thread(
            self._check_world, project, to_check, evaluation.dataset_version, names
        )
        if judge and judge["model_version"]:
            judge["model_version"], judge["base"] = models[-1]["name"], models[-1]["base"]
            models = models[:-1]

        def insert(session: Session) -> evaluation_pb2.Evaluation:
            if session.scalar(
                select(EvaluationRow.uid).where(
                    EvaluationRow.project == project, EvaluationRow.evaluation_id == evaluation_id
                )
            ):
                raise AlreadyExists(
                    f"evaluation projects/{project}/evaluations/{evaluation_id} already exists"
                )
            now = utcnow()
            row = EvaluationRow(
                uid=uuid.uuid4().hex,
                project=project,
                evaluation_id=evaluation_id,
                display_name=evaluation.display_name or evaluation_id,
                state="queued",
                spec={
                    "models": models,
                    "dataset_version": dataset,
                    "metrics": names,
                    "generation": generation,
                    "judge": judge,
                    "link_to_version": link_to_version,
                },
                results=[],
                total_samples=rows,
                done_samples=0,
                predictions={},
                request_id=request_id or None,
                create_time=now,
                update_time=now,
            )
            session.add(row)
            session.flush()
            proto = emit(self.outbox, session, row, "created")
            self.outbox.enqueue(session, QUEUE_SUBJECT, row.uid.encode(), f"eval-{row.uid}")
            return proto

        try:
            return await self.outbox.write(self.db, insert)
        except IntegrityError:
            existing = await self.db.run(
                lambda s: s.scalar(
                    select(EvaluationRow).where(
                        EvaluationRow.project == project, EvaluationRow.request_id == request_id
                    )
                )
            )
            if existing is None:
                raise
            return evaluation_to_proto(existing)

    def _find(self, session: Session, name: str, field: str = "name") -> EvaluationRow:
        parts = parse_in_project(EVALUATION, name, field)
        row = session.scalar(
            select(EvaluationRow).where(
                EvaluationRow.project == parts["project"], EvaluationRow.evaluation_id == parts["evaluation"]
            )
        )
        if row is None:
            raise NotFound(f"evaluation {name} does not exist")
        return row

    async def get(self, name: str) -> evaluation_pb2.Evaluation:
        return await self.db.run(lambda s: evaluation_to_proto(self._find(s, name)))

    async def list(self, parent: str, size: int, token: str) -> tuple[list[evaluation_pb2.Evaluation], str]:
        project = PROJECT.parse(parent, "parent")["project"]
        require_project(project)
        size = page_size(size)

        def list_(session: Session) -> tuple[list[evaluation_pb2.Evaluation], str]:
            rows, next_token = keyset_page(
                session,
                select(EvaluationRow).where(EvaluationRow.project == project),
                tokens=self.page_tokens,
                columns={"create_time": EvaluationRow.create_time},
                order_by="create_time desc",
                default_order="create_time",
                tie=EvaluationRow.uid,
                size=size,
                token=token,
                context=f"ListEvaluations|{project}",
            )
            return [evaluation_to_proto(r) for r in rows], next_token

        return await self.db.run(list_)

    async def watch(self, name: str) -> AsyncIterator[evaluation_pb2.Evaluation]:
        last: tuple[Any, ...] | None = None
        while True:
            current = await self.get(name)
            key = (current.state, current.done_samples, len(current.results), current.error)
            if key != last:
                last = key
                yield current
            if current.state in (STATES["succeeded"], STATES["failed"]):
                return
            await asyncio.sleep(0.5)

    async def report(self, name: str) -> evaluation_pb2.EvaluationReport:
        row = await self.db.run(lambda s: self._find(s, name))
        if row.state != "succeeded":
            raise FailedPrecondition(
                f"{name} is {row.state}; a report exists once the evaluation has succeeded",
                reason="NOT_FINISHED",
            )
        prefix = f"evaluations/{row.uid}/report/"
        if not await self.store.exists(prefix + "report.json"):
            raise FailedPrecondition(f"{name} has no stored report", reason="NO_REPORT")
        summary = json.loads(await self.store.get_bytes(prefix + "report.json"))
        return evaluation_pb2.EvaluationReport(
            evaluation=evaluation_name(row),
            report=json_format.ParseDict(summary, struct_pb2.Struct()),
            charts=[
                common_pb2.PresignedUrl(
                    path=chart, url=self.store.presigned_get(prefix + chart, timedelta(hours=1)), method="GET"
                )
                for chart in summary["charts"]
            ],
        )

    async def predictions(
        self, parent: str, model_version: str, order_by: str, size: int, token: str
    ) -> tuple[list[evaluation_pb2.SamplePrediction], str]:
        row = await self.db.run(lambda s: self._find(s, parent, "parent"))
        size = page_size(size)
        parts = order_by.split()
        if parts and (
            parts[0] not in row.spec["metrics"]
            or len(parts) > 2
            or (len(parts) == 2 and parts[1] not in ("asc", "desc"))
        ):
            raise InvalidArgument.field(
                "order_by",
                f"order by one of this evaluation's metrics ({', '.join(row.spec['metrics'])}), optionally desc",
            )
        if not row.predictions:
            return [], ""
        if row.uid not in self._predictions:
            data = b"".join(
                [
                    chunk
                    async for chunk in self.store.iter_verified(
                        row.predictions["key"],
                        sha256=row.predictions["sha256"],
                        size_bytes=row.predictions["size_bytes"],
                        label="predictions.jsonl",
                    )
                ]
            )
            self._predictions[row.uid] = [json.loads(line) for line in data.decode().splitlines()]
            while len(self._predictions) > 8:
                self._predictions.popitem(last=False)
        items = [
            p for p in self._predictions[row.uid] if not model_version or p["model_version"] == model_version
        ]
        if parts:
            metric, desc = parts[0], len(parts) == 2 and parts[1] == "desc"
            scored = [
                p
                for p in items
                if p["scores"].get(metric) is not None and not math.isnan(p["scores"][metric])
            ]
            items = sorted(scored, key=lambda p: p["scores"][metric], reverse=desc) + [
                p for p in items if p not in scored
            ]
        context = f"ListSamplePredictions|{row.uid}|{model_version}|{order_by}"
        offset = self.page_tokens.decode(token, context)["o"] if token else 0
        page = items[offset : offset + size]
        end = offset + len(page)
        return (
            [evaluation_pb2.SamplePrediction(**p) for p in page],
            self.page_tokens.encode({"o": end}, context) if end < len(items) else "",
        )

    # -- human evaluation ----------------------------------------------------------------------

    def _task(self, session: Session, name: str, field: str = "name") -> tuple[EvaluationRow, RatingTaskRow]:
        parts = parse_in_project(TASK, name, field)
        evaluation = self._find(
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

    async def create_rating_task(
        self, parent: str, task: evaluation_pb2.RatingTask
    ) -> evaluation_pb2.RatingTask:
        evaluation = await self.db.run(lambda s: self._find(s, parent, "parent"))
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
            return await self.db.run(insert)
        except IntegrityError:
            raise AlreadyExists(f"rating task {task_id} already exists") from None

    async def rating_items(
        self, parent: str, size: int, token: str
    ) -> tuple[list[evaluation_pb2.RatingItem], str]:
        evaluation, task = await self.db.run(lambda s: self._task(s, parent, "parent"))
        size = page_size(size)
        predictions = {}
        for model in task.model_versions:
            predictions[model] = {p.sample_id: p for p in (await self._all_predictions(evaluation, model))}
        ids = sorted(predictions[task.model_versions[0]])
        context = f"ListRatingItems|{task.uid}"
        offset = self.page_tokens.decode(token, context)["o"] if token else 0
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
        return items, self.page_tokens.encode({"o": end}, context) if end < len(ids) else ""

    async def _all_predictions(
        self, evaluation: EvaluationRow, model: str
    ) -> list[evaluation_pb2.SamplePrediction]:
        out, token = [], ""
        while True:
            page, token = await self.predictions(evaluation_name(evaluation), model, "", 1000, token)
            out.extend(page)
            if not token:
                return out

    async def submit_rating(
        self, name: str, sample_id: str, rater: str, score: int, preference: str, comment: str
    ) -> int:
        evaluation, task = await self.db.run(lambda s: self._task(s, name, "rating_task"))
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

        return await self.db.run(upsert)

    async def rating_summary(self, name: str) -> evaluation_pb2.RatingSummary:
        evaluation, task = await self.db.run(lambda s: self._task(s, name))
        rows = await self.db.run(
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
            percent_agreement=human.percent_agreement(multi),
            fleiss_kappa=human.fleiss_kappa(multi),
            items_with_agreement=len(multi),
        )
        if rows and task.kind == "rating":
            summary.mean_score = sum(r.score or 0 for r in rows) / len(rows)
        elif rows:
            summary.share_a = sum(r.preference == "A" for r in rows) / len(rows)
            summary.share_b = sum(r.preference == "B" for r in rows) / len(rows)
            summary.share_tie = sum(r.preference == "tie" for r in rows) / len(rows)
        return summary

    async def auto_evaluate(self, version: Any, service_key: str) -> None:
        """Evaluate a newly registered version that asks for it (tags `auto_eval.*`), against its base.

        Runs as the eval service itself (its own key), once per version (the request id)."""
        from services.kit.auth import Principal, principal_var

        tags = dict(version.tags)
        if "auto_eval.dataset" not in tags:
            return
        project = version.name.split("/")[1]
        models = [version.name]
        if _MODEL_VERSION.match(version.lineage.base_model):
            models.insert(0, version.lineage.base_model)
        request = evaluation_pb2.Evaluation(
            display_name=f"auto-evaluation of {version.name.split('/')[3]}/{version.name.split('/')[5]}",
            model_versions=models,
            dataset_version=tags["auto_eval.dataset"],
            metrics=[m for m in tags.get("auto_eval.metrics", "").split(",") if m],
        )
        principal = principal_var.set(Principal("eval-service", "*", "admin"))
        bearer = bearer_var.set(service_key)
        try:
            await self.create(
                f"projects/{project}", request, f"auto-{version.uid}", link_to_version=version.name
            )
        except Exception:
            logging.getLogger(__name__).warning(
                "auto-evaluation not queued", extra={"model_version": version.name}, exc_info=True
            )
        finally:
            bearer_var.reset(bearer)
            principal_var.reset(principal)
