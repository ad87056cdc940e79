"""The data service's gRPC edge: thin handlers over `DataCatalog`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
from google.protobuf import empty_pb2
from pydantic import Field

from services.data.catalog import DataCatalog, DataLimits, all_presets, get_preset
from services.data.convert import struct
from services.data.repo import OUTBOX
from services.kit.server import open_runtime, serve
from services.kit.settings import KitSettings, load_settings
from tuneforge.data.v1 import data_service_pb2, data_service_pb2_grpc, dataset_pb2

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
Context = grpc.aio.ServicerContext


class DataSettings(KitSettings):
    registry_endpoint: str = Field("", description="registry host:port, to read tokenizers of model versions")
    data_max_upload_bytes: int = Field(2 * 1024**3, ge=1)
    data_max_line_bytes: int = Field(1024 * 1024, ge=1024)
    data_max_decompressed_bytes: int = Field(8 * 1024**3, ge=1)
    data_upload_ttl_seconds: int = Field(6 * 3600, ge=1)
    data_spool_dir: str | None = Field(None, description="where uploads are spooled while they are validated")
    data_sweep_interval_seconds: float = Field(60.0, gt=0)


class DataServicer(data_service_pb2_grpc.DataServiceServicer):
    def __init__(self, catalog: DataCatalog) -> None:
        self.catalog = catalog

    async def CreateDataset(
        self, request: data_service_pb2.CreateDatasetRequest, context: Context
    ) -> dataset_pb2.Dataset:
        return await self.catalog.create_dataset(
            request.parent, request.dataset_id, request.dataset, request.request_id
        )

    async def GetDataset(
        self, request: data_service_pb2.GetDatasetRequest, context: Context
    ) -> dataset_pb2.Dataset:
        return await self.catalog.get_dataset(request.name)

    async def ListDatasets(
        self, request: data_service_pb2.ListDatasetsRequest, context: Context
    ) -> data_service_pb2.ListDatasetsResponse:
        items, token = await self.catalog.list_datasets(
            request.parent, request.page_size, request.page_token, request.filter, request.order_by
        )
        return data_service_pb2.ListDatasetsResponse(datasets=items, next_page_token=token)

    async def UpdateDataset(
        self, request: data_service_pb2.UpdateDatasetRequest, context: Context
    ) -> dataset_pb2.Dataset:
        return await self.catalog.update_dataset(request.dataset, list(request.update_mask.paths))

    async def DeleteDataset(
        self, request: data_service_pb2.DeleteDatasetRequest, context: Context
    ) -> empty_pb2.Empty:
        await self.catalog.delete_dataset(request.name, request.force)
        return empty_pb2.Empty()

    async def UploadDatasetVersion(
        self, request_iterator: AsyncIterator[data_service_pb2.UploadDatasetVersionRequest], context: Context
    ) -> dataset_pb2.DatasetVersion:
        return await self.catalog.upload_version(aiter(request_iterator))

    async def CreateDatasetVersionUpload(
        self, request: data_service_pb2.CreateDatasetVersionUploadRequest, context: Context
    ) -> data_service_pb2.DatasetVersionUpload:
        return await self.catalog.create_upload(
            request.parent, request.options, request.size_bytes, request.sha256, request.request_id
        )

    async def CommitDatasetVersionUpload(
        self, request: data_service_pb2.CommitDatasetVersionUploadRequest, context: Context
    ) -> dataset_pb2.DatasetVersion:
        return await self.catalog.commit_upload(request.name)

    async def GetDatasetVersion(
        self, request: data_service_pb2.GetDatasetVersionRequest, context: Context
    ) -> dataset_pb2.DatasetVersion:
        return await self.catalog.get_version(request.name)

    async def ListDatasetVersions(
        self, request: data_service_pb2.ListDatasetVersionsRequest, context: Context
    ) -> data_service_pb2.ListDatasetVersionsResponse:
        items, token = await self.catalog.list_versions(
            request.parent, request.page_size, request.page_token, request.filter
        )
        return data_service_pb2.ListDatasetVersionsResponse(dataset_versions=items, next_page_token=token)

    async def DeleteDatasetVersion(
        self, request: data_service_pb2.DeleteDatasetVersionRequest, context: Context
    ) -> empty_pb2.Empty:
        await self.catalog.delete_version(request.name)
        return empty_pb2.Empty()

    async def ReadDatasetRows(
        self, request: data_service_pb2.ReadDatasetRowsRequest, context: Context
    ) -> data_service_pb2.ReadDatasetRowsResponse:
        rows, token, total = await self.catalog.read_rows(request.name, request.page_size, request.page_token)
        return data_service_pb2.ReadDatasetRowsResponse(
            rows=[struct(r) for r in rows], next_page_token=token, total_rows=total
        )

    async def GenerateDatasetVersionDownloadUrls(
        self, request: data_service_pb2.GenerateDatasetVersionDownloadUrlsRequest, context: Context
    ) -> data_service_pb2.GenerateDatasetVersionDownloadUrlsResponse:
        return data_service_pb2.GenerateDatasetVersionDownloadUrlsResponse(
            urls=await self.catalog.download_urls(request.name)
        )

    async def ComputeDatasetInsight(
        self, request: data_service_pb2.ComputeDatasetInsightRequest, context: Context
    ) -> dataset_pb2.DatasetInsight:
        return await self.catalog.compute_insight(
            request.name, request.tokenizer, request.max_sequence_length
        )

    async def CleanDatasetVersion(
        self, request: data_service_pb2.CleanDatasetVersionRequest, context: Context
    ) -> dataset_pb2.DatasetVersion:
        return await self.catalog.clean_version(
            request.name, request.operations, request.description, request.request_id
        )

    async def SplitDatasetVersion(
        self, request: data_service_pb2.SplitDatasetVersionRequest, context: Context
    ) -> data_service_pb2.SplitDatasetVersionResponse:
        train, validation = await self.catalog.split_version(
            request.name, request.validation_ratio, request.seed, request.request_id
        )
        return data_service_pb2.SplitDatasetVersionResponse(train=train, validation=validation)

    async def PlanMixture(
        self, request: data_service_pb2.PlanMixtureRequest, context: Context
    ) -> dataset_pb2.MixturePlan:
        return await self.catalog.plan_mixture(request.parent, request.sources, request.seed)

    async def CreateMixture(
        self, request: data_service_pb2.CreateMixtureRequest, context: Context
    ) -> dataset_pb2.DatasetVersion:
        return await self.catalog.create_mixture(
            request.parent, request.sources, request.seed, request.description, request.request_id
        )

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
        versions, preset_id = await self.catalog.install_preset(
            request.parent, request.preset, request.request_id
        )
        preset = get_preset(f"presets/{preset_id}")
        return data_service_pb2.InstallPresetResponse(
            preset=preset, dataset_versions=versions, hyperparameters=preset.hyperparameters
        )


async def main() -> None:
    settings = load_settings(DataSettings)
    runtime = await open_runtime("data", settings, migrations=MIGRATIONS, outbox_table=OUTBOX)
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
            spool_dir=settings.data_spool_dir,
        ),
        registry_endpoint=settings.registry_endpoint,
    )
    runtime.run_periodically(
        "swept expired uploads", settings.data_sweep_interval_seconds, catalog.sweep_expired_uploads
    )

    def register(server: grpc.aio.Server) -> list[str]:
        data_service_pb2_grpc.add_DataServiceServicer_to_server(DataServicer(catalog), server)
        return [data_service_pb2.DESCRIPTOR.services_by_name["DataService"].full_name]

    await serve(runtime, register)
