"""Which serving process holds which deployment, and what a deployment's state is because of it.

Serving processes place deployments themselves (no scheduler to fail): each one, every few
seconds, renews its heartbeat, drops the replicas of processes whose heartbeat stopped, and claims
deployments that have fewer live replicas than they ask for, up to its capacity; a claim is a row
written under a lock on the deployment, so two processes never take the same last replica. A
deployment's state follows from its replicas (`summarize`), recomputed in the transaction that
changes one, with an event when it changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from services.kit.outbox import Outbox
from services.kit.times import as_utc, utcnow
from services.serve.convert import deployment_to_proto
from services.serve.repo import DeploymentRow, ReplicaRow, WorkerRow
from tuneforge.events.v1 import serve_events_pb2

HEARTBEAT_TTL = timedelta(seconds=10)


@dataclass(frozen=True)
class Summary:
    state: str
    reason: str
    ready: int
    serving_version: str


def summarize(deployment: DeploymentRow, replicas: list[ReplicaRow]) -> Summary:
    """A deployment's state from its live replicas (see the module docstring)."""
    if deployment.replicas == 0:
        return Summary("stopped", "replicas is 0", 0, "")
    desired = deployment.desired_version
    ready_desired = [r for r in replicas if r.state == "ready" and r.version == desired]
    ready_other = [r for r in replicas if r.state == "ready" and r.version != desired]
    failed = [r for r in replicas if r.state == "failed" and r.version == desired]
    if ready_other and all(r.reason for r in ready_other):
        # Every replica tried the new version and could not load it: the old one serves on.
        return Summary(
            "failed",
            f"{ready_other[0].reason}; {ready_other[0].version} serves meanwhile",
            len(ready_other),
            ready_other[0].version,
        )
    if ready_other:
        return Summary(
            "updating",
            f"loading {desired}; {ready_other[0].version} serves meanwhile",
            len(ready_other),
            ready_other[0].version,
        )
    if ready_desired:
        reason = (
            ""
            if len(ready_desired) >= deployment.replicas
            else f"{len(ready_desired)} of {deployment.replicas} replicas ready"
        )
        return Summary("ready", reason, len(ready_desired), desired)
    if failed:
        return Summary("failed", failed[0].reason, 0, "")
    loading = [r for r in replicas if r.state == "loading"]
    if loading:
        return Summary("creating", f"loading {desired} on {loading[0].worker}", 0, "")
    engine = f" with the {deployment.engine} engine" if deployment.engine not in ("auto", "") else ""
    return Summary("creating", f"waiting for a serving process{engine} that can hold it", 0, "")


def live_workers(session: Session, now: datetime | None = None) -> dict[str, WorkerRow]:
    cutoff = (now or utcnow()) - HEARTBEAT_TTL
    return {w.name: w for w in session.scalars(select(WorkerRow).where(WorkerRow.heartbeat_time >= cutoff))}


def refresh(session: Session, outbox: Outbox, deployment: DeploymentRow) -> None:
    """Recompute the deployment's state from its live replicas; emit `state_changed` if it moved."""
    alive = live_workers(session)
    replicas = [
        r
        for r in session.scalars(select(ReplicaRow).where(ReplicaRow.deployment_uid == deployment.uid))
        if r.worker in alive
    ]
    summary = summarize(deployment, replicas)
    before = (
        deployment.state,
        deployment.state_reason,
        deployment.ready_replicas,
        deployment.serving_version,
    )
    after = (
        summary.state,
        summary.reason,
        summary.ready,
        summary.serving_version or deployment.serving_version,
    )
    if before == after:
        return
    deployment.state, deployment.state_reason, deployment.ready_replicas, deployment.serving_version = after
    deployment.update_time = utcnow()
    session.flush()
    proto = deployment_to_proto(deployment)
    outbox.emit(
        session,
        "deployment",
        "state_changed",
        proto.name,
        deployment.project,
        serve_events_pb2.DeploymentEvent(deployment=proto),
    )


