"""Bearer API keys, hashed at rest and scoped to a project, with a role and an optional expiry.

A key reads `tf_<key id>_<secret>`. Only the SHA-256 of the secret is stored: the secret is 256
random bits, so a fast hash is enough (a slow password hash protects low-entropy secrets only).
A key is scoped to one project; an `admin` key with project `*` may act on every project (operators
and workers). Roles: `viewer` reads, `member` reads and runs, `admin` also deletes and manages keys
(`services.kit.access` says which methods need which). Revocation reaches every service within a
second (each polls the key table); the time a key was last used is written at most once a minute.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import DateTime, MetaData, String, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from services.kit.db import Database
from services.kit.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from services.kit.names import RESOURCE_ID, RESOURCE_ID_RULE, NamePattern

ALL_PROJECTS = "*"
ROLES = ("viewer", "member", "admin")
LAST_USED_RESOLUTION = timedelta(minutes=1)
MIGRATIONS = Path(__file__).parent / "auth_migrations"
log = logging.getLogger(__name__)
_CACHE_SECONDS = 10.0
REVOCATION_POLL_SECONDS = 1.0


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite drops the zone


class AuthBase(DeclarativeBase):
    metadata = MetaData()


class ApiKeyRow(AuthBase):
    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project: Mapped[str] = mapped_column(String(63), index=True)
    role: Mapped[str] = mapped_column(String(16))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoke_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    expire_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, its project and role."""

    key_id: str
    project: str
    role: str

    @property
    def operator(self) -> bool:
        """A key of every project (operators, workers)."""
        return self.project == ALL_PROJECTS and self.role == "admin"

    def require_project(self, project: str) -> None:
        """Raise PERMISSION_DENIED unless this key may act on `project`."""
        if self.project != project and not (self.role == "admin" and self.project == ALL_PROJECTS):
            raise PermissionDenied(
                f"this API key is scoped to project {self.project!r} and cannot access project {project!r}",
                reason="PROJECT_FORBIDDEN",
            )


principal_var: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)
# The caller's own key, so a service can call another on the caller's behalf (never logged).
bearer_var: contextvars.ContextVar[str] = contextvars.ContextVar("bearer", default="")


def require_project(project: str) -> None:
    """Check the current caller may act on `project` (set by the auth interceptor)."""
    principal = principal_var.get()
    if principal is None:
        raise Unauthenticated("no API key on this call", reason="MISSING_API_KEY")
    principal.require_project(project)


