"""The registry's gRPC edge: thin handlers over its parts (models, versions, uploads, aliases,
lineage, search, derivations)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
from google.protobuf import empty_pb2
from pydantic import Field

from services.kit.bus import REGISTRY_QUEUE_STREAM
from services.kit.peers import Peers
from services.kit.server import open_runtime, serve
from services.kit.settings import KitSettings, load_settings
from services.kit.watch import ChangeFeed
from services.registry.aliases import Aliases
from services.registry.derivations import Derivations
from services.registry.lineage import Lineage
from services.registry.lookup import RegistryContext
from services.registry.models import Models
from services.registry.repo import OUTBOX
from services.registry.search import Search
from services.registry.uploads import Uploads
from services.registry.validation import RegistryLimits
from services.registry.versions import Versions
from tuneforge.registry.v1 import model_pb2, registry_service_pb2, registry_service_pb2_grpc

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
# How often the storage each project uses is written where other services' quota checks read it.
STORAGE_REFRESH_SECONDS = 30.0


class RegistrySettings(KitSettings):
    registry_max_file_bytes: int = Field(200 * 1024**3, ge=1)
    registry_max_version_bytes: int = Field(1024**4, ge=1)
    registry_upload_ttl_seconds: int = Field(6 * 3600, ge=1)
    registry_url_ttl_seconds: int = Field(3600, ge=60, le=7 * 24 * 3600)
    registry_sweep_interval_seconds: float = Field(60.0, gt=0)
    registry_derive_memory_bytes: int = Field(
        8 * 1024**3, ge=64 * 1024**2, description="resident memory a derivation child may use"
    )
    registry_derive_timeout_seconds: float = Field(3600.0, gt=0, description="time a derivation may take")
    train_endpoint: str = Field("", description="train service host:port: to check the jobs lineages name")
    data_endpoint: str = Field("", description="data service host:port: to check the datasets lineages name")


class RegistryServicer(registry_service_pb2_grpc.RegistryServiceServicer):
    def __init__(self, ctx: RegistryContext, feed: ChangeFeed | None = None) -> None:
        self.models = Models(ctx)
        self.versions = Versions(ctx)
        self.uploads = Uploads(ctx, self.versions)
        self.aliases = Aliases(ctx)
        self.lineage = Lineage(ctx)
        self.search = Search(ctx)
        self.derivations = Derivations(ctx, feed)

    async def CreateModel(
        self, request: registry_service_pb2.CreateModelRequest, context: grpc.aio.ServicerContext
    ) -> model_pb2.Model:
        return await self.models.create(request.parent, request.model_id, request.model, request.request_id)

    async def GetModel(
        self, request: registry_service_pb2.GetModelRequest, context: grpc.aio.ServicerContext
    ) -> model_pb2.Model:
        return await self.models.get(request.name)

    async def ListModels(
        self, request: registry_service_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> registry_service_pb2.ListModelsResponse:
        models, token = await self.models.list(
            request.parent, request.page_size, request.page_token, request.filter, request.order_by
        )
        return registry_service_pb2.ListModelsResponse(models=models, next_page_token=token)

    async def UpdateModel(
        self, request: registry_service_pb2.UpdateModelRequest, context: grpc.aio.ServicerContext
    ) -> model_pb2.Model:
        return await self.models.update(request.model, list(request.update_mask.paths))

    async def DeleteModel(
        self, request: registry_service_pb2.DeleteModelRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        await self.models.delete(request.name, request.force)
        return empty_pb2.Empty()

    async def UploadModelVersion(
        self,
        request_iterator: AsyncIterator[registry_service_pb2.UploadModelVersionRequest],
        context: grpc.aio.ServicerContext,
    ) -> model_pb2.ModelVersion:
        return await self.uploads.upload(aiter(request_iterator))

    async def CreateModelVersionUpload(
        self, request: registry_service_pb2.CreateModelVersionUploadRequest, context: grpc.aio.ServicerContext
    ) -> model_pb2.ModelVersionUpload:
        return await self.uploads.create(
            request.parent, request.model_version, request.files, request.request_id
        )

    async def CommitModelVersionUpload(
        self, request: registry_service_pb2.CommitModelVersionUploadRequest, context: grpc.aio.ServicerContext
    ) -> model_pb2.ModelVersion:
        return await self.uploads.commit(request.name)

    async def GetModelVersion(
        self, request: registry_service_pb2.GetModelVersionRequest, context: grpc.aio.ServicerContext
    ) -> model_pb2.ModelVersion:
        return await self.versions.get(request.name)

    async def ListModelVersions(
        self, request: registry_service_pb2.ListModelVersionsRequest, context: grpc.aio.ServicerContext
    ) -> registry_service_pb2.ListModelVersionsResponse:
        versions, token = await self.versions.list(
            request.parent, request.page_size, request.page_token, request.filter, request.order_by
        )
        return registry_service_pb2.ListModelVersionsResponse(model_versions=versions, next_page_token=token)

    async def UpdateModelVersion(
        self, request: registry_service_pb2.UpdateModelVersionRequest, context: grpc.aio.ServicerContext
    ) -> model_pb2.ModelVersion:
        return await self.versions.update(request.model_version, list(request.update_mask.paths))

    async def DeleteModelVersion(
        self, request: registry_service_pb2.DeleteModelVersionRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        await self.versions.delete(request.name)
        return empty_pb2.Empty()

    async def DownloadModelVersion(
        self, request: registry_service_pb2.DownloadModelVersionRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[registry_service_pb2.DownloadModelVersionResponse]:
        async for chunk in self.versions.download(request.name, list(request.paths)):
            yield registry_service_pb2.DownloadModelVersionResponse(chunk=chunk)

    async def GenerateModelVersionDownloadUrls(
        self,
        request: registry_service_pb2.GenerateModelVersionDownloadUrlsRequest,
        context: grpc.aio.ServicerContext,
    ) -> registry_service_pb2.GenerateModelVersionDownloadUrlsResponse:
        name, urls = await self.versions.download_urls(request.name)
        return registry_service_pb2.GenerateModelVersionDownloadUrlsResponse(model_version=name, urls=urls)

    async def SetModelAlias(
        self, request: registry_service_pb2.SetModelAliasRequest, context: grpc.aio.ServicerContext
    ) -> model_pb2.ModelAlias:
        return await self.aliases.set(request.parent, request.alias, request.version)

    async def GetModelAlias(
        self, request: registry_service_pb2.GetModelAliasRequest, context: grpc.aio.ServicerContext
    ) -> model_pb2.ModelAlias:
        return await self.aliases.get(request.name)

    async def ListModelAliases(
        self, request: registry_service_pb2.ListModelAliasesRequest, context: grpc.aio.ServicerContext
    ) -> registry_service_pb2.ListModelAliasesResponse:
        aliases, token = await self.aliases.list(request.parent, request.page_size, request.page_token)
        return registry_service_pb2.ListModelAliasesResponse(aliases=aliases, next_page_token=token)

    async def ListAliasHistory(
        self, request: registry_service_pb2.ListAliasHistoryRequest, context: grpc.aio.ServicerContext
    ) -> registry_service_pb2.ListAliasHistoryResponse:
        return registry_service_pb2.ListAliasHistoryResponse(
            entries=await self.aliases.history(request.parent)
        )

    async def GetLineageGraph(
        self, request: registry_service_pb2.GetLineageGraphRequest, context: grpc.aio.ServicerContext
    ) -> registry_service_pb2.GetLineageGraphResponse:
        root, nodes, edges = await self.lineage.graph(request.name)
        return registry_service_pb2.GetLineageGraphResponse(root=root, nodes=nodes, edges=edges)

    async def SearchCatalog(
        self, request: registry_service_pb2.SearchCatalogRequest, context: grpc.aio.ServicerContext
    ) -> registry_service_pb2.SearchCatalogResponse:
        entries = await self.search.search(request.parent, request.filter)
        return registry_service_pb2.SearchCatalogResponse(
            entries=[registry_service_pb2.CatalogEntry(model_version=v, method=m) for v, m in entries]
        )

    async def ExportModelVersion(
        self, request: registry_service_pb2.ExportModelVersionRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[registry_service_pb2.ExportModelVersionResponse]:
        async for data in self.versions.export(request.name):
            yield registry_service_pb2.ExportModelVersionResponse(data=data)

    async def DeriveModelVersion(
        self, request: registry_service_pb2.DeriveModelVersionRequest, context: grpc.aio.ServicerContext
    ) -> model_pb2.ModelVersion:
        return await self.derivations.derive(
            request.name, request.operation, request.target, request.output_model, request.request_id
        )

    async def CreateDerivation(
        self, request: registry_service_pb2.CreateDerivationRequest, context: grpc.aio.ServicerContext
    ) -> model_pb2.Derivation:
        return await self.derivations.create(
            request.name, request.operation, request.target, request.output_model, request.request_id
        )

    async def GetDerivation(
        self, request: registry_service_pb2.GetDerivationRequest, context: grpc.aio.ServicerContext
    ) -> model_pb2.Derivation:
        return await self.derivations.get(request.name)

    async def WatchDerivation(
        self, request: registry_service_pb2.WatchDerivationRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[model_pb2.Derivation]:
        async for derivation in self.derivations.watch(request.name):
            yield derivation

    async def CancelDerivation(
        self, request: registry_service_pb2.CancelDerivationRequest, context: grpc.aio.ServicerContext
    ) -> model_pb2.Derivation:
        return await self.derivations.cancel(request.name)

    async def DeleteModelAlias(
        self, request: registry_service_pb2.DeleteModelAliasRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        await self.aliases.delete(request.name)
        return empty_pb2.Empty()


def limits_from(settings: RegistrySettings) -> RegistryLimits:
    return RegistryLimits(
        max_file_bytes=settings.registry_max_file_bytes,
        max_version_bytes=settings.registry_max_version_bytes,
        upload_ttl=timedelta(seconds=settings.registry_upload_ttl_seconds),
        url_ttl=timedelta(seconds=settings.registry_url_ttl_seconds),
        derive_memory_bytes=settings.registry_derive_memory_bytes,
        derive_timeout=timedelta(seconds=settings.registry_derive_timeout_seconds),
    )


async def main() -> None:
    settings = load_settings(RegistrySettings)
    runtime = await open_runtime("registry", settings, migrations=MIGRATIONS, outbox_table=OUTBOX)
    runtime.observe_queue(REGISTRY_QUEUE_STREAM)
    feed = ChangeFeed(runtime.bus, "tuneforge.registry.derivation.>")
    await feed.start()
    runtime.closers.append(feed.stop)
    ctx = RegistryContext(
        runtime.db,
        runtime.store,
        runtime.outbox,
        runtime.page_tokens,
        limits_from(settings),
        Peers({"train": settings.train_endpoint, "data": settings.data_endpoint}),
        runtime.access,
    )
    servicer = RegistryServicer(ctx, feed)
    assert ctx.peers is not None
    runtime.closers.append(ctx.peers.close)
    runtime.run_periodically(
        "swept expired uploads", settings.registry_sweep_interval_seconds, servicer.uploads.sweep
    )
    runtime.run_periodically("recorded storage per project", STORAGE_REFRESH_SECONDS, ctx.record_storage)

    def register(server: grpc.aio.Server) -> list[str]:
        registry_service_pb2_grpc.add_RegistryServiceServicer_to_server(servicer, server)
        return [registry_service_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name]

    await serve(runtime, register)
