"""Deployments on the control plane: created against the registry (the version to serve, and for an
adapter its base), read, listed, changed (a new version rolls over), deleted and watched.

Serving processes do the loading (`worker.py`, `placement.py`); a deployment's state follows from
theirs.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.kit.auth import parse_in_project, require_project
from services.kit.db import Database, keyset_page
from services.kit.errors import AlreadyExists, InvalidArgument, NotFound
from services.kit.names import PROJECT, PageTokens, check_id, check_text, page_size
from services.kit.outbox import Outbox
from services.kit.peers import Peers
from services.kit.times import utcnow
from services.kit.watch import ChangeFeed, changes
from services.serve import placement
from services.serve.convert import DEPLOYMENT, ENGINES, FINAL_STATES, deployment_name, deployment_to_proto
from services.serve.repo import DeploymentRow, ReplicaRow
from tuneforge.events.v1 import serve_events_pb2
from tuneforge.registry.v1 import model_pb2
from tuneforge.serve.v1 import deployment_pb2

MODEL_VERSION = re.compile(r"^projects/[^/]+/models/[^/]+/versions/[^/]+$")
MAX_REPLICAS = 16
MAX_CONCURRENT = 256
UPDATABLE = {
    "display_name",
    "model_version",
    "replicas",
    "generation",
    "max_context",
    "max_concurrent_requests",
    "logging",
    "pii_masking",
}


@dataclass(frozen=True)
class Served:
    """What a deployment's model reference resolves to."""

    version: str
    base: str  # a LoRA adapter's base model version, else ""


def check_settings(
    d: deployment_pb2.Deployment, paths: set[str], prefix: str = "deployment"
) -> dict[str, Any]:
    """The settings named in `paths`, checked, as row values."""
    out: dict[str, Any] = {}
    if "display_name" in paths:
        out["display_name"] = check_text(d.display_name, f"{prefix}.display_name", 200)
    if "replicas" in paths:
        if not 0 <= d.replicas <= MAX_REPLICAS:
            raise InvalidArgument.field(
                f"{prefix}.replicas", f"must be between 0 and {MAX_REPLICAS} (0 stops it)"
            )
        out["replicas"] = d.replicas
    if "max_context" in paths:
        if not 0 <= d.max_context <= 1 << 20:
            raise InvalidArgument.field(
                f"{prefix}.max_context", "must be between 0 (the model's) and 1048576 tokens"
            )
        out["max_context"] = d.max_context
    if "max_concurrent_requests" in paths:
        value = d.max_concurrent_requests or 8
        if not 1 <= value <= MAX_CONCURRENT:
            raise InvalidArgument.field(
                f"{prefix}.max_concurrent_requests", f"must be between 1 and {MAX_CONCURRENT}"
            )
        out["max_concurrent_requests"] = value
    if "generation" in paths:
        out["generation"] = check_generation(d.generation, f"{prefix}.generation")
    if "logging" in paths:
        out["logging"] = d.logging if d.HasField("logging") else True
    if "pii_masking" in paths:
        out["pii_masking"] = d.pii_masking
    return out


