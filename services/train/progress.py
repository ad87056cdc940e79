"""What a running job reports, stored as it arrives: the runner writes `progress.jsonl` (metrics,
saved checkpoints, data facts, the outcome); the worker reads each complete line, stores metric
points and publishes them, uploads each checkpoint to S3 keeping the newest N plus the best, and
remembers the outcome."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.kit.db import Database
from services.kit.outbox import Outbox
from services.kit.store import ObjectStore
from services.kit.times import utcnow
from services.train.convert import checkpoint_to_proto, job_name, metric_to_proto
from services.train.repo import CheckpointRow, JobRow, MetricRow
from services.train.spec import JobSpec
from tuneforge.events.v1 import train_events_pb2

log = logging.getLogger("tuneforge.worker")
NOT_A_CHECKPOINT_FILE = {"training_args.bin"}  # a pickle of the arguments; never stored or loaded


@dataclass
class Run:
    """What the worker learns about a job while its child runs."""

    done: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    cancelled: bool = False
    preempted: dict[str, Any] | None = None
    checked: dict[str, Any] | None = None
    offset: int = 0
    checkpoints: dict[int, str] = field(default_factory=dict)


class Progress:
    """Stores what the runner reports, for one worker."""

    def __init__(self, db: Database, store: ObjectStore, outbox: Outbox) -> None:
        self.db = db
        self.store = store
        self.outbox = outbox

    async def read(self, row: JobRow, job_dir: Path, run: Run) -> None:
        path = job_dir / "progress.jsonl"
        if not path.exists():
            return
        with path.open() as f:
            f.seek(run.offset)
            chunk = f.read()
        complete, _, _ = chunk.rpartition("\n")
        if not complete:
            return
        run.offset += len(complete.encode()) + 1
        for line in complete.splitlines():
            event = json.loads(line)
            kind = event.pop("type")
            if kind == "metric":
                await self.store_metric(row, event)
            elif kind == "checkpoint":
                await self.store_checkpoint(row, event)
            elif kind == "data":
                await self.db.run(
                    lambda s, e=event: update_job(
                        s, row.uid, total_steps=e["total_steps"], overlength_samples=e["overlength"]
                    )
                )
            elif kind == "restarted":  # Ray Train restarted the group after a worker died
                row.restarts += 1
                await self.db.run(lambda s, n=row.restarts: update_job(s, row.uid, restarts=n))
            elif kind == "done":
                run.done = event
            elif kind == "preempted":
                run.preempted = event
            elif kind == "checked":
                run.checked = event
            elif kind == "error":
                run.error = event

    async def store_metric(self, row: JobRow, event: dict[str, Any]) -> None:
        validation = "validation_loss" in event
        if not validation and event.get("loss") is None:
            return  # a NaN loss: the runner stops the job and says so

        def store(session: Session) -> bool:
            exists = session.scalar(
                select(MetricRow.id).where(
                    MetricRow.job_uid == row.uid,
                    MetricRow.step == event["step"],
                    MetricRow.validation == validation,
                )
            )
            if exists:  # a step trained again after a resume from an older checkpoint
                return False
            metric = MetricRow(
                job_uid=row.uid,
                step=event["step"],
                validation=validation,
                epoch=event.get("epoch", 0.0),
                loss=event.get("loss", 0.0),
                validation_loss=event.get("validation_loss"),
                learning_rate=event.get("learning_rate", 0.0),
                grad_norm=event.get("grad_norm", 0.0),
                tokens_per_second=event.get("tokens_per_second", 0.0),
                extra=event.get("method_metrics") or None,
                sample_ids=event.get("sample_ids") or None,
                time=utcnow(),
            )
            session.add(metric)
            update_job(session, row.uid, current_step=event["step"])
            self.outbox.emit(
                session,
                "job",
                "metrics",
                job_name(row),
                row.project,
                train_events_pb2.TrainingMetricsEvent(
                    training_job=job_name(row), metric_point=metric_to_proto(metric)
                ),
            )
            return True

        if not await self.outbox.write(self.db, store):
            log.info("step trained again", extra={"job": job_name(row), "step": event["step"]})

    async def store_checkpoint(self, row: JobRow, event: dict[str, Any]) -> None:
        step = event["step"]
        folder = Path(event["path"])
        prefix = f"jobs/{row.uid}/checkpoints/step-{step}/"
        paths = await asyncio.to_thread(
            lambda: sorted(
                p for p in folder.rglob("*") if p.is_file() and p.name not in NOT_A_CHECKPOINT_FILE
            )
        )
        files = []
        for path in paths:
            relative = path.relative_to(folder).as_posix()
            await self.store.put_file(prefix + relative, path)
            files.append(
                {
                    "path": relative,
                    "size_bytes": path.stat().st_size,
                    "sha256": await asyncio.to_thread(sha256_of, path),
                }
            )
        keep = JobSpec.from_json(row.spec).hyperparameters.checkpoint_count

        def store(session: Session) -> list[str]:
            existing = session.get(CheckpointRow, (row.uid, step))
            if existing is None:
                session.add(
                    CheckpointRow(
                        job_uid=row.uid,
                        step=step,
                        epoch=event.get("epoch", 0.0),
                        validation_loss=event.get("validation_loss"),
                        best=False,
                        files=files,
                        storage_prefix=prefix,
                        create_time=utcnow(),
                    )
                )
                session.flush()
            rows = list(
                session.scalars(
                    select(CheckpointRow).where(CheckpointRow.job_uid == row.uid).order_by(CheckpointRow.step)
                )
            )
            scored = [c for c in rows if c.validation_loss is not None]
            best = min(scored, key=lambda c: (c.validation_loss, c.step)) if scored else None
            for c in rows:
                c.best = c is best
            kept = set(c.step for c in rows[-keep:]) | ({best.step} if best else set())
            dropped = []
            for c in rows:
                if c.step not in kept:
                    dropped.append(c.storage_prefix)
                    session.delete(c)
            saved = session.get(CheckpointRow, (row.uid, step))
            if saved is not None:
                self.outbox.emit(
                    session,
                    "checkpoint",
                    "saved",
                    f"{job_name(row)}/checkpoints/{step}",
                    row.project,
                    train_events_pb2.CheckpointEvent(
                        training_job=job_name(row), checkpoint=checkpoint_to_proto(saved, job_name(row))
                    ),
                )
            return dropped

        for dropped in await self.outbox.write(self.db, store):
            await self.store.delete_prefix(dropped)
            # The local copy goes too (the folder name matches the step in the S3 prefix).
            step_dropped = dropped.rstrip("/").rsplit("step-", 1)[-1]
            await asyncio.to_thread(shutil.rmtree, folder.parent / f"checkpoint-{step_dropped}", True)


def update_job(session: Session, uid: str, **values: Any) -> None:
    row = session.get(JobRow, uid)
    if row is not None:
        for key, value in values.items():
            setattr(row, key, max(getattr(row, key), value) if key == "current_step" else value)
        row.update_time = utcnow()


def sha256_of(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
