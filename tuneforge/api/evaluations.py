"""`client.evals`: evaluations of model versions on evaluation sets."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format

from tuneforge import names
from tuneforge.api._calls import call, follow_until, pages, save_report
from tuneforge.enums import enum_names
from tuneforge.errors import TuneForgeError
from tuneforge.eval.v1 import eval_service_pb2, eval_service_pb2_grpc, evaluation_pb2

STATE_NAMES = {0: "unspecified", **enum_names(evaluation_pb2.EvaluationState, "EVALUATION_STATE_")}


class Evaluations:
    """The eval service."""

    def __init__(self, connect: Callable[[], grpc.Channel], project: str) -> None:
        """`connect()` gives the service's channel, made on first use: a client that never calls
        this service needs no endpoint for it."""
        self._connect = connect
        self._project = project

    @functools.cached_property
    def _stub(self) -> eval_service_pb2_grpc.EvalServiceStub:
        return eval_service_pb2_grpc.EvalServiceStub(self._connect())

    def evaluation_name(self, ref: str) -> str:
        return names.evaluation(self._project, ref)

    def create(
        self,
        model_versions: Sequence[str],
        dataset_version: str,
        *,
        metrics: Sequence[str] = (),
        evaluation_id: str = "",
        max_new_tokens: int = 0,
        temperature: float = 0.0,
        top_p: float = 0.0,
        batch_size: int = 0,
        seed: int = 0,
        judge: Mapping[str, Any] | None = None,
        score_regex: str = "",
        score_json_path: str = "",
        pass_thresholds: Mapping[str, float] | None = None,
        python_grader: str = "",
        grader_timeout_seconds: float = 0.0,
        graders: Sequence[Mapping[str, Any] | str] = (),
        grader_endpoint: str = "",
        request_id: str | None = None,
    ) -> evaluation_pb2.Evaluation:
        """Queue an evaluation; the first model version is the baseline for deltas.

        `judge`: `{"model_version": "m/3"}` or `{"endpoint": "https://…/v1", "endpoint_model": "…"}`,
        with optional `rubric`, `pairwise` and `max_new_tokens`. `score_regex` (its group is the
        score) or `score_json_path` (`最终得分`, `scores.total`) replace the default final-score rule
        of `score_mae`/`score_accuracy`; `pass_thresholds` gives a metric's pass mark
        (`{"bleu4": 30, "edit_distance": 5}`; at most for lower-is-better metrics). `python_grader`:
        Python source defining `grade(sample, item) -> float` (OpenAI's python grader), run
        sandboxed as the metric `python_grader` (added to `metrics` when missing). `graders`: OpenAI
        grader objects (or their JSON), each scored as `grader:NAME`; `grader_endpoint`: the
        OpenAI-compatible API (…/v1) their `score_model` graders ask."""
        evaluation = evaluation_pb2.Evaluation(
            name=self.evaluation_name(evaluation_id) if evaluation_id else "",
            model_versions=[names.model_version(self._project, m) for m in model_versions],
            dataset_version=names.dataset_version(self._project, dataset_version),
            metrics=list(metrics),
            generation=evaluation_pb2.GenerationConfig(
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                batch_size=batch_size,
                seed=seed,
            ),
            score_rule=evaluation_pb2.ScoreRule(regex=score_regex, json_path=score_json_path),
            pass_thresholds=dict(pass_thresholds or {}),
            graders=[g if isinstance(g, str) else json.dumps(g, ensure_ascii=False) for g in graders],
            grader_endpoint=grader_endpoint,
        )
        if python_grader:
            evaluation.python_grader.source = python_grader
            evaluation.python_grader.timeout_seconds = grader_timeout_seconds
            if "python_grader" not in evaluation.metrics:
                evaluation.metrics.append("python_grader")
        if judge:
            settings = dict(judge)
            if settings.get("model_version"):
                settings["model_version"] = names.model_version(self._project, settings["model_version"])
            json_format.ParseDict(settings, evaluation.judge)
        return call(
            self._stub.CreateEvaluation,
            eval_service_pb2.CreateEvaluationRequest(
                parent=f"projects/{self._project}",
                evaluation=evaluation,
                request_id=request_id or str(uuid.uuid4()),
            ),
        )

    def get(self, ref: str) -> evaluation_pb2.Evaluation:
        return call(
            self._stub.GetEvaluation, eval_service_pb2.GetEvaluationRequest(name=self.evaluation_name(ref))
        )

    def list(self, *, page_size: int = 0) -> Iterator[evaluation_pb2.Evaluation]:
        def fetch(token: str) -> tuple[list[evaluation_pb2.Evaluation], str]:
            response = call(
                self._stub.ListEvaluations,
                eval_service_pb2.ListEvaluationsRequest(
                    parent=f"projects/{self._project}", page_size=page_size, page_token=token
                ),
            )
            return list(response.evaluations), response.next_page_token

        return pages(fetch)

    def watch(self, ref: str) -> Iterator[evaluation_pb2.Evaluation]:
        import grpc

        try:
            yield from self._stub.WatchEvaluation(
                eval_service_pb2.WatchEvaluationRequest(name=self.evaluation_name(ref))
            )
        except grpc.RpcError as error:
            raise TuneForgeError.from_rpc_error(error) from None

    def cancel(self, ref: str) -> evaluation_pb2.Evaluation:
        """Stop a queued or running evaluation; it ends CANCELLED."""
        return call(
            self._stub.CancelEvaluation,
            eval_service_pb2.CancelEvaluationRequest(name=self.evaluation_name(ref)),
        )

    def wait(self, ref: str, *, timeout: float = 3600) -> evaluation_pb2.Evaluation:
        """The evaluation once it ended (TimeoutError after `timeout` seconds)."""
        request = eval_service_pb2.WatchEvaluationRequest(name=self.evaluation_name(ref))
        return follow_until(
            lambda left: self._stub.WatchEvaluation(request, timeout=left),
            lambda e: STATE_NAMES[e.state] in ("succeeded", "failed", "cancelled"),
            self.get(ref),
            timeout,
            request.name,
        )

    def predictions(
        self, ref: str, *, model_version: str = "", order_by: str = "", page_size: int = 0
    ) -> Iterator[evaluation_pb2.SamplePrediction]:
        """Per-sample answers and scores; `order_by="rouge_l"` puts the worst first."""
        name = self.evaluation_name(ref)
        model = names.model_version(self._project, model_version) if model_version else ""

        def fetch(token: str) -> tuple[list[evaluation_pb2.SamplePrediction], str]:
            response = call(
                self._stub.ListSamplePredictions,
                eval_service_pb2.ListSamplePredictionsRequest(
                    parent=name, model_version=model, order_by=order_by, page_size=page_size, page_token=token
                ),
            )
            return list(response.predictions), response.next_page_token

        return pages(fetch)

    # -- human evaluation ----------------------------------------------------------------------

    def report(self, ref: str) -> evaluation_pb2.EvaluationReport:
        """The report of a succeeded evaluation: `report` (JSON: metrics, deltas, judge verdicts, the
        worst samples per metric) and presigned URLs of its PNG `charts`."""
        return call(
            self._stub.GetEvaluationReport,
            eval_service_pb2.GetEvaluationReportRequest(name=self.evaluation_name(ref)),
        )

    def download_report(self, ref: str, directory: str | Path) -> list[Path]:
        """Writes `report.json` and the charts into `directory`; returns the paths written."""
        result = self.report(ref)
        return save_report(result.report, result.charts, directory)

    def create_rating_task(
        self,
        ref: str,
        *,
        kind: str = "rating",
        model_versions: Sequence[str] = (),
        scale: int = 0,
        task_id: str = "",
    ) -> evaluation_pb2.RatingTask:
        name = self.evaluation_name(ref)
        task = evaluation_pb2.RatingTask(
            name=f"{name}/ratingTasks/{task_id}" if task_id else "",
            kind=kind,
            model_versions=[names.model_version(self._project, m) for m in model_versions],
            scale=scale,
        )
        return call(
            self._stub.CreateRatingTask,
            eval_service_pb2.CreateRatingTaskRequest(parent=name, rating_task=task),
        )

    def rating_items(self, task: str, *, page_size: int = 0) -> Iterator[evaluation_pb2.RatingItem]:
        def fetch(token: str) -> tuple[list[evaluation_pb2.RatingItem], str]:
            response = call(
                self._stub.ListRatingItems,
                eval_service_pb2.ListRatingItemsRequest(parent=task, page_size=page_size, page_token=token),
            )
            return list(response.items), response.next_page_token

        return pages(fetch)

    def submit_rating(
        self,
        task: str,
        sample_id: str,
        rater: str,
        *,
        score: int = 0,
        preference: str = "",
        comment: str = "",
    ) -> int:
        return call(
            self._stub.SubmitRating,
            eval_service_pb2.SubmitRatingRequest(
                rating_task=task,
                sample_id=sample_id,
                rater=rater,
                score=score,
                preference=preference,
                comment=comment,
            ),
        ).item_ratings

    def rating_summary(self, task: str) -> evaluation_pb2.RatingSummary:
        return call(self._stub.GetRatingSummary, eval_service_pb2.GetRatingSummaryRequest(name=task))
