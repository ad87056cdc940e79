"""Access a team can run, enforced in every service: which role each method needs, per-key request
rates, project quotas, storage used per project, and the audit log of every write.

Roles follow the method's verb, so a new RPC is classified without a table to update: `Get`, `List`,
`Watch`, `Read`, `Search`, `Plan` and downloads are reads (`viewer`); `Delete`, `Revoke` and key and
audit methods are `admin`'s; everything else changes something and needs a `member`.

Every call that is not a read leaves an audit entry (who, which method, which resource, how it
ended), written in the shared auth database before the call returns. Quotas and rates live on the
project (`projects` table, read at most every QUOTA_CACHE_SECONDS); request rates are counted per key
in each replica (a key spread over N replicas gets up to N times the rate).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from services.kit.auth import ALL_PROJECTS, ROLES, AuthBase, Principal
from services.kit.db import Database
from services.kit.errors import PermissionDenied, ResourceExhausted
from services.kit.times import utcnow

READ_PREFIXES = ("Get", "List", "Watch", "Read", "Search", "Plan")
READ_METHODS = frozenset(
    {
        "GenerateDatasetVersionDownloadUrls",
        "GenerateModelVersionDownloadUrls",
        "DownloadModelVersion",
        "ExportModelVersion",
    }
)
ADMIN_PREFIXES = ("Delete", "Revoke")
ADMIN_METHODS = frozenset({"CreateApiKey", "GetApiKey", "ListApiKeys", "ListAuditLogEntries"})
QUOTA_CACHE_SECONDS = 10.0
DEFAULT_QUOTA: dict[str, Any] = {
    "max_storage_bytes": 0,
    "max_running_jobs": 0,
    "max_requests_per_second": 0.0,
}


def required_role(method: str) -> str:
    """The least role that may call `method` (a full gRPC method or its short name)."""
    short = method.rsplit("/", 1)[-1]
    if short in ADMIN_METHODS or short.startswith(ADMIN_PREFIXES):
        return "admin"
    if short in READ_METHODS or short.startswith(READ_PREFIXES):
        return "viewer"
    return "member"


def require_role(principal: Principal, method: str) -> str:
    """The role the method needs; PERMISSION_DENIED when the caller's key has less."""
    needed = required_role(method)
    if ROLES.index(principal.role) < ROLES.index(needed):
        short = method.rsplit("/", 1)[-1]
        raise PermissionDenied(
            f"{short} needs a key with the {needed} role; this key is a {principal.role}",
            reason="ROLE_FORBIDDEN",
            metadata={"needed_role": needed},
        )
    return needed


class ProjectRow(AuthBase):
    __tablename__ = "projects"

    project_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    quota: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditRow(AuthBase):
    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    project: Mapped[str] = mapped_column(String(63))
    key_id: Mapped[str] = mapped_column(String(32))
    key_project: Mapped[str] = mapped_column(String(63))
    role: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(200))
    resource: Mapped[str] = mapped_column(String(1024))
    status: Mapped[str] = mapped_column(String(32))
    request_id: Mapped[str] = mapped_column(String(128))


