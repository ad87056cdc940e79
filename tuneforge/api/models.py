"""`client.models`: the model registry."""

from __future__ import annotations

import functools
import hashlib
import io
import shutil
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import field_mask_pb2, struct_pb2

from tuneforge import names
from tuneforge.api._calls import CHUNK_BYTES, call, file_sha256, folder_files, pages
from tuneforge.common.v1 import common_pb2
from tuneforge.errors import DataLossError, TuneForgeError
from tuneforge.registry.v1 import model_pb2, registry_service_pb2, registry_service_pb2_grpc


class Models:
    """The model registry."""

    def __init__(self, connect: Callable[[], grpc.Channel], project: str) -> None:
        """`connect()` gives the service's channel, made on first use: a client that never calls
        this service needs no endpoint for it."""
        self._connect = connect
        self._project = project

    @functools.cached_property
    def _stub(self) -> registry_service_pb2_grpc.RegistryServiceStub:
        return registry_service_pb2_grpc.RegistryServiceStub(self._connect())

    # -- names ---------------------------------------------------------------------------------

    def model_name(self, ref: str) -> str:
        return names.model(self._project, ref)

    def version_name(self, ref: str) -> str:
        """`m/3`, `m@alias`, `m` (latest) or a full name, as a version resource name."""
        return names.model_version(self._project, ref)

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
            parent=f"projects/{self._project}",
            model_id=model_id,
            model=model_pb2.Model(display_name=display_name, description=description, tags=dict(tags or {})),
            request_id=request_id or str(uuid.uuid4()),
        )
        return call(self._stub.CreateModel, request)

    def get(self, ref: str) -> model_pb2.Model:
        return call(self._stub.GetModel, registry_service_pb2.GetModelRequest(name=self.model_name(ref)))

    def list(self, *, filter: str = "", order_by: str = "", page_size: int = 0) -> Iterator[model_pb2.Model]:
        def fetch(token: str) -> tuple[list[model_pb2.Model], str]:
            response = call(
                self._stub.ListModels,
                registry_service_pb2.ListModelsRequest(
                    parent=f"projects/{self._project}",
                    page_size=page_size,
                    page_token=token,
                    filter=filter,
                    order_by=order_by,
                ),
            )
            return list(response.models), response.next_page_token

        return pages(fetch)

    def update(self, ref: str, **fields: Any) -> model_pb2.Model:
        model = model_pb2.Model(name=self.model_name(ref), **fields)
        mask = field_mask_pb2.FieldMask(paths=sorted(fields))
        return call(
            self._stub.UpdateModel, registry_service_pb2.UpdateModelRequest(model=model, update_mask=mask)
        )

    def delete(self, ref: str, *, force: bool = False) -> None:
        call(
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
        symlinks_within: str | Path | None = None,
    ) -> model_pb2.ModelVersion:
        """Upload every file of `folder` as a new version (streamed over gRPC, or by presigned PUTs).

        `progress` is called with the number of bytes sent since the last call. A symlink in the
        folder is followed only to a file inside it (or inside `symlinks_within`).
        """
        folder = Path(folder)
        files = folder_files(folder, within=Path(symlinks_within) if symlinks_within else None)
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

        return call(self._stub.UploadModelVersion, requests())

    def _upload_presigned(
        self,
        model: str,
        files: list[tuple[str, Path]],
        spec: model_pb2.ModelVersion,
        request_id: str,
        progress: Callable[[int], None] | None,
    ) -> model_pb2.ModelVersion:
        entries = [
            common_pb2.FileEntry(path=r, size_bytes=p.stat().st_size, sha256=file_sha256(p)) for r, p in files
        ]
        upload = call(
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
        return call(
            self._stub.CommitModelVersionUpload,
            registry_service_pb2.CommitModelVersionUploadRequest(name=upload.name),
        )

    def get_version(self, ref: str) -> model_pb2.ModelVersion:
        return call(
            self._stub.GetModelVersion,
            registry_service_pb2.GetModelVersionRequest(name=self.version_name(ref)),
        )

    def list_versions(
        self, model: str, *, filter: str = "", order_by: str = "", page_size: int = 0
    ) -> Iterator[model_pb2.ModelVersion]:
        def fetch(token: str) -> tuple[list[model_pb2.ModelVersion], str]:
            response = call(
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

        return pages(fetch)

    def update_version(self, ref: str, **fields: Any) -> model_pb2.ModelVersion:
        version = model_pb2.ModelVersion(name=self.version_name(ref), **fields)
        mask = field_mask_pb2.FieldMask(paths=sorted(fields))
        return call(
            self._stub.UpdateModelVersion,
            registry_service_pb2.UpdateModelVersionRequest(model_version=version, update_mask=mask),
        )

    def delete_version(self, ref: str) -> None:
        call(
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
        response = call(
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

    # -- import, catalogue, lineage, export, derivation ---------------------------------------

    def import_model(
        self,
        source: str | Path,
        model_id: str,
        *,
        display_name: str = "",
        description: str = "",
        tags: Mapping[str, str] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> model_pb2.ModelVersion:
        """Import a base model from a local Hugging Face folder or a hub id (`Qwen/Qwen2.5-0.5B`).

        A hub model is fetched with huggingface_hub, safetensors and configuration only; then both
        go through the same path: the registry refuses pickles and remote-code configs and records
        the model's family, size, context length, dtype, license and chat template.
        """
        folder = Path(source)
        within = None
        if folder.is_dir():
            reference = f"local://{folder.resolve()}"
        else:
            from huggingface_hub import snapshot_download

            reference = f"hf://{source}"
            folder = Path(
                snapshot_download(
                    str(source),
                    allow_patterns=[
                        "*.safetensors",
                        "*.json",
                        "*.jinja",
                        "tokenizer.model",
                        "README.md",
                        "LICENSE*",
                    ],
                )
            )
            within = folder.parent.parent  # the snapshot's files link to blobs/ of the same cache entry
        try:
            self.create(
                model_id,
                display_name=display_name,
                description=description,
                tags=tags,
                request_id=f"import-{model_id}",
            )
        except TuneForgeError as error:
            if error.code != "ALREADY_EXISTS":
                raise
        return self.upload(
            model_id,
            folder,
            description=description or f"imported from {reference}",
            lineage={"base_model": reference},
            progress=progress,
            symlinks_within=within,
        )

    def catalog(self, *, filter: str = "") -> list[registry_service_pb2.CatalogEntry]:
        """Versions of every model in the project with their catalogue facts (newest first)."""
        return list(
            call(
                self._stub.SearchCatalog,
                registry_service_pb2.SearchCatalogRequest(parent=f"projects/{self._project}", filter=filter),
            ).entries
        )

    def lineage(self, ref: str) -> registry_service_pb2.GetLineageGraphResponse:
        """Ancestors and descendants of a version, with the job, data and hyperparameters of each step."""
        return call(
            self._stub.GetLineageGraph,
            registry_service_pb2.GetLineageGraphRequest(name=self.version_name(ref)),
        )

    def alias_history(self, model: str) -> list[model_pb2.AliasHistoryEntry]:
        return list(
            call(
                self._stub.ListAliasHistory,
                registry_service_pb2.ListAliasHistoryRequest(parent=self.model_name(model)),
            ).entries
        )

    def export(
        self, ref: str, dest: str | Path, *, progress: Callable[[int], None] | None = None
    ) -> model_pb2.ModelVersion:
        """Export a version as a plain Hugging Face folder through one streamed tar archive; every
        member is checked against the version's manifest before it is put in place."""
        import tarfile

        version = self.get_version(ref)
        expected = {f.path: f.sha256 for f in version.files}
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        staging = dest / f".tuneforge-export-{uuid.uuid4().hex[:8]}"
        stream = self._stub.ExportModelVersion(
            registry_service_pb2.ExportModelVersionRequest(name=version.name)
        )

        class _Stream(io.RawIOBase):
            """The gRPC chunks as a file, without copying them more than once."""

            def __init__(self) -> None:
                self.chunks = (r.data for r in stream)
                self.view = memoryview(b"")

            def readable(self) -> bool:
                return True

            def readinto(self, buffer: Any) -> int:
                while not self.view:
                    chunk = next(self.chunks, None)
                    if chunk is None:
                        return 0
                    if progress:
                        progress(len(chunk))
                    self.view = memoryview(chunk)
                n = min(len(buffer), len(self.view))
                buffer[:n] = self.view[:n]
                self.view = self.view[n:]
                return n

        try:
            with tarfile.open(fileobj=io.BufferedReader(_Stream(), 1 << 20), mode="r|") as archive:
                for member in archive:
                    if (
                        not member.isfile()
                        or member.name not in {*expected, "MANIFEST.json"}
                        or member.name.startswith(("/", ".."))
                    ):
                        raise DataLossError("DATA_LOSS", f"unexpected member {member.name!r} in the archive")
                    target = staging / member.name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    digest = hashlib.sha256()
                    source = archive.extractfile(member)
                    with target.open("wb") as out:
                        while block := source.read(CHUNK_BYTES):  # type: ignore[union-attr]
                            digest.update(block)
                            out.write(block)
                    if member.name in expected and digest.hexdigest() != expected[member.name]:
                        raise DataLossError(
                            "DATA_LOSS", f"{member.name} did not verify: its sha256 differs from the manifest"
                        )
            missing = [p for p in expected if not (staging / p).exists()]
            if missing:
                raise DataLossError("DATA_LOSS", f"the archive lacks {', '.join(missing)}")
            for path in expected:
                final = dest / path
                final.parent.mkdir(parents=True, exist_ok=True)
                (staging / path).replace(final)
        except grpc.RpcError as error:
            raise TuneForgeError.from_rpc_error(error) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return version

    def _derive_request(
        self, ref: str, operation: str, target: str, output_model: str, request_id: str
    ) -> registry_service_pb2.DeriveModelVersionRequest:
        return registry_service_pb2.DeriveModelVersionRequest(
            name=self.version_name(ref),
            operation=operation,
            target=target,
            output_model=self.model_name(output_model) if output_model else "",
            request_id=request_id,
        )

    def derive(
        self, ref: str, operation: str, target: str = "", *, output_model: str = "", request_id: str = ""
    ) -> model_pb2.ModelVersion:
        """`merge_lora`, `convert_dtype` (`bfloat16`/`float16`) or `quantize` (`int8`/`int4`) into a new
        version, waiting for the registry worker that makes it."""
        request = self._derive_request(ref, operation, target, output_model, request_id)
        return call(self._stub.DeriveModelVersion, request)

    def start_derivation(
        self, ref: str, operation: str, target: str = "", *, output_model: str = "", request_id: str = ""
    ) -> model_pb2.Derivation:
        """Queue a derivation and return it at once (QUEUED); follow it with `wait_derivation`."""
        request = self._derive_request(ref, operation, target, output_model, request_id)
        create = registry_service_pb2.CreateDerivationRequest.FromString(request.SerializeToString())
        return call(self._stub.CreateDerivation, create)

    def get_derivation(self, name: str) -> model_pb2.Derivation:
        return call(self._stub.GetDerivation, registry_service_pb2.GetDerivationRequest(name=name))

    def cancel_derivation(self, name: str) -> model_pb2.Derivation:
        return call(self._stub.CancelDerivation, registry_service_pb2.CancelDerivationRequest(name=name))

    def wait_derivation(self, name: str) -> model_pb2.Derivation:
        """The derivation once it has ended (SUCCEEDED, FAILED or CANCELLED)."""
        last = self.get_derivation(name)
        try:
            for update in self._stub.WatchDerivation(registry_service_pb2.WatchDerivationRequest(name=name)):
                last = update
        except grpc.RpcError as error:
            raise TuneForgeError.from_rpc_error(error) from None
        return last

    # -- aliases -------------------------------------------------------------------------------

    def set_alias(self, model: str, alias: str, version: str) -> model_pb2.ModelAlias:
        return call(
            self._stub.SetModelAlias,
            registry_service_pb2.SetModelAliasRequest(
                parent=self.model_name(model), alias=alias, version=self.version_name(version)
            ),
        )

    def get_alias(self, model: str, alias: str) -> model_pb2.ModelAlias:
        return call(
            self._stub.GetModelAlias,
            registry_service_pb2.GetModelAliasRequest(name=f"{self.model_name(model)}/aliases/{alias}"),
        )

    def list_aliases(self, model: str, *, page_size: int = 0) -> Iterator[model_pb2.ModelAlias]:
        def fetch(token: str) -> tuple[list[model_pb2.ModelAlias], str]:
            response = call(
                self._stub.ListModelAliases,
                registry_service_pb2.ListModelAliasesRequest(
                    parent=self.model_name(model), page_size=page_size, page_token=token
                ),
            )
            return list(response.aliases), response.next_page_token

        return pages(fetch)

    def delete_alias(self, model: str, alias: str) -> None:
        call(
            self._stub.DeleteModelAlias,
            registry_service_pb2.DeleteModelAliasRequest(name=f"{self.model_name(model)}/aliases/{alias}"),
        )
