"""The train service's gRPC edge: thin handlers over `TrainingJobs`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
from pydantic import Field

from services.kit.bus import TRAIN_QUEUE_STREAM
from services.kit.peers import Peers
from services.kit.server import open_runtime, serve
from services.kit.settings import KitSettings, load_settings
from services.kit.watch import ChangeFeed
from services.train import monitoring
from services.train.facts import Settings
from services.train.jobs import TrainingJobs
from services.train.repo import OUTBOX
from tuneforge.train.v1 import train_service_pb2, train_service_pb2_grpc, training_job_pb2

MIGRATIONS = Path(__file__).parent / "migrations"
Context = grpc.aio.ServicerContext


class TrainSettings(KitSettings):
    registry_endpoint: str = Field(description="registry host:port: base models, outputs")
    data_endpoint: str = Field(description="data service host:port: training data")
    eval_endpoint: str = Field(
        "", description="eval service host:port: metric names of automatic evaluations"
    )
    train_local_model_dirs: str = Field(
        "", description="folders (separated by ':') whose models jobs may train from as local:///path"
    )
    train_spool_dir: str | None = None


class TrainServicer(train_service_pb2_grpc.TrainServiceServicer):
    def __init__(self, jobs: TrainingJobs) -> None:
        self.jobs = jobs

    async def CreateTrainingJob(
        self, request: train_service_pb2.CreateTrainingJobRequest, context: Context
    ) -> training_job_pb2.TrainingJob:
        return await self.jobs.create(
            request.parent, request.training_job_id, request.training_job, request.request_id
        )

    async def GetTrainingJob(
        self, request: train_service_pb2.GetTrainingJobRequest, context: Context
    ) -> training_job_pb2.TrainingJob:
        return await self.jobs.get(request.name)

    async def ListTrainingJobs(
        self, request: train_service_pb2.ListTrainingJobsRequest, context: Context
    ) -> train_service_pb2.ListTrainingJobsResponse:
        jobs, token = await self.jobs.list(
            request.parent, request.page_size, request.page_token, request.filter
        )
        return train_service_pb2.ListTrainingJobsResponse(training_jobs=jobs, next_page_token=token)

    async def CancelTrainingJob(
        self, request: train_service_pb2.CancelTrainingJobRequest, context: Context
    ) -> training_job_pb2.TrainingJob:
        return await self.jobs.cancel(request.name)

    async def WatchTrainingJob(
        self, request: train_service_pb2.WatchTrainingJobRequest, context: Context
    ) -> AsyncIterator[train_service_pb2.WatchTrainingJobResponse]:
        async for update in self.jobs.watch(request.name, request.after_step):
            yield update

    async def ListCheckpoints(
        self, request: train_service_pb2.ListCheckpointsRequest, context: Context
    ) -> train_service_pb2.ListCheckpointsResponse:
        return train_service_pb2.ListCheckpointsResponse(
            checkpoints=await self.jobs.checkpoints(request.parent)
        )

    async def RegisterCheckpoint(
        self, request: train_service_pb2.RegisterCheckpointRequest, context: Context
    ) -> train_service_pb2.RegisterCheckpointResponse:
        return train_service_pb2.RegisterCheckpointResponse(
            model_version=await self.jobs.register_checkpoint(request.name, request.request_id)
        )

    async def GetTrainingReport(
        self, request: train_service_pb2.GetTrainingReportRequest, context: Context
    ) -> training_job_pb2.TrainingReport:
        return await self.jobs.report(request.name)

    async def ListMetricPoints(
        self, request: train_service_pb2.ListMetricPointsRequest, context: Context
    ) -> train_service_pb2.ListMetricPointsResponse:
        return train_service_pb2.ListMetricPointsResponse(
            metric_points=await self.jobs.metrics(request.parent)
        )

    async def ListWorkers(
        self, request: train_service_pb2.ListWorkersRequest, context: Context
    ) -> train_service_pb2.ListWorkersResponse:
        return train_service_pb2.ListWorkersResponse(workers=await self.jobs.workers(request.include_lost))


async def main() -> None:
    settings = load_settings(TrainSettings)
    runtime = await open_runtime("train", settings, migrations=MIGRATIONS, outbox_table=OUTBOX)
    runtime.observe_queue(TRAIN_QUEUE_STREAM)
    if settings.metrics_listen:
        runtime.run_periodically(
            "train metrics", settings.metrics_refresh_seconds, lambda: monitoring.refresh(runtime.db)
        )
    feed = ChangeFeed(runtime.bus, "tuneforge.train.>")
    await feed.start()
    runtime.closers.append(feed.stop)
    peers = Peers(
        {
            "registry": settings.registry_endpoint,
            "data": settings.data_endpoint,
            "eval": settings.eval_endpoint,
        }
    )
    runtime.closers.append(peers.close)
    jobs = TrainingJobs(
        runtime.db,
        runtime.outbox,
        runtime.page_tokens,
        runtime.store,
        peers,
        feed,
        Settings(
            local_model_dirs=tuple(Path(p) for p in settings.train_local_model_dirs.split(":") if p),
            spool_dir=settings.train_spool_dir,
        ),
        runtime.access,
    )

    def register(server: grpc.aio.Server) -> list[str]:
        train_service_pb2_grpc.add_TrainServiceServicer_to_server(TrainServicer(jobs), server)
        return [train_service_pb2.DESCRIPTOR.services_by_name["TrainService"].full_name]

    await serve(runtime, register)
