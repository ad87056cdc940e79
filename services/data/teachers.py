"""Teachers: the models augmentation and annotation ask — a deployment of the serve service, or any
OpenAI-compatible endpoint with its key. The key is sealed at rest (`kit.sealing`, bound to the
teacher's uid), never returned by any method and never written to a log or an event.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.data.augment_convert import TEACHER, emit_teacher, teacher_to_proto
from services.data.catalog import DataCatalog
from services.data.repo import AnnotationTaskRow, AugmentationRunRow, TeacherRow
from services.kit.auth import parse_in_project, require_project
from services.kit.db import keyset_page
from services.kit.errors import AlreadyExists, FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from services.kit.names import PROJECT, NamePattern, check_id, check_text, page_size, quote
from services.kit.peers import Peers
from services.kit.sealing import SecretBox
from services.kit.times import utcnow
from tuneforge.data.v1 import augmentation_pb2
from tuneforge.serve.v1 import serve_service_pb2

DEPLOYMENT = NamePattern("projects/{project}/deployments/{deployment}")
SEAL_PURPOSE = "teacher-api-key"
LIMIT_FIELDS = (
    "max_concurrency",
    "requests_per_minute",
    "timeout_seconds",
    "max_retries",
    "input_cost_per_million_tokens",
    "output_cost_per_million_tokens",
)
UPDATABLE = {"display_name", "deployment", "base_url", "model", "api_key", *LIMIT_FIELDS}
DEFAULT_LIMITS: dict[str, Any] = {
    "max_concurrency": 8,
    "requests_per_minute": 0.0,
    "timeout_seconds": 120.0,
    "max_retries": 4,
    "input_cost_per_million_tokens": 0.0,
    "output_cost_per_million_tokens": 0.0,
}
ACTIVE_RUNS = ("pending", "running")
ACTIVE_TASKS = ("pending", "labelling")


def check_base_url(url: str, field: str) -> str:
    """An http(s) URL with a host, no credentials, query or fragment; never a link-local address
    (cloud metadata services live there)."""
    if len(url) > 1000:
        raise InvalidArgument.field(field, "is longer than 1,000 characters")
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InvalidArgument.field(field, f"{quote(url)} is not an http(s) URL such as https://host/v1")
    if parsed.username or parsed.password or parsed.query or parsed.fragment:
        raise InvalidArgument.field(
            field, "must hold no credentials, query or fragment (give the key as api_key)"
        )
    try:
        address = ipaddress.ip_address(parsed.hostname)
    except ValueError:
        return url.rstrip("/")
    if address.is_link_local or address.is_multicast or address.is_unspecified:
        raise InvalidArgument.field(field, f"{address} is not an address a teacher can be reached at")
    return url.rstrip("/")


def check_limits(values: dict[str, Any], where: str) -> dict[str, Any]:
    problems = []
    rules = {
        "max_concurrency": (1, 256),
        "requests_per_minute": (0, 1e6),
        "timeout_seconds": (1, 3600),
        "max_retries": (0, 10),
        "input_cost_per_million_tokens": (0, 1e6),
        "output_cost_per_million_tokens": (0, 1e6),
    }
    for name, (low, high) in rules.items():
        value = values[name]
        if not (low <= value <= high):  # also refuses NaN
            problems.append(
                FieldViolation(f"{where}.{name}", f"must be between {low:g} and {high:g} (got {value})")
            )
    if problems:
        raise InvalidArgument.fields(problems)
    return values


class Teachers:
    def __init__(self, catalog: DataCatalog, peers: Peers, box: SecretBox) -> None:
        self.catalog = catalog
        self.peers = peers
        self.box = box

    # -- checks --------------------------------------------------------------------------------

    async def _check_endpoint(
        self, project: str, deployment: str, base_url: str, model: str
    ) -> tuple[str, str, str]:
        if bool(deployment) == bool(base_url):
            raise InvalidArgument.field(
                "teacher.deployment", "give a deployment of this project, or a base_url (not both)"
            )
        if deployment:
            parts = DEPLOYMENT.parse(deployment, "teacher.deployment")
            if parts["project"] != project:
                raise InvalidArgument.field(
                    "teacher.deployment", f"{quote(deployment)} is not in project {project}"
                )
            # The caller's key asks the serve service: the deployment must exist and be theirs.
            await self.peers.call(
                "serve",
                "GetDeployment",
                serve_service_pb2.GetDeploymentRequest(name=deployment),
                field="teacher.deployment",
            )
            return deployment, "", model or parts["deployment"]
        url = check_base_url(base_url, "teacher.base_url")
        if not model:
            raise InvalidArgument.field("teacher.model", "is required with base_url (the model to ask for)")
        return "", url, check_text(model, "teacher.model", 300)

    @staticmethod
    def _limits(
        teacher: augmentation_pb2.Teacher, base: dict[str, Any], paths: set[str] | None
    ) -> dict[str, Any]:
        values = dict(base)
        for name in LIMIT_FIELDS:
            if paths is not None and name not in paths:
                continue
            if name == "max_retries":
                values[name] = (
                    teacher.max_retries if teacher.HasField("max_retries") else DEFAULT_LIMITS[name]
                )
            else:
                values[name] = getattr(teacher, name) or DEFAULT_LIMITS[name]
        return check_limits(values, "teacher")

    # -- methods -------------------------------------------------------------------------------

    async def create(
        self, parent: str, teacher_id: str, teacher: augmentation_pb2.Teacher, request_id: str
    ) -> augmentation_pb2.Teacher:
        project = PROJECT.parse(parent, "parent")["project"]
        require_project(project)
        check_id(teacher_id, "teacher_id", what="teacher id")
        display_name = check_text(teacher.display_name, "teacher.display_name", 200)
        api_key = check_text(teacher.api_key, "teacher.api_key", 4000)
        check_text(request_id, "request_id", 128)
        limits = self._limits(teacher, DEFAULT_LIMITS, None)
        deployment, base_url, model = await self._check_endpoint(
            project, teacher.deployment, teacher.base_url, teacher.model
        )

        def insert(session: Session) -> augmentation_pb2.Teacher:
            if request_id:
                found = session.scalar(
                    select(TeacherRow).where(
                        TeacherRow.project == project, TeacherRow.request_id == request_id
                    )
                )
                if found is not None:
                    return teacher_to_proto(found)
            if session.scalar(
                select(TeacherRow.uid).where(
                    TeacherRow.project == project, TeacherRow.teacher_id == teacher_id
                )
            ):
                raise AlreadyExists(f"teacher projects/{project}/teachers/{teacher_id} already exists")
            uid, now = uuid.uuid4().hex, utcnow()
            row = TeacherRow(
                uid=uid,
                project=project,
                teacher_id=teacher_id,
                display_name=display_name or teacher_id,
                deployment=deployment,
                base_url=base_url,
                model=model,
                sealed_api_key=self.box.seal(api_key, uid) if api_key else "",
                limits=limits,
                request_id=request_id or None,
                create_time=now,
                update_time=now,
            )
            session.add(row)
            session.flush()
            return emit_teacher(self.catalog.outbox, session, row, "created")

        try:
            return await self.catalog.outbox.write(self.catalog.db, insert)
        except IntegrityError:
            return await self.catalog.outbox.write(self.catalog.db, insert)

    @staticmethod
    def find(session: Session, name: str, field: str = "name", *, lock: bool = False) -> TeacherRow:
        parts = parse_in_project(TEACHER, name, field)
        query = select(TeacherRow).where(
            TeacherRow.project == parts["project"], TeacherRow.teacher_id == parts["teacher"]
        )
        row = session.scalar(query.with_for_update() if lock else query)
        if row is None:
            raise (
                NotFound(f"teacher {name} does not exist")
                if field == "name"
                else InvalidArgument.field(field, f"teacher {quote(name)} does not exist")
            )
        return row

    async def get(self, name: str) -> augmentation_pb2.Teacher:
        return await self.catalog.db.run(lambda s: teacher_to_proto(self.find(s, name)))

    async def list(self, parent: str, size: int, token: str) -> tuple[list[augmentation_pb2.Teacher], str]:
        project = PROJECT.parse(parent, "parent")["project"]
        require_project(project)
        size = page_size(size)

        def list_(session: Session) -> tuple[list[augmentation_pb2.Teacher], str]:
            rows, next_token = keyset_page(
                session,
                select(TeacherRow).where(TeacherRow.project == project),
                tokens=self.catalog.page_tokens,
                columns={"teacher_id": TeacherRow.teacher_id},
                order_by="",
                default_order="teacher_id",
                tie=TeacherRow.uid,
                size=size,
                token=token,
                context=f"ListTeachers|{project}",
            )
            return [teacher_to_proto(r) for r in rows], next_token

        return await self.catalog.db.run(list_)

    async def update(
        self, teacher: augmentation_pb2.Teacher, mask: Sequence[str]
    ) -> augmentation_pb2.Teacher:
        parts = parse_in_project(TEACHER, teacher.name, "teacher.name")
        paths = set(mask)
        if not paths:
            raise InvalidArgument.field(
                "update_mask", f"name the fields to change ({', '.join(sorted(UPDATABLE))})"
            )
        if paths - UPDATABLE:
            raise InvalidArgument.field(
                "update_mask",
                f"cannot update {', '.join(sorted(paths - UPDATABLE))}; updatable: {', '.join(sorted(UPDATABLE))}",
            )
        display_name = check_text(teacher.display_name, "teacher.display_name", 200)
        api_key = check_text(teacher.api_key, "teacher.api_key", 4000)
        current = await self.catalog.db.run(lambda s: self.find(s, teacher.name))
        endpoint = (current.deployment, current.base_url, current.model)
        if paths & {"deployment", "base_url", "model"}:
            deployment = teacher.deployment if "deployment" in paths else current.deployment
            base_url = teacher.base_url if "base_url" in paths else current.base_url
            if "deployment" in paths and deployment:
                base_url = ""  # a teacher moved to a deployment leaves its URL
            if "base_url" in paths and base_url:
                deployment = ""
            model = teacher.model if "model" in paths else current.model
            endpoint = await self._check_endpoint(parts["project"], deployment, base_url, model)
        limits = self._limits(teacher, current.limits, paths)

        def update_(session: Session) -> augmentation_pb2.Teacher:
            row = self.find(session, teacher.name, lock=True)
            if "display_name" in paths:
                row.display_name = display_name or row.teacher_id
            row.deployment, row.base_url, row.model = endpoint
            if "api_key" in paths:
                row.sealed_api_key = self.box.seal(api_key, row.uid) if api_key else ""
            row.limits = limits
            row.update_time = utcnow()
            session.flush()
            return emit_teacher(self.catalog.outbox, session, row, "updated")

        return await self.catalog.outbox.write(self.catalog.db, update_)

    async def delete(self, name: str) -> None:
        def delete_(session: Session) -> None:
            row = self.find(session, name, lock=True)
            busy = session.scalar(
                select(AugmentationRunRow.run_id).where(
                    or_(AugmentationRunRow.teacher_uid == row.uid, AugmentationRunRow.judge_uid == row.uid),
                    AugmentationRunRow.state.in_(ACTIVE_RUNS),
                )
            ) or session.scalar(
                select(AnnotationTaskRow.task_id).where(
                    AnnotationTaskRow.teacher_uid == row.uid, AnnotationTaskRow.state.in_(ACTIVE_TASKS)
                )
            )
            if busy:
                raise FailedPrecondition(
                    f"{name} is used by {busy}, which has not ended; cancel it or wait",
                    reason="TEACHER_IN_USE",
                )
            emit_teacher(self.catalog.outbox, session, row, "deleted")
            session.delete(row)

        await self.catalog.outbox.write(self.catalog.db, delete_)
