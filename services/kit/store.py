"""The object store: S3 (MinIO in production, SeaweedFS in the local suite) through the minio SDK.

The SDK is synchronous; every call runs on a worker thread. Streamed uploads feed a bounded
queue that a thread drains into a multipart upload while hashing, so memory stays at a few parts
whatever the object's size. Reads can be verified against a SHA-256 as they stream.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import queue
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from services.kit.errors import DataLoss, NotFound, ResourceExhausted
from services.kit.telemetry import STORE_ERRORS

log = logging.getLogger(__name__)

PART_SIZE = 16 * 1024 * 1024
READ_CHUNK = 1024 * 1024
_END = object()


@dataclass(frozen=True)
class StoredObject:
    key: str
    size_bytes: int
    sha256: str
    head: bytes = b""


class _QueueReader(io.RawIOBase):
    """A file-like object a minio upload thread reads; bytes arrive through a queue."""

    def __init__(self, q: queue.Queue[object]) -> None:
        self.q = q
        self.buffer = bytearray()
        self.done = False
        self.digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        while not self.done and (n < 0 or len(self.buffer) < n):
            item = self.q.get()
            if item is _END:
                self.done = True
            elif isinstance(item, BaseException):
                raise item
            else:
                assert isinstance(item, bytes | bytearray | memoryview)
                self.buffer += item
        take = len(self.buffer) if n < 0 else min(n, len(self.buffer))
        out = bytes(self.buffer[:take])
        del self.buffer[:take]
        self.digest.update(out)
        self.size += len(out)
        return out


class _CountingPoolManager(urllib3.PoolManager):
    """Counts the store's failed requests (no connection, or a 5xx answer) by HTTP method."""

    def urlopen(self, method: str, url: str, redirect: bool = True, **kw: Any) -> Any:
        try:
            response = super().urlopen(method, url, redirect=redirect, **kw)
        except Exception:
            STORE_ERRORS.labels(method).inc()
            raise
        if response.status >= 500:
            STORE_ERRORS.labels(method).inc()
        return response


