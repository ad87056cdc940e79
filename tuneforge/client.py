"""The Python SDK: `tuneforge.Client`.

    from tuneforge import Client
    client = Client()                                   # local suite, or TUNEFORGE_* variables
    client.models.create("qwen-essay", display_name="Qwen essay grader")
    version = client.models.upload("qwen-essay", "out/final")
    client.models.set_alias("qwen-essay", "production", version.name)
    client.models.download("qwen-essay@production", "deploy/model")

Short names are expanded inside the client's project: `m` is `projects/{project}/models/m`,
`m/3` is version 3, `m@production` the version the alias points at.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf import field_mask_pb2, struct_pb2

from tuneforge.common.v1 import common_pb2
from tuneforge.errors import DataLossError, TuneForgeError
from tuneforge.registry.v1 import model_pb2, registry_service_pb2, registry_service_pb2_grpc

CHUNK_BYTES = 4 * 1024 * 1024
T = TypeVar("T")

_RETRY_POLICY = {
    "maxAttempts": 5,
    "initialBackoff": "0.2s",
    "maxBackoff": "5s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
_SERVICES = ("tuneforge.registry.v1.RegistryService",)


def tuneforge_home() -> Path:
    return Path(os.environ.get("TUNEFORGE_HOME", Path.home() / ".tuneforge")).expanduser()


@dataclass(frozen=True)
class Connection:
    """Where the services are and who is calling."""

    endpoints: Mapping[str, str]
    api_key: str
    project: str

    @classmethod
    def resolve(
        cls, endpoint: str | None = None, api_key: str | None = None, project: str | None = None
    ) -> Connection:
        """Arguments first, then `TUNEFORGE_ENDPOINT` / `TUNEFORGE_<SERVICE>_ENDPOINT`,
        `TUNEFORGE_API_KEY`, `TUNEFORGE_PROJECT`, then the local suite under `TUNEFORGE_HOME`."""
        home = tuneforge_home()
        local: dict[str, str] = {}
        if (home / "endpoints.json").exists():
            local = json.loads((home / "endpoints.json").read_text())
        endpoints = {}
        for service in ("registry", "data", "train", "eval"):
            endpoints[service] = (
                endpoint
                or os.environ.get(f"TUNEFORGE_{service.upper()}_ENDPOINT")
                or os.environ.get("TUNEFORGE_ENDPOINT")
                or local.get(service, "")
            )
        # An explicit "" means "send no key"; None means "look it up".
        key = api_key if api_key is not None else os.environ.get("TUNEFORGE_API_KEY", "")
        if api_key is None and not key and (home / "admin.key").exists():
            key = (home / "admin.key").read_text().strip()
        return cls(endpoints, key, project or os.environ.get("TUNEFORGE_PROJECT", "default"))


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, details: grpc.ClientCallDetails, metadata: list[tuple[str, str]]) -> None:
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = metadata
        self.credentials = details.credentials
        self.wait_for_ready = details.wait_for_ready
        self.compression = details.compression


class _Metadata(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds the bearer API key and a request id to every call."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = list(details.metadata or [])
        if self.api_key:
            metadata.append(("authorization", f"Bearer {self.api_key}"))
        if not any(k == "x-request-id" for k, _ in metadata):
            metadata.append(("x-request-id", uuid.uuid4().hex))
        return _CallDetails(details, metadata)

    def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):  # type: ignore[no-untyped-def]
        return continuation(self._details(details), request_iterator)

    def intercept_stream_stream(self, continuation, details, request_iterator):  # type: ignore[no-untyped-def]
        return continuation(self._details(details), request_iterator)


def _channel(address: str, api_key: str) -> grpc.Channel:
    """A channel to `host:port` (plaintext) or `tls://host:port` (TLS with the system's roots)."""
    if not address:
        raise TuneForgeError(
            "UNAVAILABLE",
            "no endpoint configured: start the local suite (`tuneforge up`) or set TUNEFORGE_ENDPOINT",
            reason="NO_ENDPOINT",
        )
    options = [
        ("grpc.enable_retries", 1),
        (
            "grpc.service_config",
            json.dumps(
                {
                    "methodConfig": [
                        {"name": [{"service": s} for s in _SERVICES], "retryPolicy": _RETRY_POLICY}
                    ]
                }
            ),
        ),
        ("grpc.max_receive_message_length", 16 * 1024 * 1024),
        ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ]
    if address.startswith("tls://"):
        channel = grpc.secure_channel(
            address.removeprefix("tls://"), grpc.ssl_channel_credentials(), options=options
        )
    else:
        channel = grpc.insecure_channel(address, options=options)
    return grpc.intercept_channel(channel, _Metadata(api_key))


def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return fn(*args, **kwargs)
    except grpc.RpcError as error:
        raise TuneForgeError.from_rpc_error(error) from None


def _pages(fetch: Callable[[str], tuple[list[T], str]]) -> Iterator[T]:
    token = ""
    while True:
        items, token = fetch(token)
        yield from items
        if not token:
            return


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def folder_files(folder: Path) -> list[tuple[str, Path]]:
    """(relative path, file) for every regular file under `folder`, skipping hidden ones."""
    out = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            out.append((relative.as_posix(), path))
    if not out:
        raise TuneForgeError("INVALID_ARGUMENT", f"{folder} holds no files to upload", reason="EMPTY_FOLDER")
    return out


class Models:
    """The model registry."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._stub = registry_service_pb2_grpc.RegistryServiceStub(client._channel("registry"))

    # -- names ---------------------------------------------------------------------------------

    def model_name(self, ref: str) -> str:
        return ref if ref.startswith("projects/") else f"projects/{self._client.project}/models/{ref}"

    def version_name(self, ref: str) -> str:
        """`m/3`, `m@alias`, `m` (latest) or a full name, as a version resource name."""
        if ref.startswith("projects/"):
            return ref if "/versions/" in ref else f"{ref}/versions/latest"
        if "@" in ref:
            model, alias = ref.split("@", 1)
            return f"{self.model_name(model)}/versions/{alias}"
        if "/" in ref:
            model, version = ref.split("/", 1)
            return f"{self.model_name(model)}/versions/{version}"
        return f"{self.model_name(ref)}/versions/latest"

    # -- models --------------------------------------------------------------------------------

    def create(
        self,
        model_id: str,
        *,
        display_name: str = "",
        description: str = "",
        tags: Mapping[str, str] | None = None,
        request_id: str | None = None,
    ) -> model_pb2.Model:
        request = registry_service_pb2.CreateModelRequest(
            parent=f"projects/{self._client.project}",
            model_id=model_id,
            model=model_pb2.Model(display_name=display_name, description=description, tags=dict(tags or {})),
            request_id=request_id or str(uuid.uuid4()),
        )
        return _call(self._stub.CreateModel, request)

    def get(self, ref: str) -> model_pb2.Model:
        return _call(self._stub.GetModel, registry_service_pb2.GetModelRequest(name=self.model_name(ref)))

    def list(self, *, filter: str = "", order_by: str = "", page_size: int = 0) -> Iterator[model_pb2.Model]:
        def fetch(token: str) -> tuple[list[model_pb2.Model], str]:
            response = _call(
                self._stub.ListModels,
                registry_service_pb2.ListModelsRequest(
                    parent=f"projects/{self._client.project}",
                    page_size=page_size,
                    page_token=token,
                    filter=filter,
                    order_by=order_by,
                ),
            )
            return list(response.models), response.next_page_token

        return _pages(fetch)

    def update(self, ref: str, **fields: Any) -> model_pb2.Model:
        model = model_pb2.Model(name=self.model_name(ref), **fields)
        mask = field_mask_pb2.FieldMask(paths=sorted(fields))
        return _call(
            self._stub.UpdateModel, registry_service_pb2.UpdateModelRequest(model=model, update_mask=mask)
        )

    def delete(self, ref: str, *, force: bool = False) -> None:
        _call(
            self._stub.DeleteModel,
            registry_service_pb2.DeleteModelRequest(name=self.model_name(ref), force=force),
        )

    # -- versions ------------------------------------------------------------------------------

    @staticmethod
    def _spec(
        description: str,
        tags: Mapping[str, str] | None,
        metrics: Mapping[str, float] | None,
        lineage: Mapping[str, Any] | None,
    ) -> model_pb2.ModelVersion:
        lineage = dict(lineage or {})
        hyperparameters = struct_pb2.Struct()
        hyperparameters.update(lineage.pop("hyperparameters", {}) or {})
        datasets = [common_pb2.DatasetVersionRef(**d) for d in lineage.pop("dataset_versions", [])]
        return model_pb2.ModelVersion(
            description=description,
            tags=dict(tags or {}),
            metrics=dict(metrics or {}),
            lineage=model_pb2.Lineage(hyperparameters=hyperparameters, dataset_versions=datasets, **lineage),
        )

    def upload(
        self,
        model: str,
        folder: str | Path,
        *,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        metrics: Mapping[str, float] | None = None,
        lineage: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        presigned: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> model_pb2.ModelVersion:
        """Upload every file of `folder` as a new version (streamed over gRPC, or by presigned PUTs).

        `progress` is called with the number of bytes sent since the last call.
        """
        folder = Path(folder)
        files = folder_files(folder)
        spec = self._spec(description, tags, metrics, lineage)
        request_id = request_id or str(uuid.uuid4())
        if presigned:
            return self._upload_presigned(model, files, spec, request_id, progress)

        def requests() -> Iterator[registry_service_pb2.UploadModelVersionRequest]:
            yield registry_service_pb2.UploadModelVersionRequest(
                header=registry_service_pb2.UploadModelVersionHeader(
                    parent=self.model_name(model), model_version=spec, request_id=request_id
                )
            )
            for relative, path in files:
                digest = hashlib.sha256()
                with path.open("rb") as f:
                    block = f.read(CHUNK_BYTES)
                    while True:
                        following = f.read(CHUNK_BYTES)
                        digest.update(block)
                        last = not following
                        yield registry_service_pb2.UploadModelVersionRequest(
                            chunk=common_pb2.FileChunk(
                                path=relative, data=block, eof=last, sha256=digest.hexdigest() if last else ""
                            )
                        )
                        if progress:
                            progress(len(block))
                        if last:
                            break
                        block = following
            yield registry_service_pb2.UploadModelVersionRequest(
                finish=registry_service_pb2.UploadModelVersionFinish(file_count=len(files))
            )

        return _call(self._stub.UploadModelVersion, requests())

    def _upload_presigned(
        self,
        model: str,
        files: list[tuple[str, Path]],
        spec: model_pb2.ModelVersion,
        request_id: str,
        progress: Callable[[int], None] | None,
    ) -> model_pb2.ModelVersion:
        entries = [
            common_pb2.FileEntry(path=r, size_bytes=p.stat().st_size, sha256=_file_sha256(p))
            for r, p in files
        ]
        upload = _call(
            self._stub.CreateModelVersionUpload,
            registry_service_pb2.CreateModelVersionUploadRequest(
                parent=self.model_name(model), model_version=spec, files=entries, request_id=request_id
            ),
        )
        local = dict(files)
        for url in upload.urls:
            path = local[url.path]
            with path.open("rb") as f:
                request = urllib.request.Request(url.url, data=f, method="PUT")
                request.add_header("Content-Length", str(path.stat().st_size))
                with urllib.request.urlopen(request) as response:
                    response.read()
            if progress:
                progress(path.stat().st_size)
        return _call(
            self._stub.CommitModelVersionUpload,
            registry_service_pb2.CommitModelVersionUploadRequest(name=upload.name),
        )

    def get_version(self, ref: str) -> model_pb2.ModelVersion:
        return _call(
            self._stub.GetModelVersion,
            registry_service_pb2.GetModelVersionRequest(name=self.version_name(ref)),
        )

    def list_versions(
        self, model: str, *, filter: str = "", order_by: str = "", page_size: int = 0
    ) -> Iterator[model_pb2.ModelVersion]:
        def fetch(token: str) -> tuple[list[model_pb2.ModelVersion], str]:
            response = _call(
                self._stub.ListModelVersions,
                registry_service_pb2.ListModelVersionsRequest(
                    parent=self.model_name(model),
                    page_size=page_size,
                    page_token=token,
                    filter=filter,
                    order_by=order_by,
                ),
            )
            return list(response.model_versions), response.next_page_token

        return _pages(fetch)

    def update_version(self, ref: str, **fields: Any) -> model_pb2.ModelVersion:
        version = model_pb2.ModelVersion(name=self.version_name(ref), **fields)
        mask = field_mask_pb2.FieldMask(paths=sorted(fields))
        return _call(
            self._stub.UpdateModelVersion,
            registry_service_pb2.UpdateModelVersionRequest(model_version=version, update_mask=mask),
        )

    def delete_version(self, ref: str) -> None:
        _call(
            self._stub.DeleteModelVersion,
            registry_service_pb2.DeleteModelVersionRequest(name=self.version_name(ref)),
        )

    def download(
        self,
        ref: str,
        dest: str | Path,
        *,
        paths: list[str] | None = None,
        presigned: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> model_pb2.ModelVersion:
        """Download a version's files into `dest`, verifying each file's SHA-256.

        A file is moved into place only after it verified; on any failure no partial file is left.
        """
        version = self.get_version(ref)
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        expected = {f.path: f for f in version.files}
        staging = dest / f".tuneforge-partial-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        try:
            if presigned:
                self._download_presigned(version.name, staging, progress)
            else:
                self._download_stream(version.name, paths or [], expected, staging, progress)
            for relative in paths or list(expected):
                final = dest / relative
                final.parent.mkdir(parents=True, exist_ok=True)
                (staging / relative).replace(final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return version

    def _download_stream(
        self,
        name: str,
        paths: list[str],
        expected: Mapping[str, common_pb2.FileEntry],
        staging: Path,
        progress: Callable[[int], None] | None,
    ) -> None:
        stream = self._stub.DownloadModelVersion(
            registry_service_pb2.DownloadModelVersionRequest(name=name, paths=paths)
        )
        current: tuple[str, Any, Any] | None = None
        try:
            for response in stream:
                chunk = response.chunk
                if current is None or current[0] != chunk.path:
                    target = staging / chunk.path
                    target.parent.mkdir(parents=True, exist_ok=True)
                    current = (chunk.path, target.open("wb"), hashlib.sha256())
                _, handle, digest = current
                handle.write(chunk.data)
                digest.update(chunk.data)
                if progress:
                    progress(len(chunk.data))
                if chunk.eof:
                    handle.close()
                    want = expected[chunk.path].sha256
                    if digest.hexdigest() != want or chunk.sha256 != want:
                        raise DataLossError(
                            "DATA_LOSS",
                            f"{chunk.path} did not verify: got sha256 {digest.hexdigest()[:12]}…, expected {want[:12]}…",
                        )
                    current = None
        except grpc.RpcError as error:
            raise TuneForgeError.from_rpc_error(error) from None
        finally:
            if current is not None:
                current[1].close()

    def _download_presigned(self, name: str, staging: Path, progress: Callable[[int], None] | None) -> None:
        response = _call(
            self._stub.GenerateModelVersionDownloadUrls,
            registry_service_pb2.GenerateModelVersionDownloadUrlsRequest(name=name),
        )
        for url in response.urls:
            target = staging / url.path
            target.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with urllib.request.urlopen(url.url) as remote, target.open("wb") as out:
                while block := remote.read(CHUNK_BYTES):
                    digest.update(block)
                    out.write(block)
                    if progress:
                        progress(len(block))
            if digest.hexdigest() != url.sha256:
                raise DataLossError(
                    "DATA_LOSS", f"{url.path} did not verify: its sha256 differs from the manifest"
                )

    # -- aliases -------------------------------------------------------------------------------

    def set_alias(self, model: str, alias: str, version: str) -> model_pb2.ModelAlias:
        return _call(
            self._stub.SetModelAlias,
            registry_service_pb2.SetModelAliasRequest(
                parent=self.model_name(model), alias=alias, version=self.version_name(version)
            ),
        )

    def get_alias(self, model: str, alias: str) -> model_pb2.ModelAlias:
        return _call(
            self._stub.GetModelAlias,
            registry_service_pb2.GetModelAliasRequest(name=f"{self.model_name(model)}/aliases/{alias}"),
        )

    def list_aliases(self, model: str, *, page_size: int = 0) -> Iterator[model_pb2.ModelAlias]:
        def fetch(token: str) -> tuple[list[model_pb2.ModelAlias], str]:
            response = _call(
                self._stub.ListModelAliases,
                registry_service_pb2.ListModelAliasesRequest(
                    parent=self.model_name(model), page_size=page_size, page_token=token
                ),
            )
            return list(response.aliases), response.next_page_token

        return _pages(fetch)

    def delete_alias(self, model: str, alias: str) -> None:
        _call(
            self._stub.DeleteModelAlias,
            registry_service_pb2.DeleteModelAliasRequest(name=f"{self.model_name(model)}/aliases/{alias}"),
        )


class Client:
    """A connection to TuneForge. Settings come from the arguments, `TUNEFORGE_*` or the local suite."""

    def __init__(
        self, endpoint: str | None = None, *, api_key: str | None = None, project: str | None = None
    ) -> None:
        self.connection = Connection.resolve(endpoint, api_key, project)
        self.project = self.connection.project
        self._channels: dict[str, grpc.Channel] = {}
        self.models = Models(self)

    def _channel(self, service: str) -> grpc.Channel:
        address = self.connection.endpoints.get(service, "")
        if address not in self._channels:
            self._channels[address] = _channel(address, self.connection.api_key)
        return self._channels[address]

    def close(self) -> None:
        for channel in self._channels.values():
            with contextlib.suppress(Exception):
                channel.close()
        self._channels.clear()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
