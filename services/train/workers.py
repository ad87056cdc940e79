"""The workers' heartbeats in the train service's database: each worker writes its row every few
seconds (what it has, the job it runs) and deletes it when it stops; the control plane reads them
to list workers and to say why a queued job waits."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from services.kit.auth import ALL_PROJECTS, principal_var
from services.kit.times import to_timestamp, utcnow
from services.train.convert import job_name
from services.train.placement import Capabilities, is_live, waiting_reason
from services.train.repo import JobRow, WorkerRow
from services.train.spec import JobSpec
from tuneforge.train.v1 import train_service_pb2

FORGET_AFTER = timedelta(hours=1)  # a lost worker's row is dropped after this


def beat(session: Session, name: str, caps: Capabilities, interval: float, job: JobRow | None = None) -> None:
    """Write (or refresh) this worker's row; also forget workers lost long ago."""
    now = utcnow()
    row = session.get(WorkerRow, name)
    if row is None:
        row = WorkerRow(name=name, start_time=now)
        session.add(row)
    row.accelerator_kind = caps.accelerator_kind
    row.accelerators = caps.accelerators
    row.accelerator_memory_bytes = caps.accelerator_memory_bytes
    row.host_memory_bytes = caps.host_memory_bytes
    row.facts = caps.facts()
    row.heartbeat_seconds = interval
    row.heartbeat_time = now
    row.current_job = job.uid if job is not None else ""
    row.current_project = job.project if job is not None else ""
    row.current_job_name = job_name(job) if job is not None else ""
    session.execute(delete(WorkerRow).where(WorkerRow.heartbeat_time < now - FORGET_AFTER))


def leave(session: Session, name: str) -> None:
    session.execute(delete(WorkerRow).where(WorkerRow.name == name))


def live_workers(session: Session) -> list[tuple[str, Capabilities, bool]]:
    """(name, capabilities, busy) of every live worker, by name."""
    now = utcnow()
    rows = session.scalars(select(WorkerRow).order_by(WorkerRow.name))
    return [
        (row.name, Capabilities.of_row(row), bool(row.current_job))
        for row in rows
        if is_live(row.heartbeat_time, row.heartbeat_seconds, now)
    ]


def waits(row: JobRow) -> bool:
    return row.state in ("queued", "preempted")


def explain(session: Session, row: JobRow, live: list[tuple[str, Capabilities, bool]] | None = None) -> str:
    """Why `row` (queued or preempted) waits; empty for a job in another state. `live`: the live
    workers, when the caller read them already (a page of jobs)."""
    if not waits(row):
        return ""
    spec = JobSpec.from_json(row.spec)
    return waiting_reason(spec.resources, spec.tuning, live_workers(session) if live is None else live)


def list_workers(session: Session, include_lost: bool) -> list[train_service_pb2.Worker]:
    """The workers as the caller may see them: a current job is named only to its own project."""
    principal = principal_var.get()
    now = utcnow()
    out = []
    for row in session.scalars(select(WorkerRow).order_by(WorkerRow.name)):
        live = is_live(row.heartbeat_time, row.heartbeat_seconds, now)
        if not live and not include_lost:
            continue
        caps = Capabilities.of_row(row)
        mine = principal is not None and (
            principal.project == row.current_project or principal.project == ALL_PROJECTS
        )
        out.append(
            train_service_pb2.Worker(
                name=f"workers/{row.name}",
                accelerator_kind=caps.accelerator_kind,
                accelerators=caps.accelerators,
                accelerator_memory_bytes=caps.accelerator_memory_bytes,
                host_memory_bytes=caps.host_memory_bytes,
                backends=caps.backends,
                device_names=caps.device_names,
                live=live,
                busy=bool(row.current_job),
                current_job=row.current_job_name if mine else "",
                heartbeat_time=to_timestamp(row.heartbeat_time),
                start_time=to_timestamp(row.start_time),
                versions=caps.versions,
                ray_nodes=caps.ray_nodes,
                ray_accelerators_per_node=caps.ray_accelerators_per_node,
            )
        )
    out.sort(key=lambda w: not w.live)
    return out