class ObjectStore:
    """One bucket on an S3 server."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        secure: bool = False,
        region: str = "us-east-1",
        public_endpoint: str | None = None,
    ) -> None:
        http = _CountingPoolManager(
            maxsize=32,
            timeout=urllib3.Timeout(connect=5, read=120),
            retries=urllib3.Retry(
                total=3, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504), allowed_methods=None
            ),
        )
        self.client = Minio(endpoint, access_key, secret_key, secure=secure, region=region, http_client=http)
        # Presigned URLs must name the host clients reach; signing needs no network call.
        self.presigner = Minio(
            public_endpoint or endpoint, access_key, secret_key, secure=secure, region=region
        )
        self.bucket = bucket

    async def ensure_bucket(self) -> None:
        def _ensure() -> None:
            if not self.client.bucket_exists(self.bucket):
                try:
                    self.client.make_bucket(self.bucket)
                except S3Error as exc:
                    if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise

        await asyncio.to_thread(_ensure)

    async def put_stream(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        max_bytes: int | None = None,
        content_type: str = "application/octet-stream",
    ) -> StoredObject:
        """Upload an async stream of chunks as one object (multipart when large); hash as it goes.

        If `chunks` raises, or exceeds `max_bytes`, the multipart upload is aborted and nothing is
        stored under `key`.
        """
        q: queue.Queue[object] = queue.Queue(maxsize=8)
        reader = _QueueReader(q)
        upload = asyncio.create_task(
            asyncio.to_thread(
                self.client.put_object,
                self.bucket,
                key,
                reader,
                length=-1,
                part_size=PART_SIZE,
                content_type=content_type,
            )
        )
        try:
            received = 0
            async for chunk in chunks:
                received += len(chunk)
                if max_bytes is not None and received > max_bytes:
                    raise ResourceExhausted(
                        f"{key.rsplit('/', 1)[-1]} is larger than the limit of {max_bytes} bytes"
                    )
                await self._feed(q, chunk, upload)
            await self._feed(q, _END, upload)
        except BaseException as exc:
            if not upload.done():
                await asyncio.to_thread(
                    q.put, exc if isinstance(exc, Exception) else RuntimeError("upload cancelled")
                )
            await asyncio.gather(upload, return_exceptions=True)
            raise
        await upload
        return StoredObject(key, reader.size, reader.digest.hexdigest())

    @staticmethod
    async def _feed(q: queue.Queue[object], item: object, upload: asyncio.Task[object]) -> None:
        # The upload thread may have failed (server gone): stop feeding and surface its error.
        while True:
            if upload.done():
                upload.result()
                raise RuntimeError("the object upload ended before its data did")
            try:
                q.put_nowait(item)
                return
            except queue.Full:
                await asyncio.sleep(0.002)

    async def put_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> StoredObject:
        await asyncio.to_thread(
            self.client.put_object, self.bucket, key, io.BytesIO(data), len(data), content_type=content_type
        )
        return StoredObject(key, len(data), hashlib.sha256(data).hexdigest())

    async def put_file(self, key: str, path: Path, content_type: str = "application/octet-stream") -> None:
        """Upload a local file (multipart when large)."""
        await asyncio.to_thread(
            self.client.fput_object, self.bucket, key, str(path), content_type=content_type
        )

    async def get_file(self, key: str, path: Path, *, sha256: str, size_bytes: int, label: str) -> None:
        """Download an object to a local file, verifying its size and SHA-256 (DataLoss otherwise)."""
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        with path.open("wb") as out:
            async for chunk in self.iter_verified(key, sha256=sha256, size_bytes=size_bytes, label=label):
                await asyncio.to_thread(out.write, chunk)

    async def get_bytes(self, key: str) -> bytes:
        def _get() -> bytes:
            response = self._get(key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return await asyncio.to_thread(_get)

    def _get(self, key: str, offset: int = 0, length: int = 0) -> urllib3.BaseHTTPResponse:
        try:
            return self.client.get_object(self.bucket, key, offset=offset, length=length)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchBucket"):
                raise NotFound(f"object {key} is missing from the store", reason="OBJECT_MISSING") from None
            raise

    async def read_range(self, key: str, offset: int, length: int) -> bytes:
        """`length` bytes of an object from `offset` (fewer at its end)."""

        def _read() -> bytes:
            response = self._get(key, offset, length)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return await asyncio.to_thread(_read)

    async def iter_verified(
        self, key: str, *, sha256: str, size_bytes: int, label: str, chunk_size: int = READ_CHUNK
    ) -> AsyncIterator[bytes]:
        """Yield the object's bytes; at the end raise DataLoss if size or SHA-256 differ.

        Callers that hand bytes on (to a client, to a file) must treat a DataLoss as "discard
        everything received": the last chunk comes only after the check passes.
        """
        response = await asyncio.to_thread(self._get, key)
        digest = hashlib.sha256()
        size = 0
        held: bytes | None = None
        try:
            stream = response.stream(chunk_size)
            while True:
                chunk = await asyncio.to_thread(next, stream, None)
                if chunk is None:
                    break
                digest.update(chunk)
                size += len(chunk)
                if held is not None:
                    yield held
                held = chunk
        finally:
            response.close()
            response.release_conn()
        if size != size_bytes or digest.hexdigest() != sha256:
            raise DataLoss(
                f"{label} is corrupted in storage: expected {size_bytes} bytes with sha256 {sha256[:12]}…, "
                f"read {size} bytes with sha256 {digest.hexdigest()[:12]}…",
                metadata={"path": label},
            )
        if held is not None:
            yield held

    async def hash_object(
        self, key: str, *, head_bytes: int = 0, on_chunk: Callable[[bytes], None] | None = None
    ) -> StoredObject:
        """Read an object whole to learn its size and SHA-256, keeping its first `head_bytes`;
        `on_chunk` sees every chunk in order (on a worker thread)."""

        def _hash() -> StoredObject:
            response = self._get(key)
            digest = hashlib.sha256()
            size = 0
            head = bytearray()
            try:
                for chunk in response.stream(READ_CHUNK):
                    if on_chunk is not None:
                        on_chunk(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    if len(head) < head_bytes:
                        head += chunk[: head_bytes - len(head)]
            finally:
                response.close()
                response.release_conn()
            return StoredObject(key, size, digest.hexdigest(), bytes(head))

        return await asyncio.to_thread(_hash)

    async def exists(self, key: str) -> bool:
        def _stat() -> bool:
            try:
                self.client.stat_object(self.bucket, key)
                return True
            except S3Error as exc:
                if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                    return False
                raise

        return await asyncio.to_thread(_stat)

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix` (which must end with `/`); return how many."""
        if not prefix.endswith("/"):
            raise ValueError("prefix must end with /")

        def _delete() -> int:
            names = [
                o.object_name for o in self.client.list_objects(self.bucket, prefix=prefix, recursive=True)
            ]
            errors = list(self.client.remove_objects(self.bucket, (DeleteObject(n) for n in names)))
            if errors:
                raise RuntimeError(f"could not delete {len(errors)} objects under {prefix}: {errors[0]}")
            return len(names)

        return await asyncio.to_thread(_delete)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.client.remove_object, self.bucket, key)

    def presigned_put(self, key: str, expires: timedelta) -> str:
        return self.presigner.presigned_put_object(self.bucket, key, expires=expires)

    def presigned_get(self, key: str, expires: timedelta) -> str:
        return self.presigner.presigned_get_object(self.bucket, key, expires=expires)
