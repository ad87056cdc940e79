"""Calling another TuneForge service: async `grpc.aio` stubs per peer, made in the running loop,
with a deadline on every call and one honest mapping of the peer's errors.

    peers = Peers({"registry": "10.0.0.5:50051"}, api_key=caller_key)
    version = await peers.model_version(ref, field="training_job.base_model")

The mapping: what the peer says about the thing the caller named (NOT_FOUND, FAILED_PRECONDITION,
INVALID_ARGUMENT, PERMISSION_DENIED) becomes a violation on the caller's field; a peer that cannot be
reached (UNAVAILABLE, DEADLINE_EXCEEDED) becomes UNAVAILABLE, which clients retry — never
INVALID_ARGUMENT. A service calls on the caller's behalf with the caller's own key; a worker with its
own key.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import shutil
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from services.kit import tls
from services.kit.auth import bearer_var
from services.kit.errors import (
    AlreadyExists,
    DataLoss,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ServiceError,
    Unauthenticated,
    Unavailable,
)
from services.kit.logs import request_id_var
from tuneforge.common.v1 import common_pb2
from tuneforge.data.v1 import (
    augmentation_service_pb2_grpc,
    data_service_pb2,
    data_service_pb2_grpc,
    dataset_pb2,
)
from tuneforge.enums import enum_names
from tuneforge.eval.v1 import eval_service_pb2_grpc
from tuneforge.registry.v1 import model_pb2, registry_service_pb2, registry_service_pb2_grpc
from tuneforge.serve.v1 import serve_service_pb2_grpc
from tuneforge.telemetry import inject
from tuneforge.train.v1 import train_service_pb2_grpc

DEFAULT_TIMEOUT_SECONDS = 30.0
# A peer call that found the peer unreachable waits this long for the channel to reconnect (longer
# than the channel's 2 s maximum reconnect backoff), once.
RECONNECT_WAIT_SECONDS = 3.0
# Streams of whole models and waits on long work get longer deadlines.
TRANSFER_TIMEOUT_SECONDS = 3600.0
CHUNK_BYTES = 4 * 1024 * 1024
DATASET_KINDS = enum_names(dataset_pb2.DatasetKind, "DATASET_KIND_")
VERSION_STATES = enum_names(dataset_pb2.DatasetVersionState, "DATASET_VERSION_STATE_")
_CALLER_FAULT = {
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.OUT_OF_RANGE,
}
_RETRY = {
    "maxAttempts": 4,
    "initialBackoff": "0.2s",
    "maxBackoff": "2s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
_STUBS = {
    "registry": registry_service_pb2_grpc.RegistryServiceStub,
    "data": data_service_pb2_grpc.DataServiceStub,
    "eval": eval_service_pb2_grpc.EvalServiceStub,
    "train": train_service_pb2_grpc.TrainServiceStub,
    "serve": serve_service_pb2_grpc.ServeServiceStub,
    # Served by the data service: its peer entry names the data service's address.
    "augmentation": augmentation_service_pb2_grpc.AugmentationServiceStub,
}


def peer_error(error: grpc.aio.AioRpcError, peer: str, field: str | None = None) -> ServiceError:
    """The domain error a failed peer call becomes (see the module docstring)."""
    code, message = error.code(), error.details() or ""
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
        return Unavailable(
            f"the {peer} service is unavailable ({message or code.name.lower()}); try again",
            reason="PEER_UNAVAILABLE",
            metadata={"peer": peer},
        )
    if code in _CALLER_FAULT and field:
        return InvalidArgument.field(field, message)
    by_code: dict[grpc.StatusCode, type[ServiceError]] = {
        grpc.StatusCode.NOT_FOUND: NotFound,
        grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
        grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
        grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
        grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
        grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
        grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
        grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
        grpc.StatusCode.DATA_LOSS: DataLoss,
    }
    kind = by_code.get(code)
    if kind is not None:
        reason, metadata, violations = _details(error)
        return kind(message, reason=reason, violations=violations, metadata={**metadata, "peer": peer})
    return ServiceError(f"the {peer} service failed: {message}", reason="PEER_ERROR", metadata={"peer": peer})


def _details(error: grpc.aio.AioRpcError) -> tuple[str | None, dict[str, str], list[FieldViolation]]:
    """The peer's reason, metadata and field violations, from the error's rich status."""
    reason, metadata, violations = None, {}, []
    with contextlib.suppress(Exception):  # a peer that sent no rich status says only its message
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
        for detail in status.details if status else ():
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason, metadata = info.reason or None, dict(info.metadata)
                metadata.pop("request_id", None)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations = [FieldViolation(v.field, v.description) for v in bad.field_violations]
    return reason, metadata, violations


class Peers:
    """Stubs to the other services and typed helpers over them.

    `api_key` returns the key to send (default: the current caller's, from the auth interceptor).
    Channels are made lazily inside the running event loop and closed by `close()`.
    """

    def __init__(
        self,
        endpoints: Mapping[str, str],
        *,
        api_key: Callable[[], str] = bearer_var.get,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.endpoints = {k: v for k, v in endpoints.items() if v}
        self.api_key = api_key
        self.timeout = timeout
        self._channels: dict[str, tuple[asyncio.AbstractEventLoop, grpc.aio.Channel]] = {}

    # -- plumbing ------------------------------------------------------------------------------

    def _channel(self, peer: str) -> grpc.aio.Channel:
        address = self.endpoints.get(peer)
        if not address:
            raise FailedPrecondition(
                f"this service has no {peer} endpoint configured (TUNEFORGE_{peer.upper()}_ENDPOINT)",
                reason="NO_PEER_ENDPOINT",
                metadata={"peer": peer},
            )
        loop = asyncio.get_running_loop()
        made = self._channels.get(peer)
        if made is None or made[0] is not loop:
            # Replicas (`ipv4:a:p,b:p` or `dns:///name:port`) are used round-robin.
            config = {
                "loadBalancingConfig": [{"round_robin": {}}],
                "methodConfig": [{"name": [{}], "retryPolicy": _RETRY}],
            }
            channel = tls.aio_channel(
                address,
                options=[
                    ("grpc.enable_retries", 1),
                    # A peer that restarts is reached again within seconds, not after a long backoff.
                    ("grpc.initial_reconnect_backoff_ms", 200),
                    ("grpc.min_reconnect_backoff_ms", 200),
                    ("grpc.max_reconnect_backoff_ms", 2000),
                    ("grpc.service_config", json.dumps(config)),
                    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
                    ("grpc.max_send_message_length", 16 * 1024 * 1024),
                ],
            )
            self._channels[peer] = made = (loop, channel)
        return made[1]

    def stub(self, peer: str) -> Any:
        return _STUBS[peer](self._channel(peer))

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        metadata = [("x-request-id", request_id_var.get() or uuid.uuid4().hex)]
        if key := self.api_key():
            metadata.append(("authorization", f"Bearer {key}"))
        metadata.extend(inject({}).items())  # the caller's trace continues in the peer
        return tuple(metadata)

    async def call(
        self, peer: str, method: str, request: Any, *, field: str | None = None, deadline: float | None = None
    ) -> Any:
        """One unary call to `peer`, its errors mapped to domain errors (`field`: the caller's field).
        `deadline` is in seconds (default: the peers' timeout)."""
        rpc = getattr(self.stub(peer), method)
        try:
            return await rpc(request, timeout=deadline or self.timeout, metadata=self._metadata())
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE:
                raise peer_error(error, peer, field) from None
        # Not reached (the retries above ran within the channel's reconnect backoff): once more,
        # waiting up to RECONNECT_WAIT_SECONDS for the channel, so a peer that has just restarted is
        # reached instead of the caller seeing UNAVAILABLE. Still down: UNAVAILABLE as before.
        try:
            return await rpc(
                request,
                timeout=min(RECONNECT_WAIT_SECONDS, deadline or self.timeout),
                metadata=self._metadata(),
                wait_for_ready=True,
            )
        except grpc.aio.AioRpcError as error:
            raise peer_error(error, peer, field) from None

    async def stream(
        self, peer: str, method: str, request: Any, *, field: str | None = None, deadline: float | None = None
    ) -> AsyncIterator[Any]:
        """A server-streamed call to `peer`, its errors mapped as in `call`."""
        rpc = getattr(self.stub(peer), method)
        call = rpc(request, timeout=deadline or TRANSFER_TIMEOUT_SECONDS, metadata=self._metadata())
        try:
            async for item in call:
                yield item
        except grpc.aio.AioRpcError as error:
            raise peer_error(error, peer, field) from None
        finally:
            call.cancel()

    async def close(self) -> None:
        for _, channel in self._channels.values():
            await channel.close()
        self._channels.clear()

    # -- the registry --------------------------------------------------------------------------

    async def model_version(self, ref: str, field: str | None = None) -> model_pb2.ModelVersion:
        """A model version (an alias or `latest` resolves to the version it names now)."""
        return await self.call(
            "registry", "GetModelVersion", registry_service_pb2.GetModelVersionRequest(name=ref), field=field
        )

    async def download_model(
        self, version: str, folder: Path, paths: Iterable[str] = (), *, field: str | None = None
    ) -> None:
        """A version's files (or some of them) into `folder`, each verified against its sha256."""
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        request = registry_service_pb2.DownloadModelVersionRequest(name=version, paths=list(paths))
        handle: Any = None
        digest = hashlib.sha256()
        try:
            async for response in self.stream("registry", "DownloadModelVersion", request, field=field):
                chunk = response.chunk
                if handle is None:
                    target = folder / chunk.path
                    target.parent.mkdir(parents=True, exist_ok=True)
                    handle, digest = target.open("wb"), hashlib.sha256()
                await asyncio.to_thread(handle.write, chunk.data)
                digest.update(chunk.data)
                if chunk.eof:
                    handle.close()
                    handle = None
                    if digest.hexdigest() != chunk.sha256:
                        raise DataLoss(f"{version}: {chunk.path} did not verify against its sha256")
        finally:
            if handle is not None:
                handle.close()

    async def ensure_model(
        self, project: str, model_id: str, *, tags: Mapping[str, str], request_id: str, display_name: str = ""
    ) -> None:
        """Create `projects/{project}/models/{model_id}` unless it exists."""
        request = registry_service_pb2.CreateModelRequest(
            parent=f"projects/{project}",
            model_id=model_id,
            model=model_pb2.Model(tags=dict(tags), display_name=display_name),
            request_id=request_id,
        )
        with contextlib.suppress(AlreadyExists):
            await self.call("registry", "CreateModel", request)

    async def upload_model(
        self, model: str, folder: Path, spec: model_pb2.ModelVersion, request_id: str
    ) -> model_pb2.ModelVersion:
        """Register every file of `folder` as a new version of `model` (streamed, each file hashed)."""
        files = await asyncio.to_thread(
            lambda: sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        )

        async def requests() -> AsyncIterator[registry_service_pb2.UploadModelVersionRequest]:
            yield registry_service_pb2.UploadModelVersionRequest(
                header=registry_service_pb2.UploadModelVersionHeader(
                    parent=model, model_version=spec, request_id=request_id
                )
            )
            for path in files:
                relative = path.relative_to(folder).as_posix()
                digest = hashlib.sha256()
                with path.open("rb") as f:
                    block = await asyncio.to_thread(f.read, CHUNK_BYTES)
                    while True:
                        following = await asyncio.to_thread(f.read, CHUNK_BYTES)
                        digest.update(block)
                        last = not following
                        yield registry_service_pb2.UploadModelVersionRequest(
                            chunk=common_pb2.FileChunk(
                                path=relative, data=block, eof=last, sha256=digest.hexdigest() if last else ""
                            )
                        )
                        if last:
                            break
                        block = following
            yield registry_service_pb2.UploadModelVersionRequest(
                finish=registry_service_pb2.UploadModelVersionFinish(file_count=len(files))
            )

        try:
            return await self.stub("registry").UploadModelVersion(
                requests(), timeout=TRANSFER_TIMEOUT_SECONDS, metadata=self._metadata()
            )
        except grpc.aio.AioRpcError as error:
            raise peer_error(error, "registry") from None

    async def update_model_version(
        self, version: model_pb2.ModelVersion, paths: Iterable[str]
    ) -> model_pb2.ModelVersion:
        from google.protobuf import field_mask_pb2

        request = registry_service_pb2.UpdateModelVersionRequest(
            model_version=version, update_mask=field_mask_pb2.FieldMask(paths=list(paths))
        )
        return await self.call("registry", "UpdateModelVersion", request)

    # -- the data service ----------------------------------------------------------------------

    async def dataset_version(self, ref: str, field: str | None = None) -> dataset_pb2.DatasetVersion:
        return await self.call(
            "data", "GetDatasetVersion", data_service_pb2.GetDatasetVersionRequest(name=ref), field=field
        )

    async def ready_dataset_version(
        self, ref: str, kinds: Iterable[str], field: str, *, purpose: str = "this needs"
    ) -> dataset_pb2.DatasetVersion:
        """A READY version of one of `kinds` (`latest` resolves now); a violation on `field` otherwise.
        `purpose` completes "holds X data; {purpose} Y data" (e.g. "dpo trains on")."""
        version = await self.dataset_version(ref, field)
        state = VERSION_STATES.get(version.state, "unknown")
        if state == "failed":
            raise InvalidArgument.field(field, f"{version.name} failed validation and holds no data")
        if state != "ready":
            raise InvalidArgument.field(
                field, f"{version.name} is still {state}; use it once it is READY (`Watch` it to know when)"
            )
        kinds = tuple(kinds)
        kind = DATASET_KINDS.get(version.kind, "unknown")
        if kind not in kinds:
            raise InvalidArgument.field(
                field,
                f"{version.name} holds {kind} data; {purpose} {' or '.join(kinds)} data",
            )
        return version

    async def download_dataset_version(
        self, name: str, folder: Path, paths: Iterable[str] = ("data.parquet",)
    ) -> None:
        """Files of a dataset version into `folder`, each verified against its sha256."""
        response = await self.call(
            "data",
            "GenerateDatasetVersionDownloadUrls",
            data_service_pb2.GenerateDatasetVersionDownloadUrlsRequest(name=name),
        )
        wanted = set(paths)
        await fetch_urls([u for u in response.urls if not wanted or u.path in wanted], folder)

    async def upload_dataset_version(
        self,
        dataset: str,
        filename: str,
        data: bytes,
        options: data_service_pb2.IngestOptions,
        request_id: str,
    ) -> dataset_pb2.DatasetVersion:
        """A new version of `dataset` from `data` (streamed; the data service accepts it PROCESSING)."""
        options.filename = filename

        async def requests() -> AsyncIterator[data_service_pb2.UploadDatasetVersionRequest]:
            yield data_service_pb2.UploadDatasetVersionRequest(
                header=data_service_pb2.UploadDatasetVersionHeader(
                    parent=dataset, options=options, request_id=request_id
                )
            )
            for start in range(0, len(data), CHUNK_BYTES):
                yield data_service_pb2.UploadDatasetVersionRequest(data=data[start : start + CHUNK_BYTES])
            yield data_service_pb2.UploadDatasetVersionRequest(
                finish=data_service_pb2.UploadDatasetVersionFinish(sha256=hashlib.sha256(data).hexdigest())
            )

        try:
            return await self.stub("data").UploadDatasetVersion(
                requests(), timeout=TRANSFER_TIMEOUT_SECONDS, metadata=self._metadata()
            )
        except grpc.aio.AioRpcError as error:
            raise peer_error(error, "data") from None


async def fetch_urls(urls: Iterable[common_pb2.PresignedUrl], folder: Path) -> None:
    """Download presigned GET URLs into `folder` (by their `path`), verifying each sha256."""
    for url in urls:
        await asyncio.to_thread(_fetch, url, folder)


def _fetch(url: common_pb2.PresignedUrl, folder: Path) -> None:
    target = folder / url.path
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    with urllib.request.urlopen(url.url, timeout=120) as remote, partial.open("wb") as out:
        shutil.copyfileobj(_Hashing(remote, digest), out, CHUNK_BYTES)
    if url.sha256 and digest.hexdigest() != url.sha256:
        partial.unlink()
        raise DataLoss(f"{url.path} did not verify against its sha256")
    partial.replace(target)


class _Hashing:
    def __init__(self, raw: Any, digest: Any) -> None:
        self.raw, self.digest = raw, digest

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.digest.update(data)
        return data