class StorageUsageRow(AuthBase):
    """Bytes a service stores for a project (model versions, dataset versions): each service keeps
    its own row current, so a quota check sees the project's total across services."""

    __tablename__ = "storage_usage"

    project: Mapped[str] = mapped_column(String(63), primary_key=True)
    service: Mapped[str] = mapped_column(String(32), primary_key=True)
    bytes: Mapped[int] = mapped_column(BigInteger)
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def ensure_project(session: Session, project_id: str) -> ProjectRow:
    """The project's row, made (with no quota) when it has none: operators' keys made outside the
    iam service (`tuneforge keys create`) bring their project into being."""
    row = session.get(ProjectRow, project_id)
    if row is None:
        now = utcnow()
        row = ProjectRow(
            project_id=project_id,
            display_name=project_id,
            description="",
            quota={},
            create_time=now,
            update_time=now,
        )
        session.add(row)
        session.flush()
    return row


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class Access:
    """Quotas, rates, usage and the audit log of one process, over the shared auth database.
    `default_rate`: requests per second per key when the project sets none (0: no limit)."""

    db: Database
    default_rate: float = 0.0
    _quotas: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    # -- quotas --------------------------------------------------------------------------------

    def quota_now(self, project: str) -> dict[str, Any]:
        """The project's quota (cached a few seconds); a project without a row has none."""
        cached = self._quotas.get(project)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        with self.db.transaction() as session:
            row = session.get(ProjectRow, project)
            quota = {**DEFAULT_QUOTA, **(row.quota if row else {})}
        self._quotas[project] = (time.monotonic() + QUOTA_CACHE_SECONDS, quota)
        return quota

    async def quota(self, project: str) -> dict[str, Any]:
        cached = self._quotas.get(project)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        return await asyncio.to_thread(self.quota_now, project)

    # -- rates ---------------------------------------------------------------------------------

    async def admit(self, principal: Principal, project: str) -> None:
        """RESOURCE_EXHAUSTED when the key is past its rate (a token bucket: the rate per second,
        bursts of twice that). Keys of every project (operators, workers) are not limited."""
        if principal.project == ALL_PROJECTS:
            return
        rate = float((await self.quota(principal.project))["max_requests_per_second"]) or self.default_rate
        if rate <= 0:
            return
        now = time.monotonic()
        bucket = self._buckets.setdefault(principal.key_id, _Bucket(2 * rate, now))
        bucket.tokens = min(2 * rate, bucket.tokens + (now - bucket.stamp) * rate)
        bucket.stamp = now
        if bucket.tokens < 1:
            wait = (1 - bucket.tokens) / rate
            raise ResourceExhausted(
                f"this key is over its limit of {rate:g} requests per second; retry in {wait:.2f} s",
                reason="RATE_LIMITED",
                metadata={"retry_after": f"{max(wait, 0.01):.2f}"},
            )
        bucket.tokens -= 1

    # -- storage -------------------------------------------------------------------------------

    def record_storage(self, session: Session, project: str, service: str, total_bytes: int) -> None:
        row = session.get(StorageUsageRow, (project, service))
        if row is None:
            session.add(
                StorageUsageRow(project=project, service=service, bytes=total_bytes, update_time=utcnow())
            )
        else:
            row.bytes, row.update_time = total_bytes, utcnow()

    async def set_storage(self, project: str, service: str, total_bytes: int) -> None:
        """What `service` stores for `project` now (each service calls it after its writes)."""
        await self.db.run(lambda s: self.record_storage(s, project, service, total_bytes))

    def check_storage_now(
        self, project: str, service: str, own_bytes: int, adding: int, field_name: str
    ) -> None:
        """RESOURCE_EXHAUSTED when storing `adding` more bytes would pass the project's storage
        quota: `own_bytes` is what `service` stores now, the other services' rows the rest (each
        refreshed at least every minute). Blocking: call it on a worker thread."""
        limit = int(self.quota_now(project)["max_storage_bytes"])
        if not limit:
            return
        with self.db.transaction() as session:
            others = int(
                session.scalar(
                    select(func.coalesce(func.sum(StorageUsageRow.bytes), 0)).where(
                        StorageUsageRow.project == project, StorageUsageRow.service != service
                    )
                )
            )
        used = own_bytes + others
        if used + adding > limit:
            raise ResourceExhausted(
                f"{field_name}: project {project} stores {used} bytes of its {limit}; "
                f"{adding} more would pass its storage quota (delete versions, or ask an operator for more)",
                reason="STORAGE_QUOTA",
                metadata={"used_bytes": str(used), "limit_bytes": str(limit)},
            )

    async def check_storage(
        self, project: str, service: str, own_bytes: int, adding: int, field_name: str
    ) -> None:
        await asyncio.to_thread(self.check_storage_now, project, service, own_bytes, adding, field_name)

    # -- the audit log -------------------------------------------------------------------------

    async def audit(
        self, principal: Principal, project: str, method: str, resource: str, status: str, request_id: str
    ) -> None:
        def write(session: Session) -> None:
            session.add(
                AuditRow(
                    time=utcnow(),
                    project=project or principal.project,
                    key_id=principal.key_id,
                    key_project=principal.project,
                    role=principal.role,
                    method=method[:200],
                    resource=resource[:1024],
                    status=status[:32],
                    request_id=request_id[:128],
                )
            )

        await self.db.run(write)
