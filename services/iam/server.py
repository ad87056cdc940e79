"""The iam service's gRPC edge: thin handlers over projects, API keys and the audit log
(`access_admin.py`).

    python -m services.iam
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2
from pydantic import Field

from services.iam.access_admin import ApiKeys, AuditLog, Projects
from services.iam.repo import OUTBOX
from services.kit.peers import Peers
from services.kit.server import open_runtime, serve
from services.kit.settings import KitSettings, load_settings
from services.kit.times import from_timestamp
from tuneforge.data.v1 import augmentation_service_pb2, data_service_pb2
from tuneforge.eval.v1 import eval_service_pb2
from tuneforge.iam.v1 import iam_pb2, iam_service_pb2, iam_service_pb2_grpc
from tuneforge.registry.v1 import registry_service_pb2
from tuneforge.serve.v1 import serve_service_pb2
from tuneforge.train.v1 import train_service_pb2

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
Context = grpc.aio.ServicerContext
S = iam_service_pb2

# What a project may hold in each service: (peer, method, request, the response's list field).
HOLDINGS = (
    ("registry", "ListModels", registry_service_pb2.ListModelsRequest, "models"),
    ("data", "ListDatasets", data_service_pb2.ListDatasetsRequest, "datasets"),
    ("train", "ListTrainingJobs", train_service_pb2.ListTrainingJobsRequest, "training_jobs"),
    ("eval", "ListEvaluations", eval_service_pb2.ListEvaluationsRequest, "evaluations"),
    ("serve", "ListDeployments", serve_service_pb2.ListDeploymentsRequest, "deployments"),
    ("augmentation", "ListTeachers", augmentation_service_pb2.ListTeachersRequest, "teachers"),
)


class IamSettings(KitSettings):
    registry_endpoint: str = Field("", description="registry host:port (what a project holds)")
    data_endpoint: str = Field("", description="data host:port")
    train_endpoint: str = Field("", description="train host:port")
    eval_endpoint: str = Field("", description="eval host:port")
    serve_endpoint: str = Field("", description="serve host:port")


def holdings(peers: Peers) -> Any:
    """async (project) -> {collection: how many it holds (up to 100)}, asked of every service with
    the caller's key; a service that is not configured holds nothing."""

    async def count(project: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for peer, method, request, field in HOLDINGS:
            if peer not in peers.endpoints:
                continue
            response = await peers.call(peer, method, request(parent=f"projects/{project}", page_size=100))
            out[field] = len(getattr(response, field))
        return out

    return count


class IamServicer(iam_service_pb2_grpc.IamServiceServicer):
    def __init__(self, projects: Projects, keys: ApiKeys, audit: AuditLog) -> None:
        self.projects = projects
        self.keys = keys
        self.audit = audit

    async def CreateProject(self, request: S.CreateProjectRequest, context: Context) -> iam_pb2.Project:
        return await self.projects.create(request.project_id, request.project, request.request_id)

    async def GetProject(self, request: S.GetProjectRequest, context: Context) -> iam_pb2.Project:
        return await self.projects.get(request.name)

    async def ListProjects(self, request: S.ListProjectsRequest, context: Context) -> S.ListProjectsResponse:
        items, token = await self.projects.list(request.page_size, request.page_token)
        return S.ListProjectsResponse(projects=items, next_page_token=token)

    async def UpdateProject(self, request: S.UpdateProjectRequest, context: Context) -> iam_pb2.Project:
        return await self.projects.update(request.project, list(request.update_mask.paths))

    async def DeleteProject(self, request: S.DeleteProjectRequest, context: Context) -> empty_pb2.Empty:
        await self.projects.delete(request.name)
        return empty_pb2.Empty()

    async def CreateApiKey(self, request: S.CreateApiKeyRequest, context: Context) -> S.CreateApiKeyResponse:
        key, token = await self.keys.create(request.parent, request.api_key, request.request_id)
        return S.CreateApiKeyResponse(api_key=key, token=token)

    async def GetApiKey(self, request: S.GetApiKeyRequest, context: Context) -> iam_pb2.ApiKey:
        return await self.keys.get(request.name)

    async def ListApiKeys(self, request: S.ListApiKeysRequest, context: Context) -> S.ListApiKeysResponse:
        items, token = await self.keys.list(request.parent, request.page_size, request.page_token)
        return S.ListApiKeysResponse(api_keys=items, next_page_token=token)

    async def RevokeApiKey(self, request: S.RevokeApiKeyRequest, context: Context) -> iam_pb2.ApiKey:
        return await self.keys.revoke(request.name)

    async def ListAuditLogEntries(
        self, request: S.ListAuditLogEntriesRequest, context: Context
    ) -> S.ListAuditLogEntriesResponse:
        start = from_timestamp(request.start_time, "start_time") if request.HasField("start_time") else None
        items, token = await self.audit.list(
            request.parent, request.page_size, request.page_token, request.filter, start
        )
        return S.ListAuditLogEntriesResponse(entries=items, next_page_token=token)


async def main() -> None:
    settings = load_settings(IamSettings)
    runtime = await open_runtime("iam", settings, migrations=MIGRATIONS, outbox_table=OUTBOX)
    assert runtime.keys is not None
    peers = Peers(
        {
            "registry": settings.registry_endpoint,
            "data": settings.data_endpoint,
            "augmentation": settings.data_endpoint,
            "train": settings.train_endpoint,
            "eval": settings.eval_endpoint,
            "serve": settings.serve_endpoint,
        }
    )
    runtime.closers.append(peers.close)
    servicer = IamServicer(
        Projects(runtime.keys, runtime.page_tokens, holdings(peers)),
        ApiKeys(runtime.keys, runtime.page_tokens),
        AuditLog(runtime.keys, runtime.page_tokens),
    )

    def register(server: grpc.aio.Server) -> list[str]:
        iam_service_pb2_grpc.add_IamServiceServicer_to_server(servicer, server)
        return [iam_service_pb2.DESCRIPTOR.services_by_name["IamService"].full_name]

    await serve(runtime, register)
