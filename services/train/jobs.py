"""Training jobs on the control plane: validate, queue, report, cancel, watch.

Nothing here imports torch or reads a dataset: a job is checked against facts the other services
give (`facts.py`, `checks.py`) before it may reach a worker, so an impossible job fails here with the
field named, and a peer that cannot be reached makes the call UNAVAILABLE (retryable).
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.kit.access import Access
from services.kit.auth import parse_in_project, require_project
from services.kit.db import Database, keyset_page
from services.kit.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from services.kit.names import PROJECT, NamePattern, PageTokens, check_id, check_text, page_size, parse_filter
from services.kit.outbox import Outbox
from services.kit.peers import Peers
from services.kit.store import ObjectStore
from services.kit.times import utcnow
from services.kit.watch import ChangeFeed
from services.train import checks, workers
from services.train.convert import (
    JOB,
    STATES,
    TERMINAL,
    checkpoint_to_proto,
    job_name,
    job_to_proto,
    metric_to_proto,
)
from services.train.facts import Settings, gather
from services.train.methods import METHODS
from services.train.outputs import NOT_MODEL_FILES, lineage_of, register, version_spec
from services.train.repo import CheckpointRow, JobRow, MetricRow
from services.train.reporting import report_proto
from services.train.spec import spec_from_proto
from tuneforge.events.v1 import train_events_pb2
from tuneforge.train.v1 import train_service_pb2, training_job_pb2

QUEUE_SUBJECT = "tuneforge.train-queue.{priority}"
MODEL = NamePattern("projects/{project}/models/{model}")
FINAL_STATES = (STATES["succeeded"], STATES["failed"], STATES["cancelled"])


def emit_job(
    outbox: Outbox, session: Session, row: JobRow, verb: str = "state_changed"
) -> training_job_pb2.TrainingJob:
    proto = job_to_proto(row)
    outbox.emit(
        session, "job", verb, proto.name, row.project, train_events_pb2.TrainingJobEvent(training_job=proto)
    )
    return proto


def _check_step(value: str, field: str) -> str:
    if not value.isdigit() or len(value) > 12:
        raise InvalidArgument.field(field, f"checkpoint {value!r} is not a step number")
    return value


CHECKPOINT = NamePattern("projects/{project}/trainingJobs/{job}/checkpoints/{step}", {"step": _check_step})


def _check_running_jobs(session: Session, project: str, limit: int) -> None:
    """RESOURCE_EXHAUSTED when the project already has `limit` jobs queued or running (0: no limit)."""
    if not limit:
        return
    active = session.scalar(select(func.count()).where(JobRow.project == project, JobRow.state.not_in(TERMINAL)))
    if active >= limit:
        raise ResourceExhausted(
            f"project {project} has {active} jobs queued or running, its quota's limit; "
            "wait for one to end or cancel one",
            reason="RUNNING_JOBS_QUOTA",
            metadata={"limit": str(limit)},
        )


class TrainingJobs:
    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        page_tokens: PageTokens,
        store: ObjectStore,
        peers: Peers,
        feed: ChangeFeed,
        settings: Settings,
        access: Access | None = None,
    ) -> None:
        self.access = access
        self.db = db
        self.outbox = outbox
        self.page_tokens = page_tokens
        self.store = store
        self.peers = peers
        self.feed = feed
        self.settings = settings

    async def create(
        self, parent: str, job_id: str, job: training_job_pb2.TrainingJob, request_id: str
    ) -> training_job_pb2.TrainingJob:
        project = PROJECT.parse(parent, "parent")["project"]
        require_project(project)
        job_id = (
            check_id(job_id, "training_job_id", what="job id") if job_id else f"job-{uuid.uuid4().hex[:10]}"
        )
        check_text(request_id, "request_id", 128)
        check_text(job.display_name, "training_job.display_name", 200)
        spec = spec_from_proto(job)
        if spec.output_model:
            parts = MODEL.parse(spec.output_model, "training_job.output_model")
            if parts["project"] != project:
                raise InvalidArgument.field(
                    "training_job.output_model", "outputs are registered in the job's own project"
                )
        else:
            spec.output_model = MODEL.format(project=project, model=job_id)
        if request_id:
            existing = await self.db.run(
                lambda s: s.scalar(
                    select(JobRow).where(JobRow.project == project, JobRow.request_id == request_id)
                )
            )
            if existing is not None:
                return job_to_proto(existing)
        facts = await gather(self.peers, project, spec, self.settings)
        counts = checks.job(spec, facts)
        spec.vocab_size = int(facts.base.config.get("vocab_size") or 0)
        limit = int((await self.access.quota(project))["max_running_jobs"]) if self.access else 0

        def insert(session: Session) -> training_job_pb2.TrainingJob:
            _check_running_jobs(session, project, limit)
            if session.scalar(select(JobRow.uid).where(JobRow.project == project, JobRow.job_id == job_id)):
                raise AlreadyExists(f"training job projects/{project}/trainingJobs/{job_id} already exists")
            now = utcnow()
            row = JobRow(
                uid=uuid.uuid4().hex,
                project=project,
                job_id=job_id,
                display_name=job.display_name or job_id,
                state="queued",
                method=spec.method,
                spec=spec.to_json(),
                total_steps=counts["total_steps"],
                overlength_samples=counts["overlength"],
                metrics={},
                attempt=0,
                priority=spec.priority,
                preemptions=0,
                cancel_requested=False,
                request_id=request_id or None,
                create_time=now,
                update_time=now,
            )
            session.add(row)
            session.flush()
            proto = emit_job(self.outbox, session, row, "created")
            self.outbox.enqueue(
                session, QUEUE_SUBJECT.format(priority=spec.priority), row.uid.encode(), f"queue-{row.uid}"
            )
            return proto

        try:
            return await self.outbox.write(self.db, insert)
        except IntegrityError:
            existing = await self.db.run(
                lambda s: s.scalar(
                    select(JobRow).where(JobRow.project == project, JobRow.request_id == request_id)
                )
            )
            if existing is None:
                raise
            return job_to_proto(existing)

    def _find(self, session: Session, name: str, field: str = "name") -> JobRow:
        parts = parse_in_project(JOB, name, field)
        row = session.scalar(
            select(JobRow).where(JobRow.project == parts["project"], JobRow.job_id == parts["job"])
        )
        if row is None:
            raise NotFound(f"training job {name} does not exist")
        return row

    async def get(self, name: str) -> training_job_pb2.TrainingJob:
        def get_(session: Session) -> training_job_pb2.TrainingJob:
            row = self._find(session, name)
            message = job_to_proto(row)
            message.waiting_reason = workers.explain(session, row)
            return message

        return await self.db.run(get_)

    async def workers(self, include_lost: bool) -> list[train_service_pb2.Worker]:
        # Any key may list them (the auth interceptor has refused calls without one).
        return await self.db.run(lambda s: workers.list_workers(s, include_lost))

    async def list(
        self, parent: str, size: int, token: str, filter_text: str
    ) -> tuple[list[training_job_pb2.TrainingJob], str]:
        project = PROJECT.parse(parent, "parent")["project"]
        require_project(project)
        size = page_size(size)
        terms = parse_filter(filter_text, lambda k: k in ("state", "method"))

        def list_(session: Session) -> tuple[list[training_job_pb2.TrainingJob], str]:
            query = select(JobRow).where(JobRow.project == project)
            for key, value in terms:
                if key == "state":
                    if value.lower() not in STATES:
                        raise InvalidArgument.field("filter", f"state is one of {', '.join(STATES)}")
                    query = query.where(JobRow.state == value.lower())
                else:
                    if value not in METHODS:
                        raise InvalidArgument.field("filter", f"method is one of {', '.join(METHODS)}")
                    query = query.where(JobRow.method == value)
            rows, next_token = keyset_page(
                session,
                query,
                tokens=self.page_tokens,
                columns={"create_time": JobRow.create_time},
                order_by="create_time desc",
                default_order="create_time",
                tie=JobRow.uid,
                size=size,
                token=token,
                context=f"ListTrainingJobs|{project}|{filter_text}",
            )
            shown = [job_to_proto(r) for r in rows]
            live = workers.live_workers(session) if any(workers.waits(r) for r in rows) else []
            for row, message in zip(rows, shown, strict=True):
                message.waiting_reason = workers.explain(session, row, live)
            return shown, next_token

        return await self.db.run(list_)

    async def cancel(self, name: str) -> training_job_pb2.TrainingJob:
        def cancel_(session: Session) -> training_job_pb2.TrainingJob:
            row = self._find(session, name)
            if row.state in TERMINAL:
                raise FailedPrecondition(f"{name} is already {row.state}", reason="JOB_FINISHED")
            row.cancel_requested = True
            row.update_time = utcnow()
            if row.state in ("queued", "preempted"):
                row.state = "cancelled"
                row.end_time = utcnow()
                return emit_job(self.outbox, session, row)
            return job_to_proto(row)  # the worker stops the child and records CANCELLED

        return await self.outbox.write(self.db, cancel_)

    async def checkpoints(self, parent: str) -> list[training_job_pb2.Checkpoint]:
        def list_(session: Session) -> list[training_job_pb2.Checkpoint]:
            row = self._find(session, parent, "parent")
            rows = session.scalars(
                select(CheckpointRow).where(CheckpointRow.job_uid == row.uid).order_by(CheckpointRow.step)
            )
            return [checkpoint_to_proto(c, job_name(row)) for c in rows]

        return await self.db.run(list_)

    async def _metric_rows(
        self, parent: str, after_step: int, after_id: int
    ) -> list[tuple[int, training_job_pb2.MetricPoint]]:
        def list_(session: Session) -> list[tuple[int, training_job_pb2.MetricPoint]]:
            row = self._find(session, parent, "parent")
            rows = session.scalars(
                select(MetricRow)
                .where(MetricRow.job_uid == row.uid, MetricRow.step > after_step, MetricRow.id > after_id)
                .order_by(MetricRow.id)
            )
            return [(m.id, metric_to_proto(m)) for m in rows]

        return await self.db.run(list_)

    async def metrics(self, parent: str) -> list[training_job_pb2.MetricPoint]:
        return sorted(
            (p for _, p in await self._metric_rows(parent, -1, 0)),
            key=lambda p: (p.step, p.has_validation_loss),
        )

    async def watch(
        self, name: str, after_step: int
    ) -> AsyncIterator[train_service_pb2.WatchTrainingJobResponse]:
        """What was recorded after `after_step`, then changes as they happen (woken by the job's
        events), until the job ends."""
        cursor = 0
        last_seen: tuple[Any, ...] | None = None

        async def read() -> tuple[training_job_pb2.TrainingJob, list[training_job_pb2.MetricPoint]]:
            nonlocal cursor
            job = await self.get(name)
            rows = await self._metric_rows(name, after_step, cursor)
            if rows:
                cursor = rows[-1][0]
            return job, [p for _, p in rows]

        async for job, points in self.feed.follow(name, read, lambda v: v[0].state in FINAL_STATES):
            for point in points:
                yield train_service_pb2.WatchTrainingJobResponse(metric_point=point)
            key = (job.state, job.current_step, job.total_steps, job.final_model_version, job.error.reason)
            if key != last_seen:
                last_seen = key
                yield train_service_pb2.WatchTrainingJobResponse(training_job=job)
        for _, point in await self._metric_rows(name, after_step, cursor):
            yield train_service_pb2.WatchTrainingJobResponse(metric_point=point)

    async def report(self, name: str) -> training_job_pb2.TrainingReport:
        """The stored report of a finished job, or one computed now from the metric history."""
        row = await self.db.run(lambda s: self._find(s, name))
        return await report_proto(self.db, self.store, row)

    async def register_checkpoint(self, name: str, request_id: str) -> str:
        """Register a kept checkpoint's model files as a version of the job's output model."""
        parts = parse_in_project(CHECKPOINT, name, "name")
        check_text(request_id, "request_id", 128)

        def load(session: Session) -> tuple[JobRow, CheckpointRow]:
            job = self._find(session, JOB.format(project=parts["project"], job=parts["job"]))
            checkpoint = session.get(CheckpointRow, (job.uid, int(parts["step"])))
            if checkpoint is None:
                raise NotFound(f"{name} is not a kept checkpoint; `ListCheckpoints` shows them")
            return job, checkpoint

        job, checkpoint = await self.db.run(load)
        with tempfile.TemporaryDirectory(dir=self.settings.spool_dir) as tmp:
            folder = Path(tmp)
            for entry in checkpoint.files:
                if Path(entry["path"]).name in NOT_MODEL_FILES:
                    continue
                await self.store.get_file(
                    checkpoint.storage_prefix + entry["path"],
                    folder / entry["path"],
                    sha256=entry["sha256"],
                    size_bytes=entry["size_bytes"],
                    label=entry["path"],
                )
            metrics = {"step": float(checkpoint.step)}
            if checkpoint.validation_loss is not None:
                metrics["validation_loss"] = checkpoint.validation_loss
            version = await register(
                self.peers,
                job,
                folder,
                version_spec(
                    f"checkpoint at step {checkpoint.step} of {job_name(job)}",
                    lineage_of(job),
                    tags={"checkpoint_step": str(checkpoint.step)},
                    metrics=metrics,
                ),
                request_id or f"{job.uid}-checkpoint-{checkpoint.step}",
            )
            return version.name
