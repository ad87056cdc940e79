"""`client.data`: datasets, versions, insight, cleaning, splits, mixtures and presets."""

from __future__ import annotations

import functools
import hashlib
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import field_mask_pb2, json_format

from tuneforge import names
from tuneforge.api._calls import CHUNK_BYTES, call, file_sha256, pages
from tuneforge.common.v1 import common_pb2
from tuneforge.data.v1 import data_service_pb2, data_service_pb2_grpc, dataset_pb2
from tuneforge.enums import enum_names, enum_values
from tuneforge.errors import DataLossError, TuneForgeError

KINDS = enum_values(dataset_pb2.DatasetKind, "DATASET_KIND_")
KIND_NAMES = {v: k for k, v in KINDS.items()}
# "" leaves the format or schema to be detected.
FORMATS = {"": 0, **enum_values(dataset_pb2.DataFormat, "DATA_FORMAT_")}
SCHEMAS = {"": 0, **enum_values(dataset_pb2.DataSchema, "DATA_SCHEMA_")}
POLICIES = enum_values(dataset_pb2.ErrorPolicy, "ERROR_POLICY_")
TEXT_SPLITS = {"": 0, **enum_values(dataset_pb2.TextSplit, "TEXT_SPLIT_")}
VERSION_STATES = enum_names(dataset_pb2.DatasetVersionState, "DATASET_VERSION_STATE_")


def _choice(table: Mapping[str, int], value: str, what: str) -> int:
    if value not in table:
        raise TuneForgeError(
            "INVALID_ARGUMENT", f"{what} {value!r} is not one of {', '.join(k for k in table if k)}"
        )
    return table[value]


def cleaning_operation(spec: str | Mapping[str, Any]) -> data_service_pb2.CleaningOperation:
    """`"exact_dedup"` or `{"near_dedup": {"threshold": 0.85, "field": "response"}}` as an operation
    message (enum values by their short name: `response` for `DEDUP_FIELD_RESPONSE`)."""
    name, params = (spec, {}) if isinstance(spec, str) else next(iter(spec.items()))
    operation = data_service_pb2.CleaningOperation()
    if not operation.DESCRIPTOR.fields_by_name.get(name):
        raise TuneForgeError("INVALID_ARGUMENT", f"unknown cleaning operation {name!r}")
    params = dict(params or {})
    if isinstance(params.get("field"), str) and not params["field"].startswith("DEDUP_FIELD_"):
        params["field"] = "DEDUP_FIELD_" + params["field"].upper()
    json_format.ParseDict({name: params}, operation)
    return operation


