"""The train service's series on /metrics: jobs by state, the queue by priority (from the jobs
table: what waits, and for how long), and the live workers with their devices."""

from __future__ import annotations

from collections import Counter as Tally
from typing import Any

from prometheus_client import Gauge
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.kit.db import Database
from services.kit.telemetry import set_gauges
from services.kit.times import utcnow
from services.train.repo import JobRow
from services.train.workers import live_workers

JOBS = Gauge("tuneforge_train_jobs", "Training jobs by state", ["state"])
QUEUED = Gauge("tuneforge_train_queued_jobs", "Jobs waiting for a worker (queued or preempted)", ["priority"])
OLDEST_QUEUED = Gauge(
    "tuneforge_train_oldest_queued_job_age_seconds",
    "How long the longest-waiting job of a priority has waited since it was created",
    ["priority"],
)
WORKERS = Gauge("tuneforge_train_workers", "Live training workers", ["accelerator_kind", "busy"])
WORKER_ACCELERATORS = Gauge(
    "tuneforge_train_worker_accelerators",
    "Accelerators a live worker advertises (CPU workers: their device slots)",
    ["worker", "accelerator_kind"],
)


def _read(session: Session) -> dict[str, Any]:
    states = dict(session.execute(select(JobRow.state, func.count()).group_by(JobRow.state)).all())
    waiting = session.execute(
        select(JobRow.priority, func.count(), func.min(JobRow.create_time))
        .where(JobRow.state.in_(("queued", "preempted")))
        .group_by(JobRow.priority)
    ).all()
    return {"states": states, "waiting": waiting, "workers": live_workers(session)}


async def refresh(db: Database) -> int:
    """Read the tables once and set the gauges; returns 0 (for `run_periodically`)."""
    facts = await db.run(_read)
    now = utcnow()
    set_gauges(JOBS, {(state,): float(n) for state, n in facts["states"].items()})
    set_gauges(QUEUED, {(priority,): float(n) for priority, n, _ in facts["waiting"]})
    ages = {}
    for priority, _, oldest in facts["waiting"]:
        if oldest.tzinfo is None:  # SQLite hands back naive UTC times
            oldest = oldest.replace(tzinfo=now.tzinfo)
        ages[(priority,)] = max(0.0, (now - oldest).total_seconds())
    set_gauges(OLDEST_QUEUED, ages)
    kinds = Tally((caps.accelerator_kind, "true" if busy else "false") for _, caps, busy in facts["workers"])
    set_gauges(WORKERS, {labels: float(n) for labels, n in kinds.items()})
    set_gauges(
        WORKER_ACCELERATORS,
        {(name, caps.accelerator_kind): float(caps.accelerators) for name, caps, _ in facts["workers"]},
    )
    return 0
