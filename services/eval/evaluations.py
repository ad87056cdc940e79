"""Evaluations on the control plane: checked against the registry and the data service (over
`kit.peers`), queued for eval workers, read, watched (woken by their events) and reported.

Human rating tasks over a finished evaluation live in `ratings.py`.
"""

from __future__ import annotations

import json
import logging
import math
import re
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from google.protobuf import json_format, struct_pb2
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.eval import metrics
from services.eval.repo import EvaluationRow
from services.eval.scores import ScoreRule, check_rule
from services.kit import graders, sandbox
from services.kit.auth import Principal, bearer_var, parse_in_project, principal_var, require_project
from services.kit.db import Database, keyset_page
from services.kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from services.kit.names import PROJECT, NamePattern, PageTokens, check_id, check_text, page_size
from services.kit.outbox import Outbox
from services.kit.peers import DATASET_KINDS, Peers
from services.kit.store import ObjectStore
from services.kit.times import to_timestamp, utcnow
from services.kit.watch import ChangeFeed, changes
from tuneforge.common.v1 import common_pb2
from tuneforge.data.v1 import data_service_pb2, dataset_pb2
from tuneforge.enums import enum_values
from tuneforge.eval.v1 import evaluation_pb2
from tuneforge.events.v1 import eval_events_pb2
from tuneforge.registry.v1 import model_pb2

EVALUATION = NamePattern("projects/{project}/evaluations/{evaluation}")
TASK = NamePattern("projects/{project}/evaluations/{evaluation}/ratingTasks/{task}")
QUEUE_SUBJECT = "tuneforge.eval-queue.normal"
STATES = enum_values(evaluation_pb2.EvaluationState, "EVALUATION_STATE_")
TERMINAL = {"succeeded", "failed", "cancelled"}
_MODEL_VERSION = re.compile(r"^projects/[^/]+/models/[^/]+/versions/[^/]+$")
MAX_MODELS = 8
INSIGHT_DEADLINE_SECONDS = 600.0


@dataclass
class Request:
    """A checked CreateEvaluation request, before the world is consulted."""

    evaluation_id: str
    names: list[str]
    generation: dict[str, Any]
    judge: dict[str, Any] | None
    score_rule: dict[str, str] = field(default_factory=dict)
    pass_thresholds: dict[str, float] = field(default_factory=dict)
    python_grader: dict[str, Any] = field(default_factory=dict)
    graders: list[dict[str, Any]] = field(default_factory=list)
    grader_endpoint: str = ""


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
    message.score_rule.CopyFrom(evaluation_pb2.ScoreRule(**spec.get("score_rule", {})))
    message.pass_thresholds.update(spec.get("pass_thresholds", {}))
    if spec.get("python_grader"):
        message.python_grader.CopyFrom(evaluation_pb2.PythonGrader(**spec["python_grader"]))
    message.graders.extend(json.dumps(g, ensure_ascii=False) for g in spec.get("graders", []))
    message.grader_endpoint = spec.get("grader_endpoint", "")
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


