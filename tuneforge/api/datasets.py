"""`client.data`: datasets, versions, insight, cleaning, splits, mixtures and presets."""

from __future__ import annotations

import functools
import hashlib
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from google.protobuf import field_mask_pb2, json_format

from tuneforge.api._calls import CHUNK_BYTES, call, file_sha256, pages
from tuneforge.common.v1 import common_pb2
from tuneforge.data.v1 import data_service_pb2, data_service_pb2_grpc, dataset_pb2
from tuneforge.errors import DataLossError, TuneForgeError

if TYPE_CHECKING:
    from tuneforge.client import Client

KINDS = {
    "text": dataset_pb2.DATASET_KIND_TEXT,
    "sft": dataset_pb2.DATASET_KIND_SFT,
    "preference": dataset_pb2.DATASET_KIND_PREFERENCE,
    "unpaired_preference": dataset_pb2.DATASET_KIND_UNPAIRED_PREFERENCE,
    "prompt_only": dataset_pb2.DATASET_KIND_PROMPT_ONLY,
    "eval": dataset_pb2.DATASET_KIND_EVAL,
}
KIND_NAMES = {v: k for k, v in KINDS.items()}
FORMATS = {"": 0, "jsonl": 1, "json": 2, "csv": 3, "parquet": 4, "text": 5}
SCHEMAS = {
    "": 0,
    "canonical": 1,
    "openai_chat": 2,
    "alpaca": 3,
    "sharegpt": 4,
    "qianfan": 5,
    "trl": 6,
    "text": 7,
}
POLICIES = {"fail": dataset_pb2.ERROR_POLICY_FAIL, "skip": dataset_pb2.ERROR_POLICY_SKIP}


def _choice(table: Mapping[str, int], value: str, what: str) -> int:
    if value not in table:
        raise TuneForgeError(
            "INVALID_ARGUMENT", f"{what} {value!r} is not one of {', '.join(k for k in table if k)}"
        )
    return table[value]


def cleaning_operation(spec: str | Mapping[str, Any]) -> data_service_pb2.CleaningOperation:
    """`"exact_dedup"` or `{"near_dedup": {"threshold": 0.85}}` as an operation message."""
    name, params = (spec, {}) if isinstance(spec, str) else next(iter(spec.items()))
    operation = data_service_pb2.CleaningOperation()
    if not operation.DESCRIPTOR.fields_by_name.get(name):
        raise TuneForgeError("INVALID_ARGUMENT", f"unknown cleaning operation {name!r}")
    json_format.ParseDict({name: dict(params or {})}, operation)
    return operation


