"""The training worker: pulls jobs from the JetStream work queue and runs each in a child process.

    python -m services.train.worker        (or `tuneforge worker`)

For each job it claims the job, gathers the base model and the data (the mixture sampled exactly as
the data service's plan says), resumes from the newest checkpoint when the job was already running
(its previous worker died), starts `services.train.runner`, and while it runs: stores metric points
and publishes them, uploads each checkpoint to S3 keeping the newest N plus the best, sends
in-progress acks, and stops the child promptly on cancel. The message is acked only after the
outcome is stored; a worker that dies stops acking and the job is redelivered to another.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.data import mixing
from services.data.canonical import Kind
from services.kit.bus import TRAIN_QUEUE_STREAM, EventBus
from services.kit.db import Database
from services.kit.logs import configure_logging
from services.kit.outbox import Outbox, OutboxRelay
from services.kit.settings import KitSettings, load_settings
from services.kit.store import ObjectStore
from services.kit.times import utcnow
from services.kit.workqueue import die_with_parent, heartbeat, pull_by_priority, waiting
from services.train import report
from services.train.convert import checkpoint_to_proto, job_name, metric_to_proto
from services.train.jobs import NOT_MODEL_FILES, QUEUE_SUBJECT, assemble_report, emit_job, lineage_of
from services.train.repo import OUTBOX, CheckpointRow, JobRow, MetricRow
from services.train.spec import METHODS, PRIORITIES, JobSpec
from tuneforge.events.v1 import train_events_pb2

log = logging.getLogger("tuneforge.worker")
MIGRATIONS = Path(__file__).parent / "migrations"
NOT_A_CHECKPOINT_FILE = {"training_args.bin"}  # a pickle of the arguments; never stored or loaded


class WorkerSettings(KitSettings):
    registry_endpoint: str
    data_endpoint: str
    worker_api_key: SecretStr = Field(description="the key the worker uses to read data and register models")
    worker_name: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    train_work_dir: Path = Field(default_factory=lambda: Path(tempfile.gettempdir()) / "tuneforge-worker")
    train_ack_wait_seconds: float = Field(60.0, ge=2)
    train_cancel_poll_seconds: float = Field(1.0, gt=0)
    train_preempt_grace_seconds: float = Field(
        2.0, ge=0, description="how long a normal job must wait before it preempts an idle job"
    )


class Stopping(Exception):
    """The worker is shutting down: leave the job to be redelivered."""


@dataclass
class Run:
    """What the worker learns about a job while its child runs."""

    done: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    cancelled: bool = False
    preempted: dict[str, Any] | None = None
    offset: int = 0
    checkpoints: dict[int, str] = field(default_factory=dict)


class Worker:
    def __init__(
        self, settings: WorkerSettings, db: Database, store: ObjectStore, bus: EventBus, outbox: Outbox
    ) -> None:
        self.settings = settings
        self.db = db
        self.store = store
        self.bus = bus
        self.outbox = outbox
        self.stopping = asyncio.Event()
        self.child: asyncio.subprocess.Process | None = None
        self._niced = False

    # -- the queue -----------------------------------------------------------------------------

    async def run(self) -> None:
        log.info("worker ready", extra={"worker": self.settings.worker_name})
        # A consumer of every priority at once (before priorities existed) would overlap the
        # per-priority ones, which a work-queue stream refuses.
        with contextlib.suppress(Exception):
            await self.bus.js.delete_consumer(TRAIN_QUEUE_STREAM, "train-workers")
        await pull_by_priority(
            self.bus,
            stream=TRAIN_QUEUE_STREAM,
            queues=[(QUEUE_SUBJECT.format(priority=p), f"train-{p}") for p in PRIORITIES],
            ack_wait=self.settings.train_ack_wait_seconds,
            handle=self.handle,
            stopping=self.stopping,
        )

    async def handle(self, message: Any) -> None:
        uid = message.data.decode()
        row = await self.outbox.write(self.db, lambda s: self._claim(s, uid))
        if row is None:
            await message.ack()
            return
        heartbeat_task = asyncio.create_task(heartbeat(message, self.settings.train_ack_wait_seconds / 3))
        job_dir = self.settings.train_work_dir / uid
        try:
            outcome = await self.execute(row, job_dir)
            if outcome["state"] != "preempted":
                await self._store_report(row)
            await self.outbox.write(self.db, lambda s: self._finish(s, uid, outcome))
            await message.ack()
            log.info("job ended", extra={"job": job_name(row), "state": outcome["state"]})
        except Stopping:
            await message.nak(delay=1)
            log.info("job handed back for redelivery", extra={"job": job_name(row)})
        except Exception as exc:
            log.exception("job failed in the worker", extra={"job": job_name(row)})
            outcome = {"state": "failed", "reason": "WORKER_ERROR", "message": f"{type(exc).__name__}: {exc}"}
            await self.outbox.write(self.db, lambda s: self._finish(s, uid, outcome))
            await message.ack()
        finally:
            heartbeat_task.cancel()
            shutil.rmtree(job_dir, ignore_errors=True)

    async def _store_report(self, row: JobRow) -> None:
        """report.json and loss.png under jobs/{uid}/report/; a failure here never fails the job."""
        try:
            built = await assemble_report(self.db, self.store, row)
            if not built["curves"]["steps"] and not built["curves"]["validation_steps"]:
                return  # nothing was trained: no curves to draw
            image = await asyncio.to_thread(report.chart, built)
            prefix = f"jobs/{row.uid}/report/"
            await self.store.put_bytes(prefix + "loss.png", image, "image/png")
            await self.store.put_bytes(
                prefix + "report.json", json.dumps(built, ensure_ascii=False).encode(), "application/json"
            )
        except Exception:
            log.warning(
                "the training report could not be stored", extra={"job": job_name(row)}, exc_info=True
            )

    def _claim(self, session: Session, uid: str) -> JobRow | None:
        row = session.get(JobRow, uid, with_for_update=True)
        if row is None or row.state in ("succeeded", "failed", "cancelled"):
            return None
        if row.cancel_requested:
            row.state, row.end_time = "cancelled", utcnow()
            emit_job(self.outbox, session, row)
            return None
        row.state = "running"
        row.attempt += 1
        row.worker = self.settings.worker_name
        row.start_time = row.start_time or utcnow()
        row.update_time = utcnow()
        emit_job(self.outbox, session, row)
        session.flush()
        session.expunge(row)
        return row

    def _finish(self, session: Session, uid: str, outcome: dict[str, Any]) -> None:
        row = session.get(JobRow, uid, with_for_update=True)
        if row is None:
            return
        if outcome["state"] == "preempted":
            # Back in the idle queue (a new message: the current one is acked), to resume from the
            # checkpoint just stored.
            row.state = "preempted"
            row.preemptions += 1
            row.worker = ""
            row.update_time = utcnow()
            emit_job(self.outbox, session, row)
            self.outbox.enqueue(
                session,
                QUEUE_SUBJECT.format(priority=row.priority),
                row.uid.encode(),
                f"queue-{row.uid}-{row.preemptions}",
            )
            return
        row.state = outcome["state"]
        row.error_reason = outcome.get("reason", "")
        row.error_message = outcome.get("message", "")
        row.final_model_version = outcome.get("final_model_version", row.final_model_version)
        row.best_model_version = outcome.get("best_model_version", row.best_model_version)
        row.metrics = outcome.get("metrics", row.metrics)
        row.end_time = row.update_time = utcnow()
        emit_job(self.outbox, session, row)

    # -- one job -------------------------------------------------------------------------------

    def _client(self, project: str) -> Any:
        from tuneforge import Client

        return Client(
            {"registry": self.settings.registry_endpoint, "data": self.settings.data_endpoint},
            api_key=self.settings.worker_api_key.get_secret_value(),
            project=project,
        )

    def _prepare(self, row: JobRow, job_dir: Path) -> dict[str, Any]:
        """Base model (and parent adapter, reward model), mixture with replay, validation rows and
        spec into `job_dir` (on a worker thread). Returns the mixture's facts."""
        import pyarrow.parquet as pq

        spec = JobSpec.from_json(row.spec)
        seed = spec.hyperparameters.seed
        shutil.rmtree(job_dir, ignore_errors=True)
        job_dir.mkdir(parents=True)
        (job_dir / "spec.json").write_text(json.dumps(spec.to_json()))
        parent = spec.parent or {}
        with self._client(row.project) as client:
            if spec.base_model.startswith("local:///"):
                shutil.copytree(Path(spec.base_model.removeprefix("local://")), job_dir / "base")
            elif parent.get("adapter"):
                client.models.download(parent["base_model"], job_dir / "base")
                client.models.download(parent["version"], job_dir / "parent_adapter")
            else:
                client.models.download(spec.base_model, job_dir / "base")
            if spec.method_parameters.reward_model:
                client.models.download(spec.method_parameters.reward_model, job_dir / "reward_model")

            def source(ref: dict[str, Any]) -> mixing.Source:
                target = job_dir / "data" / ref["dataset_version"].replace("/", "_")
                version = client.data.download(ref["dataset_version"], target)
                parts = version.name.split("/")
                rows = pq.read_table(target / "data.parquet").to_pylist()
                return mixing.Source(f"{parts[3]}/v{parts[5]}", rows, ref["sampling_rate"])

            kind = Kind(METHODS[spec.method])
            sources = [source(ref) for ref in spec.training_data]
            train = mixing.materialize(sources, mixing.plan(sources, kind, seed), seed)
            validation: list[dict[str, Any]] = []
            if spec.validation_data:
                validation = source({"dataset_version": spec.validation_data, "sampling_rate": 1}).rows
            elif spec.validation_split:
                train, validation = mixing.split(train, spec.validation_split, seed)
            facts: dict[str, Any] = {
                "sources": [
                    {"label": s.label, "rows": len(s.rows), "rate": s.sampling_rate} for s in sources
                ],
                "new_rows": len(train),
                "validation_rows": len(validation),
            }
            if spec.replay_share:
                # Replay: the parent's own mixture (its datasets at their rates, its seed), sampled so
                # that replayed rows make `replay_share` of the training rows.
                refs = parent["datasets"]
                parent_sources = [source(ref) for ref in refs]
                labels = {
                    s.label: ref["dataset_version"] for s, ref in zip(parent_sources, refs, strict=True)
                }
                pool = mixing.materialize(parent_sources, mixing.plan(parent_sources, kind, seed), seed)
                count = round(len(train) * spec.replay_share / (1 - spec.replay_share))
                rng = random.Random(seed)
                picks = rng.sample(pool, count) if count <= len(pool) else rng.choices(pool, k=count)
                replay = [{**r, "id": f"replay:{r['id']}"} for r in picks]
                per_label: dict[str, int] = {}
                for r in picks:
                    label = r["id"].split(":", 1)[0]
                    per_label[label] = per_label.get(label, 0) + 1
                sizes = {s.label: len(s.rows) for s in parent_sources}
                facts["replay"] = {
                    "parent": parent["version"],
                    "rows": len(replay),
                    "share": spec.replay_share,
                    "datasets": [
                        {
                            "dataset_version": labels[label],
                            "rows": n,
                            "sampling_rate": round(n / max(1, sizes[label]), 4),
                        }
                        for label, n in sorted(per_label.items())
                    ],
                    "ids": [r["id"] for r in replay],
                }
                train = train + replay
                rng.shuffle(train)
            facts["train_rows"] = len(train)
        for name, rows in (("train.jsonl", train), ("validation.jsonl", validation)):
            if rows:
                (job_dir / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        (job_dir / "mixture.json").write_text(json.dumps(facts, ensure_ascii=False))
        return facts

    async def _resume_point(self, row: JobRow, job_dir: Path) -> None:
        """Download the newest stored checkpoint, so the runner continues from it."""
        newest = await self.db.run(
            lambda s: s.scalar(
                select(CheckpointRow)
                .where(CheckpointRow.job_uid == row.uid)
                .order_by(CheckpointRow.step.desc())
                .limit(1)
            )
        )
        if newest is None:
            return
        target = job_dir / "checkpoints" / f"checkpoint-{newest.step}"
        target.mkdir(parents=True)
        for entry in newest.files:
            await self.store.get_file(
                newest.storage_prefix + entry["path"],
                target / entry["path"],
                sha256=entry["sha256"],
                size_bytes=entry["size_bytes"],
                label=entry["path"],
            )
        (job_dir / "resume").write_text(str(target))
        log.info("resuming from checkpoint", extra={"job": job_name(row), "step": newest.step})

    async def execute(self, row: JobRow, job_dir: Path) -> dict[str, Any]:
        facts = await asyncio.to_thread(self._prepare, row, job_dir)
        await self.store.put_file(
            f"jobs/{row.uid}/mixture.json", job_dir / "mixture.json", "application/json"
        )
        if facts.get("replay"):
            replayed = [
                {"dataset_version": d["dataset_version"], "sampling_rate": d["sampling_rate"]}
                for d in facts["replay"]["datasets"]
            ]
            row.spec = {**row.spec, "parent": {**row.spec["parent"], "replayed": replayed}}
            await self.db.run(lambda s: _update(s, row.uid, spec=row.spec))
        await self._resume_point(row, job_dir)
        logfile = (job_dir / "runner.log").open("ab")
        self.child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.train.runner",
            str(job_dir),
            stdout=logfile,
            stderr=logfile,
            preexec_fn=die_with_parent,
            env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
        )
        # Uploads, hashing and bookkeeping yield the CPU to training: the worker lowers its own
        # priority once the child (which keeps the normal priority) has started.
        if not self._niced:
            with contextlib.suppress(OSError):
                os.nice(10)
            self._niced = True
        run = Run()
        last_cancel_check = 0.0
        normal_waiting_since: float | None = None
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.child.wait(), timeout=0.5)
                await self._read_progress(row, job_dir, run)
                if self.child.returncode is not None:
                    break
                if self.stopping.is_set():
                    await self._stop_child()
                    raise Stopping
                if time.monotonic() - last_cancel_check > self.settings.train_cancel_poll_seconds:
                    last_cancel_check = time.monotonic()
                    if await self.db.run(lambda s: s.get(JobRow, row.uid).cancel_requested):
                        run.cancelled = True
                        await self._stop_child()
                    elif row.priority == "idle" and not (job_dir / "preempt").exists():
                        # A normal job waiting (no other worker took it within the grace period)
                        # takes this worker: the runner checkpoints and stops.
                        if await waiting(self.bus, TRAIN_QUEUE_STREAM, "train-normal"):
                            normal_waiting_since = normal_waiting_since or time.monotonic()
                            if (
                                time.monotonic() - normal_waiting_since
                                >= self.settings.train_preempt_grace_seconds
                            ):
                                (job_dir / "preempt").write_text("a normal job is waiting")
                                log.info("preempting idle job", extra={"job": job_name(row)})
                        else:
                            normal_waiting_since = None
        finally:
            logfile.close()
        if run.cancelled:
            return {"state": "cancelled"}
        if run.preempted is not None and not run.error:
            return {"state": "preempted", "step": run.preempted["step"]}
        if run.error:
            return {"state": "failed", "reason": run.error["reason"], "message": run.error["message"]}
        if not run.done:
            tail = (job_dir / "runner.log").read_text(errors="replace")[-1500:]
            return {
                "state": "failed",
                "reason": "TRAINING_CRASHED",
                "message": f"the training process exited with {self.child.returncode}: {tail}",
            }
        return await asyncio.to_thread(self._register, row, job_dir, run)

    async def _stop_child(self) -> None:
        if self.child is None or self.child.returncode is not None:
            return
        self.child.terminate()
        try:
            await asyncio.wait_for(self.child.wait(), timeout=10)
        except TimeoutError:
            self.child.kill()
            await self.child.wait()

    async def _read_progress(self, row: JobRow, job_dir: Path, run: Run) -> None:
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
                await self._store_metric(row, event)
            elif kind == "checkpoint":
                await self._store_checkpoint(row, event)
            elif kind == "data":
                await self.db.run(
                    lambda s, e=event: _update(
                        s, row.uid, total_steps=e["total_steps"], overlength_samples=e["overlength"]
                    )
                )
            elif kind == "done":
                run.done = event
            elif kind == "preempted":
                run.preempted = event
            elif kind == "error":
                run.error = event

    async def _store_metric(self, row: JobRow, event: dict[str, Any]) -> None:
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
            _update(session, row.uid, current_step=event["step"])
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

    async def _store_checkpoint(self, row: JobRow, event: dict[str, Any]) -> None:
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
                    "sha256": await asyncio.to_thread(_sha256, path),
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

    def _register(self, row: JobRow, job_dir: Path, run: Run) -> dict[str, Any]:
        """Register the final model, and the best checkpoint when it differs, with lineage."""
        from tuneforge.errors import AlreadyExistsError

        spec = JobSpec.from_json(row.spec)
        done = run.done or {}
        model_id = spec.output_model.rsplit("/", 1)[-1]
        metrics = {
            "train_loss": done["train_loss"],
            "steps": float(done["step"]),
            "tokens_per_second": done.get("tokens_per_second", 0.0),
        }
        if done.get("best_validation_loss") is not None:
            metrics["best_validation_loss"] = done["best_validation_loss"]
        lineage = lineage_of(row)
        outcome: dict[str, Any] = {"state": "succeeded", "metrics": metrics}
        with self._client(row.project) as client:
            with contextlib.suppress(AlreadyExistsError):
                client.models.create(
                    model_id,
                    display_name=f"{row.display_name} outputs",
                    tags={"source_job": row.job_id},
                    request_id=f"{row.uid}-model",
                )
            final = client.models.upload(
                model_id,
                job_dir / "final",
                description=f"final model of {job_name(row)}",
                metrics=metrics,
                tags={
                    "method": spec.method,
                    "tuning": spec.tuning,
                    # The eval service evaluates versions carrying these when they are registered.
                    **(
                        {
                            "auto_eval.dataset": spec.auto_evaluation["dataset_version"],
                            "auto_eval.metrics": ",".join(spec.auto_evaluation["metrics"]),
                        }
                        if spec.auto_evaluation
                        else {}
                    ),
                },
                lineage=lineage,
                request_id=f"{row.uid}-final",
            )
            outcome["final_model_version"] = final.name
            best = done.get("best_checkpoint")
            if (
                best
                and not spec.hyperparameters.early_stopping_patience
                and Path(best).name != f"checkpoint-{done['step']}"
                and Path(best).exists()
            ):
                best_dir = job_dir / "best"
                best_dir.mkdir()
                for path in Path(best).iterdir():
                    if path.is_file() and path.name not in NOT_MODEL_FILES:
                        shutil.copy(path, best_dir / path.name)
                version = client.models.upload(
                    model_id,
                    best_dir,
                    description=f"best checkpoint (validation loss) of {job_name(row)}",
                    tags={"checkpoint": Path(best).name, "selection": "best_validation_loss"},
                    lineage=lineage,
                    metrics={"validation_loss": done["best_validation_loss"]},
                    request_id=f"{row.uid}-best",
                )
                outcome["best_model_version"] = version.name
        return outcome


