"""The eval service's gRPC edge: thin handlers over `Evaluations` and `Ratings`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
from pydantic import Field, SecretStr

from services.eval import metrics
from services.eval.evaluations import Evaluations
from services.eval.ratings import Ratings
from services.eval.repo import OUTBOX, PROCESSED_EVENTS
from services.kit.bus import EVAL_QUEUE_STREAM
from services.kit.outbox import SqlProcessedEventLog
from services.kit.peers import Peers
from services.kit.server import open_runtime, serve
from services.kit.settings import KitSettings, load_settings
from services.kit.watch import ChangeFeed
from tuneforge.eval.v1 import eval_service_pb2, eval_service_pb2_grpc, evaluation_pb2
from tuneforge.events.v1 import event_pb2, registry_events_pb2

MIGRATIONS = Path(__file__).parent / "migrations"
Context = grpc.aio.ServicerContext


class EvalSettings(KitSettings):
    registry_endpoint: str = Field(description="registry host:port: the models")
    data_endpoint: str = Field(description="data service host:port: the evaluation sets")
    eval_service_api_key: SecretStr | None = Field(
        None, description="the eval service's own key, for evaluations it starts itself (after training)"
    )


class EvalServicer(eval_service_pb2_grpc.EvalServiceServicer):
    def __init__(self, evaluations: Evaluations) -> None:
        self.evaluations = evaluations
        self.ratings = Ratings(evaluations)

    async def ListMetrics(
        self, request: eval_service_pb2.ListMetricsRequest, context: Context
    ) -> eval_service_pb2.ListMetricsResponse:
        return eval_service_pb2.ListMetricsResponse(
            metrics=[
                evaluation_pb2.Metric(
                    name=name,
                    description=info.description,
                    needs_reference=info.needs_reference,
                    lower_is_better=info.lower_is_better,
                )
                for name, info in metrics.CATALOG.items()
            ]
        )

    async def CreateEvaluation(
        self, request: eval_service_pb2.CreateEvaluationRequest, context: Context
    ) -> evaluation_pb2.Evaluation:
        return await self.evaluations.create(request.parent, request.evaluation, request.request_id)

    async def GetEvaluation(
        self, request: eval_service_pb2.GetEvaluationRequest, context: Context
    ) -> evaluation_pb2.Evaluation:
        return await self.evaluations.get(request.name)

    async def CancelEvaluation(
        self, request: eval_service_pb2.CancelEvaluationRequest, context: Context
    ) -> evaluation_pb2.Evaluation:
        return await self.evaluations.cancel(request.name)

    async def ListEvaluations(
        self, request: eval_service_pb2.ListEvaluationsRequest, context: Context
    ) -> eval_service_pb2.ListEvaluationsResponse:
        items, token = await self.evaluations.list(request.parent, request.page_size, request.page_token)
        return eval_service_pb2.ListEvaluationsResponse(evaluations=items, next_page_token=token)

    async def WatchEvaluation(
        self, request: eval_service_pb2.WatchEvaluationRequest, context: Context
    ) -> AsyncIterator[evaluation_pb2.Evaluation]:
        async for update in self.evaluations.watch(request.name):
            yield update

    async def CreateRatingTask(
        self, request: eval_service_pb2.CreateRatingTaskRequest, context: Context
    ) -> evaluation_pb2.RatingTask:
        return await self.ratings.create_task(request.parent, request.rating_task)

    async def ListRatingItems(
        self, request: eval_service_pb2.ListRatingItemsRequest, context: Context
    ) -> eval_service_pb2.ListRatingItemsResponse:
        items, token = await self.ratings.items(request.parent, request.page_size, request.page_token)
        return eval_service_pb2.ListRatingItemsResponse(items=items, next_page_token=token)

    async def SubmitRating(
        self, request: eval_service_pb2.SubmitRatingRequest, context: Context
    ) -> eval_service_pb2.SubmitRatingResponse:
        count = await self.ratings.submit(
            request.rating_task,
            request.sample_id,
            request.rater,
            request.score,
            request.preference,
            request.comment,
        )
        return eval_service_pb2.SubmitRatingResponse(item_ratings=count)

    async def GetRatingSummary(
        self, request: eval_service_pb2.GetRatingSummaryRequest, context: Context
    ) -> evaluation_pb2.RatingSummary:
        return await self.ratings.summary(request.name)

    async def GetEvaluationReport(
        self, request: eval_service_pb2.GetEvaluationReportRequest, context: Context
    ) -> evaluation_pb2.EvaluationReport:
        return await self.evaluations.report(request.name)

    async def ListSamplePredictions(
        self, request: eval_service_pb2.ListSamplePredictionsRequest, context: Context
    ) -> eval_service_pb2.ListSamplePredictionsResponse:
        items, token = await self.evaluations.predictions(
            request.parent, request.model_version, request.order_by, request.page_size, request.page_token
        )
        return eval_service_pb2.ListSamplePredictionsResponse(predictions=items, next_page_token=token)


async def main() -> None:
    settings = load_settings(EvalSettings)
    runtime = await open_runtime("eval", settings, migrations=MIGRATIONS, outbox_table=OUTBOX)
    runtime.observe_queue(EVAL_QUEUE_STREAM)
    feed = ChangeFeed(runtime.bus, "tuneforge.eval.>")
    await feed.start()
    runtime.closers.append(feed.stop)
    peers = Peers({"registry": settings.registry_endpoint, "data": settings.data_endpoint})
    runtime.closers.append(peers.close)
    evaluations = Evaluations(runtime.db, runtime.outbox, runtime.store, runtime.page_tokens, peers, feed)

    if settings.eval_service_api_key:
        key = settings.eval_service_api_key.get_secret_value()

        async def on_version_created(event: event_pb2.Event) -> None:
            payload = registry_events_pb2.ModelVersionEvent()
            event.data.Unpack(payload)
            await evaluations.auto_evaluate(payload.model_version, key)

        runtime.bus.consume(
            "eval-auto-evaluation",
            "tuneforge.registry.model_version.created",
            on_version_created,
            processed=SqlProcessedEventLog(runtime.db, PROCESSED_EVENTS),
        )

    def register(server: grpc.aio.Server) -> list[str]:
        eval_service_pb2_grpc.add_EvalServiceServicer_to_server(EvalServicer(evaluations), server)
        return [eval_service_pb2.DESCRIPTOR.services_by_name["EvalService"].full_name]

    await serve(runtime, register)
