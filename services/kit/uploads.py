"""Upload sessions: the files of a new version arriving by presigned PUTs (or a stream) before the
version exists, shared by the data service and the registry.

A session is a row of the service's upload table (`upload_columns`): the declared files with size
and sha256, where they go in the store, and when the session expires. `commit` checks every declared
file against what arrived; the sweeper deletes what expired uncommitted. A streamed upload records a
session before its first byte is stored and keeps it alive while it runs, so a process that dies
mid-stream leaves nothing behind once the sweeper passes.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, DateTime, LargeBinary, String, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from services.kit.db import Database
from services.kit.errors import FailedPrecondition, NotFound
from services.kit.store import ObjectStore, StoredObject
from services.kit.times import as_utc, utcnow
from tuneforge.common.v1 import common_pb2

log = logging.getLogger(__name__)
HEAD_BYTES = 64 * 1024


class UploadColumns:
    """The columns every upload table has (mixed into a service's declarative class)."""

    uid: Mapped[str] = mapped_column(String(32), primary_key=True)
    # `presigned` or `stream`.
    mode: Mapped[str] = mapped_column(String(16))
    # The request's own settings, serialized (the version spec or the ingest options).
    spec: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    # Declared files: [{"path", "size_bytes", "sha256"}] (empty for a stream until it finishes).
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    storage_prefix: Mapped[str] = mapped_column(String(200))
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    version_uid: Mapped[str | None] = mapped_column(String(32), nullable=True)
    expire_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class UploadSessions:
    """Sessions of one upload table. `parent` names the column holding the owner's uid
    (`model_uid`, `dataset_uid`)."""

    def __init__(
        self,
        db: Database,
        store: ObjectStore,
        row_type: type[Any],
        parent: str,
        *,
        ttl: timedelta,
        url_ttl: timedelta,
    ) -> None:
        self.db = db
        self.store = store
        self.row_type = row_type
        self.parent = parent
        self.ttl = ttl
        self.url_ttl = url_ttl

    def existing(self, session: Session, parent_uid: str, request_id: str) -> Any | None:
        if not request_id:
            return None
        t = self.row_type
        return session.scalar(
            select(t).where(getattr(t, self.parent) == parent_uid, t.request_id == request_id)
        )

    def open(
        self,
        session: Session,
        parent_uid: str,
        *,
        mode: str,
        prefix: Callable[[str], str],
        files: list[dict[str, Any]] | None = None,
        spec: bytes = b"",
        request_id: str = "",
    ) -> Any:
        """A new session in the caller's transaction; `prefix(uid)` is where its files go."""
        uid = uuid.uuid4().hex
        now = utcnow()
        row = self.row_type(
            uid=uid,
            mode=mode,
            spec=spec,
            files=list(files or []),
            storage_prefix=prefix(uid),
            request_id=request_id or None,
            version_uid=None,
            expire_time=now + self.ttl,
            create_time=now,
            **{self.parent: parent_uid},
        )
        session.add(row)
        session.flush()
        return row

    def urls(self, row: Any) -> list[common_pb2.PresignedUrl]:
        """Presigned PUT URLs of the declared files, valid until the session expires."""
        expires = max(min(self.url_ttl, as_utc(row.expire_time) - utcnow()), timedelta(seconds=1))
        return [
            common_pb2.PresignedUrl(
                path=f["path"],
                url=self.store.presigned_put(row.storage_prefix + f["path"], expires),
                method="PUT",
                sha256=f["sha256"],
                size_bytes=f["size_bytes"],
            )
            for f in row.files
        ]

    def for_commit(self, session: Session, uid: str, parent_uid: str, name: str) -> Any:
        """The presigned session `uid` of `parent_uid`, unexpired (committed ones come back as they are)."""
        row = session.get(self.row_type, uid)
        if row is None or getattr(row, self.parent) != parent_uid or row.mode != "presigned":
            raise NotFound(f"upload {name} does not exist (it may have expired)")
        if not row.version_uid and as_utc(row.expire_time) < utcnow():
            raise FailedPrecondition(f"upload {name} expired; start a new one", reason="UPLOAD_EXPIRED")
        return row

    async def verify(self, row: Any, *, check: Callable[[str, str], Any] | None = None) -> list[StoredObject]:
        """Every declared file arrived with its declared size and sha256 (read whole, off the loop).

        `check(path, field)` gives an object whose `feed(bytes)` sees each file's bytes in order (and
        raises to refuse it); its `finish()` is the caller's to call."""
        found = []
        for i, declared in enumerate(row.files):
            key = row.storage_prefix + declared["path"]
            label = declared.get("label") or declared["path"]
            if not await self.store.exists(key):
                raise FailedPrecondition(
                    f"{label} has not been uploaded yet; PUT it to its URL, then commit",
                    reason="FILE_MISSING",
                    metadata={"path": label},
                )
            checker = check(declared["path"], f"files[{i}].path") if check is not None else None
            stored = await self.store.hash_object(
                key, head_bytes=HEAD_BYTES, on_chunk=checker.feed if checker is not None else None
            )
            if (stored.size_bytes, stored.sha256) != (declared["size_bytes"], declared["sha256"]):
                raise FailedPrecondition(
                    f"{label}: declared {declared['size_bytes']} bytes with sha256 {declared['sha256'][:12]}…, "
                    f"uploaded {stored.size_bytes} bytes with sha256 {stored.sha256[:12]}…; upload it again",
                    reason="CHECKSUM_MISMATCH",
                    metadata={"path": label},
                )
            found.append(stored)
        return found

    async def mark_committed(self, uid: str, version_uid: str) -> None:
        t = self.row_type
        await self.db.run(lambda s: s.execute(update(t).where(t.uid == uid).values(version_uid=version_uid)))

    async def keep_alive(self, uid: str) -> None:
        """Push a streaming session's expiry forward while it runs (cancel the task to stop)."""
        t = self.row_type
        while True:
            await asyncio.sleep(self.ttl.total_seconds() / 3)
            expire = utcnow() + self.ttl
            await self.db.run(
                lambda s, expire=expire: s.execute(update(t).where(t.uid == uid).values(expire_time=expire))
            )

    async def discard(self, uid: str, prefix: str) -> None:
        t = self.row_type
        await self.store.delete_prefix(prefix)
        await self.db.run(lambda s: s.execute(delete(t).where(t.uid == uid)))

    async def sweep(self) -> int:
        """Delete what expired sessions stored (unless committed) and the sessions; return how many."""
        t = self.row_type
        now = utcnow()
        rows = await self.db.run(
            lambda s: [
                (r.uid, r.mode, r.storage_prefix, list(r.files), r.version_uid)
                for r in s.scalars(select(t).where(t.expire_time < now))
            ]
        )
        for uid, mode, prefix, files, committed in rows:
            if not committed:
                if mode == "stream":
                    await self.store.delete_prefix(prefix)
                else:  # only the declared keys: a prefix may be shared (older data uploads)
                    for f in files:
                        await self.store.delete(prefix + f["path"])
            await self.db.run(lambda s, uid=uid: s.execute(delete(t).where(t.uid == uid)))
        return len(rows)