def _update(session: Session, uid: str, **values: Any) -> None:
    row = session.get(JobRow, uid)
    if row is not None:
        for key, value in values.items():
            setattr(row, key, max(getattr(row, key), value) if key == "current_step" else value)
        row.update_time = utcnow()


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


async def main() -> None:
    settings = load_settings(WorkerSettings)
    configure_logging(settings.log_level, settings.log_format)
    db = Database(settings.database_url, schema="train")
    await asyncio.to_thread(db.migrate, MIGRATIONS)
    store = ObjectStore(
        settings.s3_endpoint,
        settings.s3_access_key.get_secret_value(),
        settings.s3_secret_key.get_secret_value(),
        settings.s3_bucket,
        secure=settings.s3_secure,
        region=settings.s3_region,
    )
    bus = await EventBus.connect(settings.nats_url, name=f"tuneforge-worker-{settings.worker_name}")
    outbox = Outbox(OUTBOX, "train")
    relay = OutboxRelay(db, outbox, bus)
    relay.start()
    settings.train_work_dir.mkdir(parents=True, exist_ok=True)
    worker = Worker(settings, db, store, bus, outbox)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stopping.set)
    try:
        await worker.run()
        log.info("worker stopping", extra={"worker": settings.worker_name})
    finally:
        await relay.stop()
        await bus.close()
        db.dispose()


if __name__ == "__main__":
    asyncio.run(main())