def parse_request(evaluation: evaluation_pb2.Evaluation) -> Request:
    """The request's own fields checked: id, models, metrics, generation and judge settings."""
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
    if len(evaluation.model_versions) > MAX_MODELS:
        raise InvalidArgument.field(
            "evaluation.model_versions", f"at most {MAX_MODELS} model versions per evaluation"
        )
    names = list(evaluation.metrics) or ["bleu4", "rouge_l"]
    if len(names) > len(metrics.METRICS):
        raise InvalidArgument.field(
            "evaluation.metrics",
            f"{len(names)} metrics named; there are {len(metrics.METRICS)}, name each once",
        )
    unknown = metrics.check_metrics(names)
    if unknown:
        raise InvalidArgument.field(
            "evaluation.metrics",
            f"unknown metric {', '.join(n[:40] for n in unknown[:3])}; choose from {', '.join(metrics.METRICS)}",
        )
    repeated = next((i for i, n in enumerate(names) if n in names[:i]), None)
    if repeated is not None:
        raise InvalidArgument.field(
            f"evaluation.metrics[{repeated}]", f"{names[repeated]} is named twice; name each metric once"
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
    rule = ScoreRule(evaluation.score_rule.regex, evaluation.score_rule.json_path)
    problem = check_rule(rule)
    if problem:
        raise InvalidArgument.field("evaluation.score_rule", problem)
    checked = parse_graders(evaluation)
    thresholds = dict(evaluation.pass_thresholds)
    for metric, threshold in thresholds.items():
        if metric not in names and metric not in {f"grader:{g['name']}" for g in checked}:
            raise InvalidArgument.field(
                f"evaluation.pass_thresholds[{metric[:40]}]", "is not one of this evaluation's metrics"
            )
        if not math.isfinite(threshold):
            raise InvalidArgument.field(f"evaluation.pass_thresholds[{metric}]", "must be a finite number")
    return Request(
        evaluation_id,
        names,
        generation,
        parse_judge(evaluation),
        {k: v for k, v in asdict(rule).items() if v},
        {
            **{f"grader:{g['name']}": float(g["pass_threshold"]) for g in checked if "pass_threshold" in g},
            **thresholds,
        },
        parse_grader(evaluation, names),
        checked,
        evaluation.grader_endpoint,
    )


def parse_graders(evaluation: evaluation_pb2.Evaluation) -> list[dict[str, Any]]:
    """The OpenAI graders, each checked (named by its field), with names unique."""
    if len(evaluation.graders) > 16:
        raise InvalidArgument.field("evaluation.graders", "at most 16 graders per evaluation")
    checked, seen = [], set()
    for i, text in enumerate(evaluation.graders):
        try:
            grader = graders.check(text, f"evaluation.graders[{i}]")
        except graders.GraderError as exc:
            raise InvalidArgument.field(exc.field, exc.message) from None
        if grader["name"] in seen:
            raise InvalidArgument.field(
                f"evaluation.graders[{i}].name", f"{grader['name']!r} is used twice; name each grader once"
            )
        seen.add(grader["name"])
        if graders.asks_judge(grader) and not evaluation.grader_endpoint:
            raise InvalidArgument.field(
                f"evaluation.graders[{i}]",
                "a score_model grader needs evaluation.grader_endpoint: the OpenAI-compatible API to ask",
            )
        checked.append(grader)
    if evaluation.grader_endpoint and not re.match(r"^https?://[^\s/]+", evaluation.grader_endpoint):
        raise InvalidArgument.field("evaluation.grader_endpoint", "must be an http(s) URL (…/v1)")
    return checked


def parse_grader(evaluation: evaluation_pb2.Evaluation, names: list[str]) -> dict[str, Any]:
    grader = evaluation.python_grader
    if "python_grader" not in names:
        if grader.source:
            raise InvalidArgument.field(
                "evaluation.metrics", "a python_grader is given: add the metric python_grader"
            )
        return {}
    problem = sandbox.check(grader.source)
    if problem:
        raise InvalidArgument.field("evaluation.python_grader.source", problem)
    timeout = grader.timeout_seconds or sandbox.DEFAULT_TIMEOUT
    if not 0 < timeout <= sandbox.MAX_TIMEOUT:
        raise InvalidArgument.field(
            "evaluation.python_grader.timeout_seconds", f"must be above 0 and at most {sandbox.MAX_TIMEOUT:g}"
        )
    memory = grader.memory_mb or sandbox.DEFAULT_MEMORY_MB
    if not 64 <= memory <= sandbox.MAX_MEMORY_MB:
        raise InvalidArgument.field(
            "evaluation.python_grader.memory_mb", f"must be between 64 and {sandbox.MAX_MEMORY_MB}"
        )
    return {"source": grader.source, "timeout_seconds": timeout, "memory_mb": memory}


def parse_judge(evaluation: evaluation_pb2.Evaluation) -> dict[str, Any] | None:
    if not evaluation.HasField("judge"):
        return None
    j = evaluation.judge
    if bool(j.model_version) == bool(j.endpoint):
        raise InvalidArgument.field(
            "evaluation.judge", "name a judge model_version or an OpenAI-compatible endpoint (one of them)"
        )
    if j.endpoint and not (j.endpoint.startswith(("http://", "https://")) and j.endpoint_model):
        raise InvalidArgument.field(
            "evaluation.judge.endpoint", "give the API's base URL (http(s)://…/v1) and endpoint_model"
        )
    if j.pairwise and len(evaluation.model_versions) < 2:
        raise InvalidArgument.field(
            "evaluation.judge.pairwise", "pairwise judging compares at least two model versions"
        )
    return {
        "model_version": j.model_version,
        "endpoint": j.endpoint,
        "endpoint_model": j.endpoint_model,
        "rubric": check_text(j.rubric, "evaluation.judge.rubric", 4000),
        "pairwise": j.pairwise,
        "max_new_tokens": j.max_new_tokens or 64,
        "base": "",
    }


class Evaluations:
    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        store: ObjectStore,
        page_tokens: PageTokens,
        peers: Peers,
        feed: ChangeFeed,
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.store = store
        self.page_tokens = page_tokens
        self.peers = peers
        self.feed = feed
        self._predictions: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()

    # -- creating ------------------------------------------------------------------------------

    async def _model(self, project: str, ref: str, field: str) -> dict[str, str]:
        """A model version that can generate: a full model, or an adapter on a registered base."""
        if not _MODEL_VERSION.match(ref) or ref.split("/")[1] != project:
            raise InvalidArgument.field(field, f"{ref!r} is not a model version of project {project}")
        version = await self.peers.model_version(ref, field)
        entry = {"name": version.name, "base": ""}
        files = {f.path for f in version.files}
        if version.kind == model_pb2.MODEL_VERSION_KIND_LORA_ADAPTER:
            if not _MODEL_VERSION.match(version.lineage.base_model):
                raise InvalidArgument.field(
                    field, f"{version.name} is an adapter whose base model is not in the registry"
                )
            entry["base"] = version.lineage.base_model
            if "tokenizer.json" not in files:
                base = await self.peers.model_version(entry["base"], field)
                files = {f.path for f in base.files}
        elif version.kind != model_pb2.MODEL_VERSION_KIND_FULL:
            raise InvalidArgument.field(
                field, f"{version.name} is not a model that can generate (no config and weights)"
            )
        if "tokenizer.json" not in files:
            raise InvalidArgument.field(
                field,
                f"{version.name} has no tokenizer.json (nor its base); evaluation uses the model's own "
                "tokenizer and never fetches one from a model hub: upload it with the weights",
                reason="NO_TOKENIZER",
            )
        return entry

    async def _dataset(self, ref: str, names: list[str]) -> tuple[str, int]:
        """The evaluation set: ready, of a kind with prompts, not empty, with references where the
        metrics compare with them (counted by the data service's insight)."""
        field = "evaluation.dataset_version"
        data = await self.peers.ready_dataset_version(
            ref, ["eval", "sft", "prompt_only"], field, purpose="evaluate on"
        )
        if data.row_count == 0:
            raise InvalidArgument.field(field, f"{data.name} is empty")
        needs_reference = [n for n in names if metrics.CATALOG[n].needs_reference]
        if needs_reference and DATASET_KINDS[data.kind] == "prompt_only":
            missing = await self._rows_without_reference(data.name, field)
            if missing:
                raise InvalidArgument.field(
                    "evaluation.metrics",
                    f"{', '.join(needs_reference)} compare with references, and {missing} rows of {data.name} have none",
                )
        return data.name, data.row_count

    async def _rows_without_reference(self, version: str, field: str) -> int:
        request = data_service_pb2.ComputeDatasetInsightRequest(name=version)
        insight = await self.peers.call("data", "ComputeDatasetInsight", request, field=field)
        final = (dataset_pb2.COMPUTATION_STATE_READY, dataset_pb2.COMPUTATION_STATE_FAILED)
        if insight.state not in final:
            watch = data_service_pb2.WatchDatasetInsightRequest(name=insight.name)
            async for insight in self.peers.stream(
                "data", "WatchDatasetInsight", watch, field=field, deadline=INSIGHT_DEADLINE_SECONDS
            ):
                if insight.state in final:
                    break
        if insight.state != dataset_pb2.COMPUTATION_STATE_READY:
            raise FailedPrecondition(f"{version} could not be inspected: {insight.failure.message}")
        return int(json_format.MessageToDict(insight.report).get("rows_without_reference") or 0)

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
        request = parse_request(evaluation)
        if request_id:
            existing = await self.db.run(lambda s: self._by_request(s, project, request_id))
            if existing is not None:
                return existing
        models = [
            await self._model(project, ref, f"evaluation.model_versions[{i}]")
            for i, ref in enumerate(evaluation.model_versions)
        ]
        judge = request.judge
        if judge and judge["model_version"]:
            checked = await self._model(project, judge["model_version"], "evaluation.judge.model_version")
            judge["model_version"], judge["base"] = checked["name"], checked["base"]
        dataset, rows = await self._dataset(evaluation.dataset_version, request.names)
        spec = {
            "models": models,
            "dataset_version": dataset,
            "metrics": request.names,
            "generation": request.generation,
            "judge": judge,
            "link_to_version": link_to_version,
            "score_rule": request.score_rule,
            "pass_thresholds": request.pass_thresholds,
            "python_grader": request.python_grader,
            "graders": request.graders,
            "grader_endpoint": request.grader_endpoint,
        }
        return await self._insert(
            project, request.evaluation_id, evaluation.display_name, spec, rows, request_id
        )

    async def _insert(
        self,
        project: str,
        evaluation_id: str,
        display_name: str,
        spec: dict[str, Any],
        rows: int,
        request_id: str,
    ) -> evaluation_pb2.Evaluation:
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
                display_name=display_name or evaluation_id,
                state="queued",
                spec=spec,
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
            existing = await self.db.run(lambda s: self._by_request(s, project, request_id))
            if existing is None:
                raise
            return existing

    @staticmethod
    def _by_request(session: Session, project: str, request_id: str) -> evaluation_pb2.Evaluation | None:
        row = session.scalar(
            select(EvaluationRow).where(
                EvaluationRow.project == project, EvaluationRow.request_id == request_id
            )
        )
        return evaluation_to_proto(row) if row else None

    # -- reading -------------------------------------------------------------------------------

    def find(self, session: Session, name: str, field: str = "name") -> EvaluationRow:
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
        return await self.db.run(lambda s: evaluation_to_proto(self.find(s, name)))

    async def cancel(self, name: str) -> evaluation_pb2.Evaluation:
        """Mark a queued or running evaluation CANCELLED; its worker sees it and stops the runner."""

        def cancel_(session: Session) -> evaluation_pb2.Evaluation:
            row = self.find(session, name)
            row = session.get(EvaluationRow, row.uid, with_for_update=True)
            assert row is not None
            if row.state in ("succeeded", "failed"):
                raise FailedPrecondition(
                    f"evaluation {name[:200]} has already {row.state}; nothing to cancel",
                    reason="ALREADY_ENDED",
                )
            if row.state != "cancelled":
                row.state, row.end_time, row.update_time = "cancelled", utcnow(), utcnow()
                return emit(self.outbox, session, row, "completed")
            return evaluation_to_proto(row)

        return await self.outbox.write(self.db, cancel_)

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
        """The evaluation now and as it changes (woken by its events), until it ends."""
        first = await self.get(name)
        final = tuple(STATES[s] for s in TERMINAL)
        last: tuple[Any, ...] | None = None
        async for current in changes(
            self.feed, first.name, lambda: self.get(first.name), lambda e: e.state in final
        ):
            key = (current.state, current.done_samples, len(current.results), current.error)
            if key != last:
                last = key
                yield current

    async def report(self, name: str) -> evaluation_pb2.EvaluationReport:
        row = await self.db.run(lambda s: self.find(s, name))
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
        row = await self.db.run(lambda s: self.find(s, parent, "parent"))
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

    async def auto_evaluate(self, version: Any, service_key: str) -> None:
        """Evaluate a newly registered version that asks for it (tags `auto_eval.*`), against its base.

        Runs as the eval service itself (its own key), once per version (the request id)."""
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
