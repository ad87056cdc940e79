"""`client.iam`: projects, API keys with roles and expiry, and the audit log.

client.iam.create_project("team-a", quota={"max_storage_bytes": 50 * 2**30, "max_running_jobs": 4})
made = client.iam.create_key("viewer", project="team-a", display_name="dashboards", expires_in_days=90)
print(made.token)                       # shown once
client.iam.revoke_key(made.api_key.name)
for entry in client.iam.audit_log("team-a"):
    print(entry.time.ToDatetime(), entry.api_key, entry.method, entry.status)
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.protobuf import field_mask_pb2

from tuneforge.api._calls import call, pages
from tuneforge.enums import enum_names, enum_values
from tuneforge.errors import TuneForgeError
from tuneforge.iam.v1 import iam_pb2, iam_service_pb2, iam_service_pb2_grpc

S = iam_service_pb2
ROLES = enum_values(iam_pb2.Role, "ROLE_")
ROLE_NAMES = enum_names(iam_pb2.Role, "ROLE_")


class Iam:
    """The iam service."""

    def __init__(self, connect: Callable[[], grpc.Channel], project: str) -> None:
        self._connect = connect
        self._project = project

    @functools.cached_property
    def _stub(self) -> iam_service_pb2_grpc.IamServiceStub:
        return iam_service_pb2_grpc.IamServiceStub(self._connect())

    def _project_name(self, project: str | None) -> str:
        project = project or self._project
        return project if project.startswith("projects/") else f"projects/{project}"

    # -- projects ------------------------------------------------------------------------------

    def create_project(
        self,
        project_id: str,
        *,
        display_name: str = "",
        description: str = "",
        quota: Mapping[str, Any] | None = None,
        request_id: str | None = None,
    ) -> iam_pb2.Project:
        """A project (operators' keys only); `quota`: max_storage_bytes, max_running_jobs,
        max_requests_per_second."""
        return call(
            self._stub.CreateProject,
            S.CreateProjectRequest(
                project_id=project_id,
                project=iam_pb2.Project(
                    display_name=display_name,
                    description=description,
                    quota=iam_pb2.ProjectQuota(**(quota or {})),
                ),
                request_id=request_id or str(uuid.uuid4()),
            ),
        )

    def get_project(self, project: str | None = None) -> iam_pb2.Project:
        return call(self._stub.GetProject, S.GetProjectRequest(name=self._project_name(project)))

    def projects(self, *, page_size: int = 0) -> Iterator[iam_pb2.Project]:
        def fetch(token: str) -> tuple[list[iam_pb2.Project], str]:
            r = call(self._stub.ListProjects, S.ListProjectsRequest(page_size=page_size, page_token=token))
            return list(r.projects), r.next_page_token

        return pages(fetch)

    def update_project(
        self, project: str | None = None, *, quota: Mapping[str, Any] | None = None, **fields: str
    ) -> iam_pb2.Project:
        """Change `display_name`, `description` (the project's admins) or `quota` (operators)."""
        message = iam_pb2.Project(name=self._project_name(project), **fields)
        paths = sorted(fields)
        if quota is not None:
            message.quota.CopyFrom(iam_pb2.ProjectQuota(**quota))
            paths.append("quota")
        return call(
            self._stub.UpdateProject,
            S.UpdateProjectRequest(project=message, update_mask=field_mask_pb2.FieldMask(paths=paths)),
        )

    def delete_project(self, project: str) -> None:
        call(self._stub.DeleteProject, S.DeleteProjectRequest(name=self._project_name(project)))

    # -- keys ----------------------------------------------------------------------------------

    def create_key(
        self,
        role: str,
        *,
        project: str | None = None,
        display_name: str = "",
        expires_in_days: float | None = None,
        expire_time: datetime | None = None,
        request_id: str | None = None,
    ) -> iam_service_pb2.CreateApiKeyResponse:
        """A key of `role` (viewer, member, admin) in the project; `.token` is its secret, shown once."""
        if role not in ROLES:
            raise TuneForgeError("INVALID_ARGUMENT", f"role {role!r} is not one of {', '.join(ROLES)}")
        key = iam_pb2.ApiKey(role=ROLES[role], display_name=display_name)
        if expires_in_days is not None:
            expire_time = datetime.now(UTC) + timedelta(days=expires_in_days)
        if expire_time is not None:
            key.expire_time.FromDatetime(expire_time.astimezone(UTC))
        return call(
            self._stub.CreateApiKey,
            S.CreateApiKeyRequest(
                parent=self._project_name(project), api_key=key, request_id=request_id or str(uuid.uuid4())
            ),
        )

    def get_key(self, name: str) -> iam_pb2.ApiKey:
        return call(self._stub.GetApiKey, S.GetApiKeyRequest(name=name))

    def keys(self, project: str | None = None, *, page_size: int = 0) -> Iterator[iam_pb2.ApiKey]:
        parent = self._project_name(project)

        def fetch(token: str) -> tuple[list[iam_pb2.ApiKey], str]:
            r = call(
                self._stub.ListApiKeys,
                S.ListApiKeysRequest(parent=parent, page_size=page_size, page_token=token),
            )
            return list(r.api_keys), r.next_page_token

        return pages(fetch)

    def revoke_key(self, name: str) -> iam_pb2.ApiKey:
        """Revoke a key (its full name, `projects/p/apiKeys/…`): every service refuses it within a second."""
        return call(self._stub.RevokeApiKey, S.RevokeApiKeyRequest(name=name))

    # -- the audit log -------------------------------------------------------------------------

    def audit_log(
        self,
        project: str | None = None,
        *,
        method: str = "",
        api_key: str = "",
        status: str = "",
        since: datetime | None = None,
        page_size: int = 0,
    ) -> Iterator[iam_pb2.AuditLogEntry]:
        """The project's writes, newest first."""
        terms = [
            f'{k} = "{v}"' for k, v in (("method", method), ("api_key", api_key), ("status", status)) if v
        ]
        request = S.ListAuditLogEntriesRequest(
            parent=self._project_name(project), page_size=page_size, filter=" AND ".join(terms)
        )
        if since is not None:
            request.start_time.FromDatetime(since.astimezone(UTC))

        def fetch(token: str) -> tuple[list[iam_pb2.AuditLogEntry], str]:
            request.page_token = token
            r = call(self._stub.ListAuditLogEntries, request)
            return list(r.entries), r.next_page_token

        return pages(fetch)
