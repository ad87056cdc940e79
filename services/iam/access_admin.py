"""Projects, API keys and the audit log as resources, over the auth database every service reads.

Who may do what: keys of every project (operators) create, delete and set quotas on projects; a
project's admins name it, manage its keys and read its audit log; anyone in a project reads it.
A key never gets more than its maker has: a project admin makes viewer, member or admin keys of
that project only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.kit.access import DEFAULT_QUOTA, AuditRow, ProjectRow
from services.kit.auth import ALL_PROJECTS, ROLES, ApiKeyRow, ApiKeyStore, Principal, principal_var
from services.kit.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from services.kit.names import (
    PROJECT,
    NamePattern,
    PageTokens,
    check_id,
    check_text,
    page_size,
    parse_filter,
    quote,
)
from services.kit.times import from_timestamp, to_timestamp, utcnow
from tuneforge.iam.v1 import iam_pb2

KEY_ID = re.compile(r"^[0-9a-f]{12}$")
MAX_KEY_LIFETIME = timedelta(days=3650)
ROLE_TO_PROTO = {"viewer": iam_pb2.ROLE_VIEWER, "member": iam_pb2.ROLE_MEMBER, "admin": iam_pb2.ROLE_ADMIN}
ROLE_FROM_PROTO = {v: k for k, v in ROLE_TO_PROTO.items()}
QUOTA_FIELDS = ("max_storage_bytes", "max_running_jobs", "max_requests_per_second")


def _key_segment(value: str, field: str) -> str:
    if not KEY_ID.match(value):
        raise InvalidArgument.field(field, f"{quote(value)} is not an API key id (12 hex digits)")
    return value


def _project_segment(value: str, field: str) -> str:
    if value == "-":
        return ALL_PROJECTS
    return check_id(value, field, what="project id")


KEY = NamePattern("projects/{project}/apiKeys/{key}", {"key": _key_segment, "project": _project_segment})
KEY_PARENT = NamePattern("projects/{project}", {"project": _project_segment})


def caller() -> Principal:
    principal = principal_var.get()
    if principal is None:
        raise Unauthenticated("no API key on this call", reason="MISSING_API_KEY")
    return principal


def _need_operator(what: str) -> Principal:
    principal = caller()
    if not principal.operator:
        raise PermissionDenied(f"{what} needs a key of every project (an operator's)", reason="OPERATOR_ONLY")
    return principal


def _need_role(project: str, role: str) -> Principal:
    """The caller, who must act on `project` with at least `role`."""
    principal = caller()
    principal.require_project(project)
    if ROLES.index(principal.role) < ROLES.index(role):
        raise PermissionDenied(
            f"this needs a key with the {role} role in project {project}; this key is a {principal.role}",
            reason="ROLE_FORBIDDEN",
        )
    return principal


def _ts(moment: datetime | None) -> Any:
    return to_timestamp(moment) if moment is not None else None


def project_to_proto(row: ProjectRow) -> iam_pb2.Project:
    quota = {**DEFAULT_QUOTA, **row.quota}
    return iam_pb2.Project(
        name=f"projects/{row.project_id}",
        display_name=row.display_name,
        description=row.description,
        quota=iam_pb2.ProjectQuota(**{k: quota[k] for k in QUOTA_FIELDS}),
        create_time=_ts(row.create_time),
        update_time=_ts(row.update_time),
    )


def key_to_proto(row: ApiKeyRow) -> iam_pb2.ApiKey:
    project = "-" if row.project == ALL_PROJECTS else row.project
    expire = row.expire_time.replace(tzinfo=row.expire_time.tzinfo or UTC) if row.expire_time else None
    return iam_pb2.ApiKey(
        name=f"projects/{project}/apiKeys/{row.key_id}",
        display_name=row.display_name,
        role=ROLE_TO_PROTO[row.role],
        expire_time=_ts(row.expire_time),
        create_time=_ts(row.create_time),
        last_used_time=_ts(row.last_used_time),
        revoke_time=_ts(row.revoke_time),
        active=row.revoke_time is None and (expire is None or expire > datetime.now(UTC)),
    )


def check_quota(quota: iam_pb2.ProjectQuota) -> dict[str, Any]:
    problems = []
    if quota.max_storage_bytes < 0:
        problems.append(FieldViolation("project.quota.max_storage_bytes", "must not be negative"))
    if quota.max_running_jobs < 0:
        problems.append(FieldViolation("project.quota.max_running_jobs", "must not be negative"))
    rate = quota.max_requests_per_second
    if not (0 <= rate <= 1e6):  # NaN fails too
        problems.append(
            FieldViolation("project.quota.max_requests_per_second", f"must be between 0 and 1e6 (got {rate})")
        )
    if problems:
        raise InvalidArgument.fields(problems)
    return {k: getattr(quota, k) for k in QUOTA_FIELDS}


class Projects:
    """Projects in the auth database."""

    def __init__(self, keys: ApiKeyStore, page_tokens: PageTokens, counts: Any) -> None:
        self.db = keys.db
        self.page_tokens = page_tokens
        # async (project) -> {collection: count} of what the project holds in the other services.
        self.counts = counts

    async def create(self, project_id: str, project: iam_pb2.Project, request_id: str) -> iam_pb2.Project:
        _need_operator("creating a project")
        check_id(project_id, "project_id", what="project id")
        display_name = check_text(project.display_name, "project.display_name", 200)
        description = check_text(project.description, "project.description", 4000)
        quota = check_quota(project.quota)
        check_text(request_id, "request_id", 128)

        def insert(session: Session) -> iam_pb2.Project:
            if session.get(ProjectRow, project_id) is not None:
                raise AlreadyExists(f"project projects/{project_id} already exists")
            now = utcnow()
            row = ProjectRow(
                project_id=project_id,
                display_name=display_name or project_id,
                description=description,
                quota=quota,
                create_time=now,
                update_time=now,
            )
            session.add(row)
            session.flush()
            return project_to_proto(row)

        try:
            return await self.db.run(insert)
        except IntegrityError:
            raise AlreadyExists(f"project projects/{project_id} already exists") from None

    async def get(self, name: str) -> iam_pb2.Project:
        project = PROJECT.parse(name, "name")["project"]
        _need_role(project, "viewer")
        row = await self.db.run(lambda s: s.get(ProjectRow, project))
        if row is None:
            raise NotFound(f"project {name} does not exist")
        return project_to_proto(row)

    async def list(self, size: int, token: str) -> tuple[list[iam_pb2.Project], str]:
        principal = caller()
        size = page_size(size)
        after = self.page_tokens.decode(token, "ListProjects")["after"] if token else ""

        def list_(session: Session) -> tuple[list[iam_pb2.Project], str]:
            query = select(ProjectRow).where(ProjectRow.project_id > after).order_by(ProjectRow.project_id)
            if not principal.operator:
                query = query.where(ProjectRow.project_id == principal.project)
            rows = session.scalars(query.limit(size + 1)).all()
            more = len(rows) > size
            rows = rows[:size]
            next_token = (
                self.page_tokens.encode({"after": rows[-1].project_id}, "ListProjects") if more else ""
            )
            return [project_to_proto(r) for r in rows], next_token

        return await self.db.run(list_)

    async def update(self, project: iam_pb2.Project, paths: Sequence[str]) -> iam_pb2.Project:
        project_id = PROJECT.parse(project.name, "project.name")["project"]
        allowed = {"display_name", "description", "quota"}
        paths = set(paths)
        if not paths or paths - allowed:
            raise InvalidArgument.field(
                "update_mask", f"name fields to change among {', '.join(sorted(allowed))}"
            )
        if "quota" in paths:
            _need_operator("setting a project's quota")
            quota = check_quota(project.quota)
        else:
            _need_role(project_id, "admin")
        display_name = check_text(project.display_name, "project.display_name", 200)
        description = check_text(project.description, "project.description", 4000)

        def update_(session: Session) -> iam_pb2.Project:
            row = session.get(ProjectRow, project_id, with_for_update=True)
            if row is None:
                raise NotFound(f"project {project.name} does not exist")
            if "display_name" in paths:
                row.display_name = display_name or project_id
            if "description" in paths:
                row.description = description
            if "quota" in paths:
                row.quota = quota
            row.update_time = utcnow()
            session.flush()
            return project_to_proto(row)

        return await self.db.run(update_)

    async def delete(self, name: str) -> None:
        """Refused while the project holds resources in any service; its keys are revoked in the
        same transaction as the project goes."""
        _need_operator("deleting a project")
        project_id = PROJECT.parse(name, "name")["project"]
        if await self.db.run(lambda s: s.get(ProjectRow, project_id)) is None:
            raise NotFound(f"project {name} does not exist")
        held = {k: v for k, v in (await self.counts(project_id)).items() if v}
        if held:
            listed = ", ".join(f"{v} {k}" for k, v in sorted(held.items()))
            raise FailedPrecondition(
                f"{name} still holds {listed}; delete them first", reason="PROJECT_NOT_EMPTY"
            )

        def delete_(session: Session) -> None:
            row = session.get(ProjectRow, project_id, with_for_update=True)
            if row is None:
                return
            now = utcnow()
            for key in session.scalars(select(ApiKeyRow).where(ApiKeyRow.project == project_id)):
                key.revoke_time = key.revoke_time or now
            session.delete(row)

        await self.db.run(delete_)


class ApiKeys:
    """API keys as resources of their project."""

    def __init__(self, keys: ApiKeyStore, page_tokens: PageTokens) -> None:
        self.keys = keys
        self.page_tokens = page_tokens

    async def create(self, parent: str, key: iam_pb2.ApiKey, request_id: str) -> tuple[iam_pb2.ApiKey, str]:
        project = KEY_PARENT.parse(parent, "parent")["project"]
        principal = (
            _need_operator("making a key of every project")
            if project == ALL_PROJECTS
            else _need_role(project, "admin")
        )
        role = ROLE_FROM_PROTO.get(key.role)
        if role is None:
            raise InvalidArgument.field("api_key.role", f"choose a role: {', '.join(ROLES)}")
        if project == ALL_PROJECTS and role != "admin":
            raise InvalidArgument.field("api_key.role", "a key of every project is an admin key")
        if ROLES.index(role) > ROLES.index(principal.role):
            raise PermissionDenied(f"a {principal.role} cannot make an {role} key", reason="ROLE_FORBIDDEN")
        display_name = check_text(key.display_name, "api_key.display_name", 200)
        check_text(request_id, "request_id", 128)
        expire = None
        if key.HasField("expire_time"):
            expire = from_timestamp(key.expire_time, "api_key.expire_time")
            now = datetime.now(UTC)
            if not now < expire <= now + MAX_KEY_LIFETIME:
                raise InvalidArgument.field("api_key.expire_time", "must be in the future, within ten years")

        def insert(session: Session) -> tuple[iam_pb2.ApiKey, str]:
            if project != ALL_PROJECTS and session.get(ProjectRow, project) is None:
                raise FailedPrecondition(
                    f"project projects/{project} does not exist: an operator creates it first",
                    reason="PROJECT_NOT_FOUND",
                )
            made, token = self.keys.create(project, role, display_name, expire, session=session)
            row = session.get(ApiKeyRow, made.key_id)
            assert row is not None
            return key_to_proto(row), token

        return await self.keys.db.run(insert)

    def _find(self, session: Session, name: str) -> ApiKeyRow:
        parts = KEY.parse(name, "name")
        if parts["project"] == ALL_PROJECTS:
            _need_operator("reading a key of every project")
        else:
            _need_role(parts["project"], "admin")
        row = session.get(ApiKeyRow, parts["key"])
        if row is None or row.project != parts["project"]:
            raise NotFound(f"API key {name} does not exist")
        return row

    async def get(self, name: str) -> iam_pb2.ApiKey:
        return await self.keys.db.run(lambda s: key_to_proto(self._find(s, name)))

    async def list(self, parent: str, size: int, token: str) -> tuple[list[iam_pb2.ApiKey], str]:
        project = KEY_PARENT.parse(parent, "parent")["project"]
        if project == ALL_PROJECTS:
            _need_operator("listing keys of every project")
        else:
            _need_role(project, "admin")
        size = page_size(size)
        context = f"ListApiKeys|{project}"
        after = self.page_tokens.decode(token, context)["after"] if token else ["", ""]

        def list_(session: Session) -> tuple[list[iam_pb2.ApiKey], str]:
            rows = session.scalars(
                select(ApiKeyRow)
                .where(ApiKeyRow.project == project)
                .order_by(ApiKeyRow.create_time, ApiKeyRow.key_id)
            ).all()
            start = (
                next((i + 1 for i, r in enumerate(rows) if [r.create_time.isoformat(), r.key_id] == after), 0)
                if token
                else 0
            )
            page = rows[start : start + size]
            more = start + size < len(rows)
            next_token = (
                self.page_tokens.encode(
                    {"after": [page[-1].create_time.isoformat(), page[-1].key_id]}, context
                )
                if more
                else ""
            )
            return [key_to_proto(r) for r in page], next_token

        return await self.keys.db.run(list_)

    async def revoke(self, name: str) -> iam_pb2.ApiKey:
        def revoke_(session: Session) -> iam_pb2.ApiKey:
            row = self._find(session, name)
            row.revoke_time = row.revoke_time or utcnow()
            session.flush()
            return key_to_proto(row)

        revoked = await self.keys.db.run(revoke_)
        self.keys.forget(name.rsplit("/", 1)[-1])  # this replica refuses it at once; others within a second
        return revoked


class AuditLog:
    def __init__(self, keys: ApiKeyStore, page_tokens: PageTokens) -> None:
        self.db = keys.db
        self.page_tokens = page_tokens

    async def list(
        self, parent: str, size: int, token: str, filter_text: str, start_time: datetime | None
    ) -> tuple[list[iam_pb2.AuditLogEntry], str]:
        project = PROJECT.parse(parent, "parent")["project"]
        _need_role(project, "admin")
        size = page_size(size)
        terms = parse_filter(filter_text, lambda k: k in ("method", "api_key", "status"))
        context = f"ListAuditLogEntries|{project}|{filter_text}|{start_time}"
        before = int(self.page_tokens.decode(token, context)["before"]) if token else None

        def list_(session: Session) -> tuple[list[iam_pb2.AuditLogEntry], str]:
            query = select(AuditRow).where(AuditRow.project == project)
            for key, value in terms:
                if key == "method":
                    query = query.where(AuditRow.method == value)
                elif key == "status":
                    query = query.where(AuditRow.status == value)
                else:
                    query = query.where(AuditRow.key_id == value.rsplit("/", 1)[-1])
            if start_time is not None:
                query = query.where(AuditRow.time >= start_time)
            if before is not None:
                query = query.where(AuditRow.seq < before)
            rows = session.scalars(query.order_by(AuditRow.seq.desc()).limit(size + 1)).all()
            more = len(rows) > size
            rows = rows[:size]
            next_token = self.page_tokens.encode({"before": rows[-1].seq}, context) if more else ""
            return [
                iam_pb2.AuditLogEntry(
                    time=_ts(r.time),
                    project=f"projects/{r.project}",
                    api_key=f"projects/{'-' if r.key_project == ALL_PROJECTS else r.key_project}/apiKeys/{r.key_id}",
                    role=ROLE_TO_PROTO.get(r.role, 0),
                    method=r.method,
                    resource=r.resource,
                    status=r.status,
                    request_id=r.request_id,
                )
                for r in rows
            ], next_token

        return await self.db.run(list_)
