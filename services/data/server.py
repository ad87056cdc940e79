"""The data service's gRPC edge: thin handlers over `DataCatalog`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
from google.protobuf import empty_pb2
from pydantic import Field

from services.data.annotations import Annotations
from services.data.augmentation_servicer import AugmentationServicer
from services.data.augmentations import Augmentations
from services.data.catalog import DataCatalog, DataLimits
from services.data.convert import struct
from services.data.datasets import Datasets
from services.data.insights import Insights
from services.data.mixtures import Mixtures
from services.data.preset_catalog import PresetCatalog, all_presets, get_preset
from services.data.repo import OUTBOX
from services.data.teachers import SEAL_PURPOSE, Teachers
from services.data.transforms import Transforms
from services.data.uploads import Uploads
from services.data.versions import Versions
from services.kit.bus import DATA_QUEUE_STREAM
from services.kit.peers import Peers
from services.kit.sealing import SecretBox
from services.kit.server import open_runtime, serve
from services.kit.settings import KitSettings, load_settings
from services.kit.watch import ChangeFeed
from tuneforge.data.v1 import (
    augmentation_service_pb2,
    augmentation_service_pb2_grpc,
    data_service_pb2,
    data_service_pb2_grpc,
    dataset_pb2,
)

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
# How often the storage each project uses is written where other services' quota checks read it.
STORAGE_REFRESH_SECONDS = 30.0
Context = grpc.aio.ServicerContext


class DataSettings(KitSettings):
    registry_endpoint: str = Field("", description="registry host:port, to read tokenizers of model versions")
    serve_endpoint: str = Field("", description="serve host:port, to check the deployments teachers name")
    data_max_upload_bytes: int = Field(2 * 1024**3, ge=1)
    data_max_line_bytes: int = Field(1024 * 1024, ge=1024)
    data_max_decompressed_bytes: int = Field(8 * 1024**3, ge=1)
    data_upload_ttl_seconds: int = Field(6 * 3600, ge=1)
    data_sweep_interval_seconds: float = Field(60.0, gt=0)
    data_mixture_ttl_seconds: float = Field(
        7 * 24 * 3600, gt=0, description="finished training mixtures unused this long are deleted"
    )


class DataServicer(data_service_pb2_grpc.DataServiceServicer):
    def __init__(self, catalog: DataCatalog, peers: Peers) -> None:
        self.datasets = Datasets(catalog)
        self.versions = Versions(catalog)
        self.uploads = Uploads(catalog, self.versions)
        self.transforms = Transforms(catalog, self.versions)
        self.mixtures = Mixtures(catalog, self.versions)
        self.insights = Insights(catalog, peers)
        self.presets = PresetCatalog(catalog, self.datasets, self.versions)

    async def CreateDataset(
        self, request: data_service_pb2.CreateDatasetRequest, context: Context
    ) -> dataset_pb2.Dataset:
        return await self.datasets.create(
            request.parent, request.dataset_id, request.dataset, request.request_id
        )

    async def GetDataset(
        self, request: data_service_pb2.GetDatasetRequest, context: Context
    ) -> dataset_pb2.Dataset:
        return await self.datasets.get(request.name)

    async def ListDatasets(
        self, request: data_service_pb2.ListDatasetsRequest, context: Context
    ) -> data_service_pb2.ListDatasetsResponse:
        items, token = await self.datasets.list(
            request.parent, request.page_size, request.page_token, request.filter, request.order_by
        )
        return data_service_pb2.ListDatasetsResponse(datasets=items, next_page_token=token)

    async def UpdateDataset(
        self, request: data_service_pb2.UpdateDatasetRequest, context: Context
    ) -> dataset_pb2.Dataset:
        return await self.datasets.update(request.dataset, list(request.update_mask.paths))

    async def DeleteDataset(
        self, request: data_service_pb2.DeleteDatasetRequest, context: Context
    ) -> empty_pb2.Empty:
        await self.datasets.delete(request.name, request.force)
        return empty_pb2.Empty()

    async def UploadDatasetVersion(
        self, request_iterator: AsyncIterator[data_service_pb2.UploadDatasetVersionRequest], context: Context
    ) -> dataset_pb2.DatasetVersion:
        return await self.uploads.upload(aiter(request_iterator))

    async def CreateDatasetVersionUpload(
        self, request: data_service_pb2.CreateDatasetVersionUploadRequest, context: Context
    ) -> data_service_pb2.DatasetVersionUpload:
        return await self.uploads.create(
            request.parent, request.options, request.size_bytes, request.sha256, request.request_id
        )

    async def CommitDatasetVersionUpload(
        self, request: data_service_pb2.CommitDatasetVersionUploadRequest, context: Context
    ) -> dataset_pb2.DatasetVersion:
        return await self.uploads.commit(request.name)

    async def WatchDatasetVersion(
        self, request: data_service_pb2.WatchDatasetVersionRequest, context: Context
    ) -> AsyncIterator[dataset_pb2.DatasetVersion]:
        async for version in self.versions.watch(request.name):
            yield version

    async def GetDatasetVersion(
        self, request: data_service_pb2.GetDatasetVersionRequest, context: Context
    ) -> dataset_pb2.DatasetVersion:
        return await self.versions.get(request.name)

    async def ListDatasetVersions(
        self, request: data_service_pb2.ListDatasetVersionsRequest, context: Context
    ) -> data_service_pb2.ListDatasetVersionsResponse:
        items, token = await self.versions.list(
            request.parent, request.page_size, request.page_token, request.filter
        )
        return data_service_pb2.ListDatasetVersionsResponse(dataset_versions=items, next_page_token=token)

    async def DeleteDatasetVersion(
        self, request: data_service_pb2.DeleteDatasetVersionRequest, context: Context
    ) -> empty_pb2.Empty:
        await self.versions.delete(request.name)
        return empty_pb2.Empty()

    async def ReadDatasetRows(
        self, request: data_service_pb2.ReadDatasetRowsRequest, context: Context
    ) -> data_service_pb2.ReadDatasetRowsResponse:
        rows, token, total = await self.versions.read_rows(
            request.name, request.page_size, request.page_token
        )
        return data_service_pb2.ReadDatasetRowsResponse(
            rows=[struct(r) for r in rows], next_page_token=token, total_rows=total
        )

    async def GenerateDatasetVersionDownloadUrls(
        self, request: data_service_pb2.GenerateDatasetVersionDownloadUrlsRequest, context: Context
    ) -> data_service_pb2.GenerateDatasetVersionDownloadUrlsResponse:
        return data_service_pb2.GenerateDatasetVersionDownloadUrlsResponse(
            urls=await self.versions.download_urls(request.name)
        )

    async def ComputeDatasetInsight(
        self, request: data_service_pb2.ComputeDatasetInsightRequest, context: Context
    ) -> dataset_pb2.DatasetInsight:
        return await self.insights.compute(request.name, request.tokenizer, request.max_sequence_length)

    async def GetDatasetInsight(
        self, request: data_service_pb2.GetDatasetInsightRequest, context: Context
    ) -> dataset_pb2.DatasetInsight:
        return await self.insights.get(request.name)

    async def WatchDatasetInsight(
        self, request: data_service_pb2.WatchDatasetInsightRequest, context: Context
    ) -> AsyncIterator[dataset_pb2.DatasetInsight]:
        async for insight in self.insights.watch(request.name):
            yield insight

    async def CleanDatasetVersion(
        self, request: data_service_pb2.CleanDatasetVersionRequest, context: Context
    ) -> dataset_pb2.DatasetVersion:
        return await self.transforms.clean(
            request.name, request.operations, request.description, request.request_id
        )

    async def SplitDatasetVersion(
        self, request: data_service_pb2.SplitDatasetVersionRequest, context: Context
    ) -> data_service_pb2.SplitDatasetVersionResponse:
        train, validation = await self.transforms.split(
            request.name, request.validation_ratio, request.seed, request.request_id
        )
        return data_service_pb2.SplitDatasetVersionResponse(train=train, validation=validation)

    async def PlanMixture(
        self, request: data_service_pb2.PlanMixtureRequest, context: Context
    ) -> dataset_pb2.MixturePlan:
        return await self.mixtures.plan(request.parent, request.sources, request.seed)

    async def CreateMixture(
        self, request: data_service_pb2.CreateMixtureRequest, context: Context
    ) -> dataset_pb2.DatasetVersion:
        return await self.mixtures.create(
            request.parent, request.sources, request.seed, request.description, request.request_id
        )

    async def MaterializeMixture(
        self, request: data_service_pb2.MaterializeMixtureRequest, context: Context
    ) -> dataset_pb2.Mixture:
        return await self.mixtures.materialize(
            request.parent, request.sources, request.seed, request.validation_ratio, request.request_id
        )

    async def GetMixture(
        self, request: data_service_pb2.GetMixtureRequest, context: Context
    ) -> dataset_pb2.Mixture:
        return await self.mixtures.get(request.name)

    async def WatchMixture(
        self, request: data_service_pb2.WatchMixtureRequest, context: Context
    ) -> AsyncIterator[dataset_pb2.Mixture]:
        async for mixture in self.mixtures.watch(request.name):
            yield mixture

    async def DeleteMixture(
        self, request: data_service_pb2.DeleteMixtureRequest, context: Context
    ) -> empty_pb2.Empty:
        await self.mixtures.delete(request.name)
        return empty_pb2.Empty()

    async def ListPresets(
        self, request: data_service_pb2.ListPresetsRequest, context: Context
    ) -> data_service_pb2.ListPresetsResponse:
        return data_service_pb2.ListPresetsResponse(presets=all_presets())

    async def GetPreset(
        self, request: data_service_pb2.GetPresetRequest, context: Context
    ) -> dataset_pb2.Preset:
        return get_preset(request.name)

    async def InstallPreset(
        self, request: data_service_pb2.InstallPresetRequest, context: Context
    ) -> data_service_pb2.InstallPresetResponse:
        versions, preset_id = await self.presets.install(request.parent, request.preset, request.request_id)
        preset = get_preset(f"presets/{preset_id}")
        return data_service_pb2.InstallPresetResponse(
            preset=preset, dataset_versions=versions, hyperparameters=preset.hyperparameters
        )


async def main() -> None:
    settings = load_settings(DataSettings)
    runtime = await open_runtime("data", settings, migrations=MIGRATIONS, outbox_table=OUTBOX)
    runtime.observe_queue(DATA_QUEUE_STREAM)
    feed = ChangeFeed(runtime.bus, "tuneforge.data.>")
    await feed.start()
    runtime.closers.append(feed.stop)
    peers = Peers({"registry": settings.registry_endpoint, "serve": settings.serve_endpoint})
    runtime.closers.append(peers.close)
    catalog = DataCatalog(
        runtime.db,
        runtime.store,
        runtime.outbox,
        runtime.page_tokens,
        DataLimits(
            max_upload_bytes=settings.data_max_upload_bytes,
            max_line_bytes=settings.data_max_line_bytes,
            max_decompressed_bytes=settings.data_max_decompressed_bytes,
            upload_ttl=timedelta(seconds=settings.data_upload_ttl_seconds),
        ),
        feed,
        runtime.access,
    )
    servicer = DataServicer(catalog, peers)
    teachers = Teachers(catalog, peers, SecretBox(settings.secret_key.get_secret_value(), SEAL_PURPOSE))
    augmentation = AugmentationServicer(
        teachers,
        Augmentations(catalog, servicer.datasets, teachers),
        Annotations(catalog, servicer.datasets, teachers),
    )
    runtime.run_periodically(
        "swept expired uploads", settings.data_sweep_interval_seconds, servicer.uploads.sweep
    )
    runtime.run_periodically("recorded storage per project", STORAGE_REFRESH_SECONDS, catalog.record_storage)
    mixture_ttl = timedelta(seconds=settings.data_mixture_ttl_seconds)
    runtime.run_periodically(
        "swept old mixtures",
        settings.data_sweep_interval_seconds,
        lambda: servicer.mixtures.sweep(mixture_ttl),
    )

    def register(server: grpc.aio.Server) -> list[str]:
        data_service_pb2_grpc.add_DataServiceServicer_to_server(servicer, server)
        augmentation_service_pb2_grpc.add_AugmentationServiceServicer_to_server(augmentation, server)
        return [
            data_service_pb2.DESCRIPTOR.services_by_name["DataService"].full_name,
            augmentation_service_pb2.DESCRIPTOR.services_by_name["AugmentationService"].full_name,
        ]

    await serve(runtime, register)