def parse_in_project(pattern: NamePattern, name: str, field: str) -> dict[str, str]:
    """Parse a resource name and check the caller may act on its project."""
    parts = pattern.parse(name, field)
    require_project(parts["project"])
    return parts


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    project: str
    role: str
    display_name: str
    create_time: datetime
    revoke_time: datetime | None
    expire_time: datetime | None = None
    last_used_time: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoke_time is None and (self.expire_time is None or _aware(self.expire_time) > datetime.now(UTC))


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeyStore:
    """Creates, verifies and revokes API keys in the shared auth database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[str, tuple[float, ApiKeyRow | None]] = {}
        self._used: dict[str, datetime] = {}

    def migrate(self) -> None:
        self.db.migrate(MIGRATIONS)

    def create(
        self,
        project: str,
        role: str = "member",
        display_name: str = "",
        expire_time: datetime | None = None,
        session: Session | None = None,
    ) -> tuple[ApiKey, str]:
        """Make a key; return it and the token, which is shown once and never stored. In `session`
        when given (the caller's transaction), else in one of its own."""
        if role not in ROLES:
            raise InvalidArgument.field("role", f"must be one of {', '.join(ROLES)}")
        if project != ALL_PROJECTS and not RESOURCE_ID.match(project):
            raise InvalidArgument.field(
                "project", f"{project!r} is not a valid project id ({RESOURCE_ID_RULE})"
            )
        if project == ALL_PROJECTS and role != "admin":
            raise InvalidArgument.field("project", "only admin keys may cover every project")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        row = ApiKeyRow(
            key_id=key_id,
            project=project,
            role=role,
            secret_sha256=_hash(secret),
            display_name=display_name,
            create_time=datetime.now(UTC),
            expire_time=expire_time,
        )
        if session is not None:
            session.add(row)
            session.flush()
        else:
            with self.db.transaction() as own:
                own.add(row)
        return _to_key(row), f"tf_{key_id}_{secret}"

    def list(self) -> list[ApiKey]:
        with self.db.transaction() as session:
            return [_to_key(r) for r in session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.create_time))]

    def revoke(self, key_id: str) -> ApiKey:
        with self.db.transaction() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFound(f"API key {key_id!r} does not exist")
            row.revoke_time = row.revoke_time or datetime.now(UTC)
            self._cache.pop(key_id, None)
            return _to_key(row)

    def forget(self, key_id: str) -> None:
        """Drop a key from this process's cache (it was revoked here)."""
        self._cache.pop(key_id, None)

    def _lookup(self, key_id: str) -> ApiKeyRow | None:
        cached = self._cache.get(key_id)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        with self.db.transaction() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is not None:
                session.expunge(row)
        self._cache[key_id] = (time.monotonic() + _CACHE_SECONDS, row)
        return row

    def evict_revoked(self, since: datetime) -> datetime:
        """Drop from the cache every key revoked at or after `since`; return the newest revocation
        seen (the next call's `since`)."""
        with self.db.transaction() as session:
            rows = session.execute(
                # A margin for clocks of other hosts that revoke keys: re-evicting is harmless.
                select(ApiKeyRow.key_id, ApiKeyRow.revoke_time).where(
                    ApiKeyRow.revoke_time >= since - timedelta(seconds=30)
                )
            ).all()
        for key_id, _ in rows:
            self._cache.pop(key_id, None)
        newest = max((_aware(t) for _, t in rows), default=since)
        return newest

    async def watch_revocations(self, interval: float = REVOCATION_POLL_SECONDS) -> None:
        """Evict revoked keys from the cache as they are revoked (however they were: the CLI, SQL),
        polling every `interval` seconds; runs until cancelled."""
        since = datetime.now(UTC) - timedelta(minutes=1)
        while True:
            try:
                since = await asyncio.to_thread(self.evict_revoked, since)
            except Exception:
                log.warning("reading revoked API keys failed; retrying", exc_info=True)
            await asyncio.sleep(interval)

    def authenticate(self, token: str) -> Principal:
        """Verify a `tf_...` token; raise UNAUTHENTICATED with the reason otherwise.

        Revocation bites within `REVOCATION_POLL_SECONDS` in every service that runs
        `watch_revocations` (all of them), and within the cache's lifetime anywhere else.
        """
        prefix, _, rest = token.partition("_")
        key_id, _, secret = rest.partition("_")
        if prefix != "tf" or not key_id or not secret:
            raise Unauthenticated(
                "the API key is malformed: expected tf_<id>_<secret>", reason="MALFORMED_API_KEY"
            )
        row = self._lookup(key_id)
        if row is None or not hmac.compare_digest(row.secret_sha256, _hash(secret)):
            raise Unauthenticated("the API key is not valid", reason="INVALID_API_KEY")
        if row.revoke_time is not None:
            raise Unauthenticated("the API key has been revoked", reason="REVOKED_API_KEY")
        if row.expire_time is not None and _aware(row.expire_time) <= datetime.now(UTC):
            raise Unauthenticated("the API key has expired", reason="EXPIRED_API_KEY")
        self._note_use(row)
        return Principal(key_id=row.key_id, project=row.project, role=row.role)

    def _note_use(self, row: ApiKeyRow) -> None:
        """Record the key's use, at most once per LAST_USED_RESOLUTION (a write per call would cost
        more than the call)."""
        now = datetime.now(UTC)
        last = self._used.get(row.key_id) or (_aware(row.last_used_time) if row.last_used_time else None)
        if last is not None and now - last < LAST_USED_RESOLUTION:
            return
        self._used[row.key_id] = now
        try:
            with self.db.transaction() as session:
                session.execute(update(ApiKeyRow).where(ApiKeyRow.key_id == row.key_id).values(last_used_time=now))
        except Exception:  # a busy database must not fail the call that used the key
            log.warning("recording a key's last use failed", exc_info=True)

    async def authenticate_async(self, token: str) -> Principal:
        """`authenticate` without blocking the event loop: a cache miss reads the database on a thread."""
        key_id = token.split("_")[1] if token.count("_") >= 2 else ""
        cached = self._cache.get(key_id)
        used = self._used.get(key_id)
        recent = used is not None and datetime.now(UTC) - used < LAST_USED_RESOLUTION
        if cached and cached[0] > time.monotonic() and recent:
            return self.authenticate(token)
        return await asyncio.to_thread(self.authenticate, token)


def _to_key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        row.key_id,
        row.project,
        row.role,
        row.display_name,
        row.create_time,
        row.revoke_time,
        row.expire_time,
        row.last_used_time,
    )