def check_generation(g: deployment_pb2.GenerationDefaults, prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if g.HasField("temperature"):
        if not (math.isfinite(g.temperature) and 0 <= g.temperature <= 2):
            raise InvalidArgument.field(f"{prefix}.temperature", "must be between 0 and 2")
        out["temperature"] = g.temperature
    if g.HasField("top_p"):
        if not (math.isfinite(g.top_p) and 0 < g.top_p <= 1):
            raise InvalidArgument.field(f"{prefix}.top_p", "must be above 0 and at most 1")
        out["top_p"] = g.top_p
    if g.max_tokens:
        if not 1 <= g.max_tokens <= 8192:
            raise InvalidArgument.field(f"{prefix}.max_tokens", "must be between 1 and 8192")
        out["max_tokens"] = g.max_tokens
    return out


CACHE_SECONDS = 1.0


class Deployments:
    def __init__(
        self, db: Database, outbox: Outbox, page_tokens: PageTokens, peers: Peers, feed: ChangeFeed
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.page_tokens = page_tokens
        self.peers = peers
        self.feed = feed
        # Deployments as calls see them, re-read at most every CACHE_SECONDS (changes made here
        # clear it at once; changes made by another instance of the service show within that time).
        self._for_calls: dict[str, tuple[float, DeploymentRow]] = {}

    async def resolve(self, project: str, ref: str, field: str) -> Served:
        """The version to serve (an alias resolves now), and for an adapter its registered base."""
        if not MODEL_VERSION.match(ref) or ref.split("/")[1] != project:
            raise InvalidArgument.field(
                field, f"{ref!r} is not a model version (or alias) of project {project}"
            )
        version = await self.peers.model_version(ref, field)
        if version.kind == model_pb2.MODEL_VERSION_KIND_FULL:
            return Served(version.name, "")
        if version.kind != model_pb2.MODEL_VERSION_KIND_LORA_ADAPTER:
            raise InvalidArgument.field(
                field, f"{version.name} is not a model that can generate (no config and weights)"
            )
        base = version.lineage.base_model
        if not MODEL_VERSION.match(base):
            raise InvalidArgument.field(
                field, f"{version.name} is a LoRA adapter whose base model is not a registered version"
            )
        base_version = await self.peers.model_version(base, field)
        return Served(version.name, base_version.name)

    def emit(self, session: Session, row: DeploymentRow, verb: str) -> deployment_pb2.Deployment:
        proto = deployment_to_proto(row)
        self.outbox.emit(
            session,
            "deployment",
            verb,
            proto.name,
            row.project,
            serve_events_pb2.DeploymentEvent(deployment=proto),
        )
        return proto

    async def create(
        self, parent: str, deployment_id: str, d: deployment_pb2.Deployment, request_id: str
    ) -> deployment_pb2.Deployment:
        project = PROJECT.parse(parent, "parent")["project"]
        require_project(project)
        check_id(deployment_id, "deployment_id", what="deployment id")
        check_text(request_id, "request_id", 128)
        if not d.model_version:
            raise InvalidArgument.field(
                "deployment.model_version", "name the model version (or alias) to serve"
            )
        if d.engine and d.engine not in ENGINES:
            raise InvalidArgument.field(
                "deployment.engine", f"{d.engine} is not one of {', '.join(ENGINES.values())}"
            )
        settings = check_settings(
            d, UPDATABLE - {"model_version"} - ({"replicas"} if not d.replicas else set())
        )
        if request_id:
            found = await self.db.run(lambda s: self._by_request(s, project, request_id))
            if found is not None:
                return found
        served = await self.resolve(project, d.model_version, "deployment.model_version")
        defaults: dict[str, Any] = {
            "replicas": 1,
            "generation": {},
            "max_context": 0,
            "max_concurrent_requests": 8,
            "logging": True,
            "pii_masking": False,
        }

        def insert(session: Session) -> deployment_pb2.Deployment:
            if session.scalar(
                select(DeploymentRow.uid).where(
                    DeploymentRow.project == project, DeploymentRow.deployment_id == deployment_id
                )
            ):
                raise AlreadyExists(
                    f"deployment projects/{project}/deployments/{deployment_id} already exists"
                )
            now = utcnow()
            row = DeploymentRow(
                uid=uuid.uuid4().hex,
                project=project,
                deployment_id=deployment_id,
                model_ref=d.model_version,
                desired_version=served.version,
                base_version=served.base,
                serving_version="",
                engine=ENGINES.get(d.engine, "auto"),
                state="creating",
                state_reason="waiting for a serving process that can hold it",
                ready_replicas=0,
                request_id=request_id or None,
                create_time=now,
                update_time=now,
                **{**defaults, **settings, "display_name": settings.get("display_name") or deployment_id},
            )
            session.add(row)
            session.flush()
            placement.refresh(session, self.outbox, row)
            return self.emit(session, row, "created")

        try:
            return await self.outbox.write(self.db, insert)
        except IntegrityError:
            found = await self.db.run(lambda s: self._by_request(s, project, request_id))
            if found is None:
                raise
            return found

    @staticmethod
    def _by_request(session: Session, project: str, request_id: str) -> deployment_pb2.Deployment | None:
        row = session.scalar(
            select(DeploymentRow).where(
                DeploymentRow.project == project, DeploymentRow.request_id == request_id
            )
        )
        return deployment_to_proto(row) if row else None

    def find(self, session: Session, name: str, field: str = "name") -> DeploymentRow:
        parts = parse_in_project(DEPLOYMENT, name, field)
        row = session.scalar(
            select(DeploymentRow).where(
                DeploymentRow.project == parts["project"], DeploymentRow.deployment_id == parts["deployment"]
            )
        )
        if row is None:
            raise NotFound(f"deployment {name} does not exist")
        return row

    async def for_call(self, name: str, field: str) -> DeploymentRow:
        """The deployment a call names (checked against the caller's project every time)."""
        parse_in_project(DEPLOYMENT, name, field)
        cached = self._for_calls.get(name)
        if cached and cached[0] > time.monotonic():
            return cached[1]

        def read(session: Session) -> DeploymentRow:
            row = self.find(session, name, field)
            session.expunge(row)
            return row

        row = await self.db.run(read)
        if len(self._for_calls) > 10_000:
            self._for_calls.clear()
        self._for_calls[name] = (time.monotonic() + CACHE_SECONDS, row)
        return row

    async def get(self, name: str) -> deployment_pb2.Deployment:
        return await self.db.run(lambda s: deployment_to_proto(self.find(s, name)))

    async def list(self, parent: str, size: int, token: str) -> tuple[list[deployment_pb2.Deployment], str]:
        project = PROJECT.parse(parent, "parent")["project"]
        require_project(project)
        size = page_size(size)

        def list_(session: Session) -> tuple[list[deployment_pb2.Deployment], str]:
            rows, next_token = keyset_page(
                session,
                select(DeploymentRow).where(DeploymentRow.project == project),
                tokens=self.page_tokens,
                columns={"create_time": DeploymentRow.create_time},
                order_by="",
                default_order="create_time",
                tie=DeploymentRow.uid,
                size=size,
                token=token,
                context=f"ListDeployments|{project}",
            )
            return [deployment_to_proto(r) for r in rows], next_token

        return await self.db.run(list_)

    async def update(self, d: deployment_pb2.Deployment, mask: Sequence[str]) -> deployment_pb2.Deployment:
        parts = parse_in_project(DEPLOYMENT, d.name, "deployment.name")
        paths = set(mask)
        if not paths:
            raise InvalidArgument.field(
                "update_mask", f"name the fields to change: {', '.join(sorted(UPDATABLE))}"
            )
        if paths - UPDATABLE:
            raise InvalidArgument.field(
                "update_mask",
                f"cannot change {', '.join(sorted(paths - UPDATABLE))}; changeable: {', '.join(sorted(UPDATABLE))}",
            )
        settings = check_settings(d, paths)
        served = None
        if "model_version" in paths:
            served = await self.resolve(parts["project"], d.model_version, "deployment.model_version")

        def update_(session: Session) -> deployment_pb2.Deployment:
            row = self.find(session, d.name, "deployment.name")
            for key, value in settings.items():
                setattr(row, key, value)
            if not row.display_name:
                row.display_name = row.deployment_id
            if served is not None:
                row.model_ref, row.desired_version, row.base_version = (
                    d.model_version,
                    served.version,
                    served.base,
                )
                for replica in session.scalars(
                    select(ReplicaRow).where(ReplicaRow.deployment_uid == row.uid)
                ):
                    replica.reason = ""  # an earlier failed update says nothing of this one
            row.update_time = utcnow()
            session.flush()
            placement.refresh(session, self.outbox, row)
            return self.emit(session, row, "updated")

        self._for_calls.clear()
        return await self.outbox.write(self.db, update_)

    async def delete(self, name: str) -> None:
        def delete_(session: Session) -> None:
            row = self.find(session, name)
            self.emit(session, row, "deleted")
            session.delete(row)

        await self.outbox.write(self.db, delete_)
        self._for_calls.clear()

    async def watch(self, name: str) -> AsyncIterator[deployment_pb2.Deployment]:
        first = await self.get(name)
        async for deployment in changes(
            self.feed, first.name, lambda: self.get(first.name), lambda d: d.state in FINAL_STATES
        ):
            yield deployment


__all__ = ["Deployments", "deployment_name"]