def heartbeat(session: Session, worker: WorkerRow) -> None:
    row = session.get(WorkerRow, worker.name)
    now = utcnow()
    if row is None:
        session.add(
            WorkerRow(
                name=worker.name,
                address=worker.address,
                engines=worker.engines,
                device=worker.device,
                capacity=worker.capacity,
                heartbeat_time=now,
                start_time=now,
            )
        )
    else:
        row.address, row.engines, row.device, row.capacity = (
            worker.address,
            worker.engines,
            worker.device,
            worker.capacity,
        )
        row.heartbeat_time = now


def drop_dead(session: Session, outbox: Outbox) -> int:
    """Forget serving processes whose heartbeat stopped, and their replicas; returns how many."""
    cutoff = utcnow() - HEARTBEAT_TTL
    dead = [w.name for w in session.scalars(select(WorkerRow).where(WorkerRow.heartbeat_time < cutoff))]
    if not dead:
        return 0
    touched = set(session.scalars(select(ReplicaRow.deployment_uid).where(ReplicaRow.worker.in_(dead))).all())
    session.execute(delete(ReplicaRow).where(ReplicaRow.worker.in_(dead)))
    session.execute(delete(WorkerRow).where(WorkerRow.name.in_(dead)))
    for uid in touched:
        deployment = session.get(DeploymentRow, uid)
        if deployment is not None:
            refresh(session, outbox, deployment)
    return len(dead)


def claim(session: Session, outbox: Outbox, worker: WorkerRow, engines: set[str]) -> list[str]:
    """Take deployments short of replicas, up to this process's capacity; returns their uids."""
    held = set(
        session.scalars(select(ReplicaRow.deployment_uid).where(ReplicaRow.worker == worker.name)).all()
    )
    room = worker.capacity - len(held)
    if room <= 0:
        return []
    alive = live_workers(session)
    taken = []
    candidates = session.scalars(
        select(DeploymentRow).where(DeploymentRow.replicas > 0).order_by(DeploymentRow.create_time)
    ).all()
    for candidate in candidates:
        if len(taken) >= room:
            break
        if candidate.uid in held or not _engine_fits(candidate.engine, engines):
            continue
        deployment = session.get(DeploymentRow, candidate.uid, with_for_update=True)
        if deployment is None:
            continue
        replicas = session.scalars(
            select(ReplicaRow).where(ReplicaRow.deployment_uid == deployment.uid)
        ).all()
        live = [r for r in replicas if r.worker in alive]
        if any(r.state == "failed" and r.version == deployment.desired_version for r in live):
            continue  # this version cannot be loaded; an update brings a new one to try
        if len(live) >= deployment.replicas:
            continue
        session.add(
            ReplicaRow(
                deployment_uid=deployment.uid,
                worker=worker.name,
                state="loading",
                version="",
                reason="",
                update_time=utcnow(),
            )
        )
        session.flush()
        refresh(session, outbox, deployment)
        taken.append(deployment.uid)
    return taken


def _engine_fits(asked: str, engines: set[str]) -> bool:
    return asked == "auto" or asked in engines


def set_replica(
    session: Session,
    outbox: Outbox,
    deployment_uid: str,
    worker: str,
    *,
    state: str,
    version: str,
    reason: str = "",
) -> None:
    replica = session.get(ReplicaRow, (deployment_uid, worker))
    deployment = session.get(DeploymentRow, deployment_uid)
    if replica is None or deployment is None:
        return
    replica.state, replica.version, replica.reason, replica.update_time = state, version, reason, utcnow()
    session.flush()
    refresh(session, outbox, deployment)


def release(session: Session, outbox: Outbox, deployment_uid: str, worker: str) -> None:
    """This process no longer holds the deployment (too many replicas, or stopped)."""
    session.execute(
        delete(ReplicaRow).where(ReplicaRow.deployment_uid == deployment_uid, ReplicaRow.worker == worker)
    )
    deployment = session.get(DeploymentRow, deployment_uid)
    if deployment is not None:
        refresh(session, outbox, deployment)


def is_live(worker: WorkerRow, now: datetime | None = None) -> bool:
    return as_utc(worker.heartbeat_time) >= (now or utcnow()) - HEARTBEAT_TTL