class Datasets:
    """The data service."""

    def __init__(self, connect: Callable[[], grpc.Channel], project: str) -> None:
        """`connect()` gives the service's channel, made on first use: a client that never calls
        this service needs no endpoint for it."""
        self._connect = connect
        self._project = project

    @functools.cached_property
    def _stub(self) -> data_service_pb2_grpc.DataServiceStub:
        return data_service_pb2_grpc.DataServiceStub(self._connect())

    # -- names ---------------------------------------------------------------------------------

    def dataset_name(self, ref: str) -> str:
        return names.dataset(self._project, ref)

    def version_name(self, ref: str) -> str:
        """`ds/3`, `ds` (the latest ready version) or a full name."""
        return names.dataset_version(self._project, ref)

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
                parent=f"projects/{self._project}",
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
                    parent=f"projects/{self._project}",
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

    def wait(self, version: dataset_pb2.DatasetVersion) -> dataset_pb2.DatasetVersion:
        """The version once a data worker has made it (READY or FAILED); at once if it is."""
        if version.state != dataset_pb2.DATASET_VERSION_STATE_PROCESSING:
            return version
        stream = self._stub.WatchDatasetVersion(
            data_service_pb2.WatchDatasetVersionRequest(name=version.name)
        )
        try:
            for version in stream:
                if version.state != dataset_pb2.DATASET_VERSION_STATE_PROCESSING:
                    break
        except grpc.RpcError as error:
            raise TuneForgeError.from_rpc_error(error) from None
        finally:
            stream.cancel()
        return version

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
        columns: Mapping[str, str] | None = None,
        text_split: str = "",
    ) -> dataset_pb2.DatasetVersion:
        """Upload a file as a new version; it comes back READY, or FAILED with every bad row named.

        `columns` maps the fields TuneForge reads to the file's own columns, as LLaMA-Factory's
        `dataset_info.json` does (`{"prompt": "input_prompt", "reference": "expected_output"}`);
        `text_split` cuts a plain text file into documents by `blank_line` (default), `line` or `file`.
        """
        path = Path(path)
        options = data_service_pb2.IngestOptions(
            filename=path.name,
            format=_choice(FORMATS, format, "format"),
            schema=_choice(SCHEMAS, schema, "schema"),
            error_policy=_choice(POLICIES, error_policy, "error policy"),
            description=description,
            tags=dict(tags or {}),
            columns=dict(columns or {}),
            text_split=_choice(TEXT_SPLITS, text_split, "text split"),
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
            return self.wait(
                call(
                    self._stub.CommitDatasetVersionUpload,
                    data_service_pb2.CommitDatasetVersionUploadRequest(name=upload.name),
                )
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

        return self.wait(call(self._stub.UploadDatasetVersion, requests()))

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
            tokenizer = names.model_version(self._project, tokenizer)
        insight = call(
            self._stub.ComputeDatasetInsight,
            data_service_pb2.ComputeDatasetInsightRequest(
                name=self.version_name(ref), tokenizer=tokenizer, max_sequence_length=max_sequence_length
            ),
        )
        final = (dataset_pb2.COMPUTATION_STATE_READY, dataset_pb2.COMPUTATION_STATE_FAILED)
        if insight.state not in final:
            stream = self._stub.WatchDatasetInsight(
                data_service_pb2.WatchDatasetInsightRequest(name=insight.name)
            )
            try:
                for insight in stream:
                    if insight.state in final:
                        break
            except grpc.RpcError as error:
                raise TuneForgeError.from_rpc_error(error) from None
            finally:
                stream.cancel()
        if insight.state == dataset_pb2.COMPUTATION_STATE_FAILED:
            raise TuneForgeError(
                "FAILED_PRECONDITION",
                f"the insight failed: {insight.failure.message}",
                reason=insight.failure.reason,
            )
        return insight

    def clean(
        self,
        ref: str,
        operations: Sequence[str | Mapping[str, Any]],
        *,
        description: str = "",
        request_id: str | None = None,
    ) -> dataset_pb2.DatasetVersion:
        """Run a cleaning pipeline, e.g. `["normalize_unicode", {"near_dedup": {"threshold": 0.85}}]`."""
        return self.wait(
            call(
                self._stub.CleanDatasetVersion,
                data_service_pb2.CleanDatasetVersionRequest(
                    name=self.version_name(ref),
                    operations=[cleaning_operation(op) for op in operations],
                    description=description,
                    request_id=request_id or str(uuid.uuid4()),
                ),
            )
        )

    def split(
        self, ref: str, validation_ratio: float, *, seed: int = 0, request_id: str | None = None
    ) -> data_service_pb2.SplitDatasetVersionResponse:
        response = call(
            self._stub.SplitDatasetVersion,
            data_service_pb2.SplitDatasetVersionRequest(
                name=self.version_name(ref),
                validation_ratio=validation_ratio,
                seed=seed,
                request_id=request_id or str(uuid.uuid4()),
            ),
        )
        return data_service_pb2.SplitDatasetVersionResponse(
            train=self.wait(response.train), validation=self.wait(response.validation)
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
                parent=f"projects/{self._project}", sources=self._sources(sources), seed=seed
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
        return self.wait(
            call(
                self._stub.CreateMixture,
                data_service_pb2.CreateMixtureRequest(
                    parent=self.dataset_name(dataset),
                    sources=self._sources(sources),
                    seed=seed,
                    description=description,
                    request_id=request_id or str(uuid.uuid4()),
                ),
            )
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
        response = call(
            self._stub.InstallPreset,
            data_service_pb2.InstallPresetRequest(
                parent=f"projects/{self._project}",
                preset=preset if preset.startswith("presets/") else f"presets/{preset}",
                request_id=request_id or str(uuid.uuid4()),
            ),
        )
        ready = [self.wait(v) for v in response.dataset_versions]
        del response.dataset_versions[:]
        response.dataset_versions.extend(ready)
        return response