class Datasets:
    """The data service."""

    def __init__(self, client: Client) -> None:
        self._client = client

    @functools.cached_property
    def _stub(self) -> data_service_pb2_grpc.DataServiceStub:
        # Connected on first use, so a client that never calls this service needs no endpoint for it.
        return data_service_pb2_grpc.DataServiceStub(self._client._channel("data"))

    # -- names ---------------------------------------------------------------------------------

    def dataset_name(self, ref: str) -> str:
        return ref if ref.startswith("projects/") else f"projects/{self._client.project}/datasets/{ref}"

    def version_name(self, ref: str) -> str:
        """`ds/3`, `ds` (the latest ready version) or a full name."""
        if ref.startswith("projects/"):
            return ref if "/versions/" in ref else f"{ref}/versions/latest"
        dataset, _, version = ref.partition("/")
        return f"{self.dataset_name(dataset)}/versions/{version or 'latest'}"

    # -- datasets ------------------------------------------------------------------------------

    def create(
        self,
        dataset_id: str,
        kind: str,
        *,
        display_name: str = "",
        description: str = "",
        tags: Mapping[str, str] | None = None,
        request_id: str | None = None,
    ) -> dataset_pb2.Dataset:
        return call(
            self._stub.CreateDataset,
            data_service_pb2.CreateDatasetRequest(
                parent=f"projects/{self._client.project}",
                dataset_id=dataset_id,
                dataset=dataset_pb2.Dataset(
                    kind=_choice(KINDS, kind, "kind"),
                    display_name=display_name,
                    description=description,
                    tags=dict(tags or {}),
                ),
                request_id=request_id or str(uuid.uuid4()),
            ),
        )

    def get(self, ref: str) -> dataset_pb2.Dataset:
        return call(self._stub.GetDataset, data_service_pb2.GetDatasetRequest(name=self.dataset_name(ref)))

    def list(
        self, *, filter: str = "", order_by: str = "", page_size: int = 0
    ) -> Iterator[dataset_pb2.Dataset]:
        def fetch(token: str) -> tuple[list[dataset_pb2.Dataset], str]:
            response = call(
                self._stub.ListDatasets,
                data_service_pb2.ListDatasetsRequest(
                    parent=f"projects/{self._client.project}",
                    page_size=page_size,
                    page_token=token,
                    filter=filter,
                    order_by=order_by,
                ),
            )
            return list(response.datasets), response.next_page_token

        return pages(fetch)

    def update(self, ref: str, **fields: Any) -> dataset_pb2.Dataset:
        return call(
            self._stub.UpdateDataset,
            data_service_pb2.UpdateDatasetRequest(
                dataset=dataset_pb2.Dataset(name=self.dataset_name(ref), **fields),
                update_mask=field_mask_pb2.FieldMask(paths=sorted(fields)),
            ),
        )

    def delete(self, ref: str, *, force: bool = False) -> None:
        call(
            self._stub.DeleteDataset,
            data_service_pb2.DeleteDatasetRequest(name=self.dataset_name(ref), force=force),
        )

    # -- versions ------------------------------------------------------------------------------

    def upload(
        self,
        dataset: str,
        path: str | Path,
        *,
        format: str = "",
        schema: str = "",
        error_policy: str = "fail",
        description: str = "",
        tags: Mapping[str, str] | None = None,
        request_id: str | None = None,
        presigned: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> dataset_pb2.DatasetVersion:
        """Upload a file as a new version; it comes back READY, or FAILED with every bad row named."""
        path = Path(path)
        options = data_service_pb2.IngestOptions(
            filename=path.name,
            format=_choice(FORMATS, format, "format"),
            schema=_choice(SCHEMAS, schema, "schema"),
            error_policy=_choice(POLICIES, error_policy, "error policy"),
            description=description,
            tags=dict(tags or {}),
        )
        request_id = request_id or str(uuid.uuid4())
        if presigned:
            upload = call(
                self._stub.CreateDatasetVersionUpload,
                data_service_pb2.CreateDatasetVersionUploadRequest(
                    parent=self.dataset_name(dataset),
                    options=options,
                    size_bytes=path.stat().st_size,
                    sha256=file_sha256(path),
                    request_id=request_id,
                ),
            )
            with path.open("rb") as f:
                request = urllib.request.Request(upload.url.url, data=f, method="PUT")
                request.add_header("Content-Length", str(path.stat().st_size))
                urllib.request.urlopen(request).read()
            if progress:
                progress(path.stat().st_size)
            return call(
                self._stub.CommitDatasetVersionUpload,
                data_service_pb2.CommitDatasetVersionUploadRequest(name=upload.name),
            )

        def requests() -> Iterator[data_service_pb2.UploadDatasetVersionRequest]:
            yield data_service_pb2.UploadDatasetVersionRequest(
                header=data_service_pb2.UploadDatasetVersionHeader(
                    parent=self.dataset_name(dataset), options=options, request_id=request_id
                )
            )
            digest = hashlib.sha256()
            with path.open("rb") as f:
                while block := f.read(CHUNK_BYTES):
                    digest.update(block)
                    yield data_service_pb2.UploadDatasetVersionRequest(data=block)
                    if progress:
                        progress(len(block))
            yield data_service_pb2.UploadDatasetVersionRequest(
                finish=data_service_pb2.UploadDatasetVersionFinish(sha256=digest.hexdigest())
            )

        return call(self._stub.UploadDatasetVersion, requests())

    def get_version(self, ref: str) -> dataset_pb2.DatasetVersion:
        return call(
            self._stub.GetDatasetVersion,
            data_service_pb2.GetDatasetVersionRequest(name=self.version_name(ref)),
        )

    def list_versions(
        self, dataset: str, *, filter: str = "", page_size: int = 0
    ) -> Iterator[dataset_pb2.DatasetVersion]:
        def fetch(token: str) -> tuple[list[dataset_pb2.DatasetVersion], str]:
            response = call(
                self._stub.ListDatasetVersions,
                data_service_pb2.ListDatasetVersionsRequest(
                    parent=self.dataset_name(dataset), page_size=page_size, page_token=token, filter=filter
                ),
            )
            return list(response.dataset_versions), response.next_page_token

        return pages(fetch)

    def delete_version(self, ref: str) -> None:
        call(
            self._stub.DeleteDatasetVersion,
            data_service_pb2.DeleteDatasetVersionRequest(name=self.version_name(ref)),
        )

    def rows(self, ref: str, *, page_size: int = 0) -> Iterator[dict[str, Any]]:
        """A ready version's rows in canonical form, fetched a page at a time."""
        name = self.version_name(ref)

        def fetch(token: str) -> tuple[list[dict[str, Any]], str]:
            response = call(
                self._stub.ReadDatasetRows,
                data_service_pb2.ReadDatasetRowsRequest(name=name, page_size=page_size, page_token=token),
            )
            return [json_format.MessageToDict(r) for r in response.rows], response.next_page_token

        return pages(fetch)

    def download(self, ref: str, dest: str | Path) -> dataset_pb2.DatasetVersion:
        """Download a version's files (data.parquet, manifest.json, errors.jsonl, source) verifying each."""
        version = self.get_version(ref)
        urls = call(
            self._stub.GenerateDatasetVersionDownloadUrls,
            data_service_pb2.GenerateDatasetVersionDownloadUrlsRequest(name=version.name),
        ).urls
        dest = Path(dest)
        for url in urls:
            target = dest / url.path
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            digest = hashlib.sha256()
            with urllib.request.urlopen(url.url) as remote, partial.open("wb") as out:
                while block := remote.read(CHUNK_BYTES):
                    digest.update(block)
                    out.write(block)
            if digest.hexdigest() != url.sha256:
                partial.unlink()
                raise DataLossError(
                    "DATA_LOSS", f"{url.path} did not verify: its sha256 differs from the manifest"
                )
            partial.replace(target)
        return version

    def insight(
        self, ref: str, *, tokenizer: str = "", max_sequence_length: int = 0
    ) -> dataset_pb2.DatasetInsight:
        """Insight of a ready version; `tokenizer` is a model version whose tokenizer.json counts tokens."""
        if tokenizer and not tokenizer.startswith("projects/"):
            tokenizer = self._client.models.version_name(tokenizer)
        return call(
            self._stub.ComputeDatasetInsight,
            data_service_pb2.ComputeDatasetInsightRequest(
                name=self.version_name(ref), tokenizer=tokenizer, max_sequence_length=max_sequence_length
            ),
        )

    def clean(
        self,
        ref: str,
        operations: Sequence[str | Mapping[str, Any]],
        *,
        description: str = "",
        request_id: str | None = None,
    ) -> dataset_pb2.DatasetVersion:
        """Run a cleaning pipeline, e.g. `["normalize_unicode", {"near_dedup": {"threshold": 0.85}}]`."""
        return call(
            self._stub.CleanDatasetVersion,
            data_service_pb2.CleanDatasetVersionRequest(
                name=self.version_name(ref),
                operations=[cleaning_operation(op) for op in operations],
                description=description,
                request_id=request_id or str(uuid.uuid4()),
            ),
        )

    def split(
        self, ref: str, validation_ratio: float, *, seed: int = 0, request_id: str | None = None
    ) -> data_service_pb2.SplitDatasetVersionResponse:
        return call(
            self._stub.SplitDatasetVersion,
            data_service_pb2.SplitDatasetVersionRequest(
                name=self.version_name(ref),
                validation_ratio=validation_ratio,
                seed=seed,
                request_id=request_id or str(uuid.uuid4()),
            ),
        )

    def _sources(self, sources: Mapping[str, float]) -> list[common_pb2.DatasetVersionRef]:
        return [
            common_pb2.DatasetVersionRef(dataset_version=self.version_name(ref), sampling_rate=rate)
            for ref, rate in sources.items()
        ]

    def plan_mixture(self, sources: Mapping[str, float], *, seed: int = 0) -> dataset_pb2.MixturePlan:
        """What `{version: sampling_rate}` would give: per source characters, samples, share."""
        return call(
            self._stub.PlanMixture,
            data_service_pb2.PlanMixtureRequest(
                parent=f"projects/{self._client.project}", sources=self._sources(sources), seed=seed
            ),
        )

    def create_mixture(
        self,
        dataset: str,
        sources: Mapping[str, float],
        *,
        seed: int = 0,
        description: str = "",
        request_id: str | None = None,
    ) -> dataset_pb2.DatasetVersion:
        return call(
            self._stub.CreateMixture,
            data_service_pb2.CreateMixtureRequest(
                parent=self.dataset_name(dataset),
                sources=self._sources(sources),
                seed=seed,
                description=description,
                request_id=request_id or str(uuid.uuid4()),
            ),
        )

    # -- presets -------------------------------------------------------------------------------

    def presets(self) -> list[dataset_pb2.Preset]:
        return list(call(self._stub.ListPresets, data_service_pb2.ListPresetsRequest()).presets)

    def get_preset(self, preset: str) -> dataset_pb2.Preset:
        return call(
            self._stub.GetPreset,
            data_service_pb2.GetPresetRequest(
                name=preset if preset.startswith("presets/") else f"presets/{preset}"
            ),
        )

    def install_preset(
        self, preset: str, *, request_id: str | None = None
    ) -> data_service_pb2.InstallPresetResponse:
        return call(
            self._stub.InstallPreset,
            data_service_pb2.InstallPresetRequest(
                parent=f"projects/{self._client.project}",
                preset=preset if preset.startswith("presets/") else f"presets/{preset}",
                request_id=request_id or str(uuid.uuid4()),
            ),
        )
