"""The training worker: pulls jobs from the JetStream work queue and runs each in a child process.

    python -m services.train.worker        (or `tuneforge worker`)

For each job it claims the job, prepares its folder (`preparation.py`: the base model from the
registry, the mixture from the data service), resumes from the newest checkpoint when the job was
already running (its previous worker died), starts `services.train.runner` (under torchrun for
several processes, or the Ray driver for several nodes: `launch.py`), and while it runs
stores what the runner reports (`progress.py`), sends in-progress acks, stops the child promptly on
cancel and checkpoints an idle job a normal one is waiting for. The message is acked only after the
outcome is stored; a worker that dies stops acking and the job is redelivered to another. A job
that needs what this worker lacks (`placement.py`) goes back to the queue at once; the worker's
heartbeat (`workers.py`) says what it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.kit.bus import TRAIN_QUEUE_STREAM, EventBus
from services.kit.db import Database
from services.kit.outbox import Outbox
from services.kit.peers import Peers
from services.kit.server import open_runtime, run_until_signalled
from services.kit.settings import KitSettings, load_settings
from services.kit.store import ObjectStore
from services.kit.times import utcnow
from services.kit.workqueue import hand_back_on_outage, heartbeat, pull_by_priority
from services.train import launch, preparation, workers
from services.train.convert import TERMINAL, job_name
from services.train.jobs import QUEUE_SUBJECT, emit_job
from services.train.outputs import NOT_MODEL_FILES, lineage_of, register, version_spec
from services.train.placement import Capabilities, detect, misfit
from services.train.progress import Progress, Run, update_job
from services.train.repo import OUTBOX, CheckpointRow, JobRow
from services.train.reporting import store_report
from services.train.spec import PRIORITIES, JobSpec

log = logging.getLogger("tuneforge.worker")
MIGRATIONS = Path(__file__).parent / "migrations"


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
    train_cpu_devices: int = Field(
        1, ge=1, le=64, description="without CUDA: how many processes (gloo DDP) one job may use"
    )
    train_heartbeat_seconds: float = Field(5.0, gt=0, description="how often the worker says what it has")
    train_max_restarts: int = Field(
        2, ge=0, description="restarts of a job's processes from its newest checkpoint after one died"
    )
    train_ray_address: str = Field(
        "", description="a Ray cluster (ray://… or host:port) that runs the jobs of several nodes"
    )
    train_misfit_retry_seconds: float = Field(
        2.0, gt=0, description="how soon a job this worker cannot run is offered to the workers again"
    )


RAY_PROBE_SECONDS = 60.0
MISFIT = "misfit"  # `_claim`'s answer for a job that needs what this worker lacks


class Stopping(Exception):
    """The worker is shutting down: leave the job to be redelivered."""


class Worker:
    def __init__(
        self,
        settings: WorkerSettings,
        db: Database,
        store: ObjectStore,
        bus: EventBus,
        outbox: Outbox,
        peers: Peers,
        caps: Capabilities,
    ) -> None:
        self.settings = settings
        self.caps = caps
        self.current: JobRow | None = None
        self.db = db
        self.store = store
        self.bus = bus
        self.outbox = outbox
        self.peers = peers
        self.progress = Progress(db, store, outbox)
        self.stopping = asyncio.Event()
        self.child: asyncio.subprocess.Process | None = None
        self._niced = False

    # -- the queue -----------------------------------------------------------------------------

    async def run(self) -> None:
        await self._beat()  # listed (and its jobs explained) before it takes the first job
        beats = asyncio.create_task(self._heartbeats())
        log.info("worker ready", extra={"worker": self.settings.worker_name, "devices": self.caps.describe()})
        try:
            await self._pull()
        finally:
            beats.cancel()
            with contextlib.suppress(Exception):
                await self.db.run(lambda s: workers.leave(s, self.settings.worker_name))

    async def _beat(self) -> None:
        name, interval, job = self.settings.worker_name, self.settings.train_heartbeat_seconds, self.current
        await self.db.run(lambda s: workers.beat(s, name, self.caps, interval, job))

    async def _heartbeats(self) -> None:
        last_probe = time.monotonic()
        while True:
            await asyncio.sleep(self.settings.train_heartbeat_seconds)
            if self.settings.train_ray_address and time.monotonic() - last_probe > RAY_PROBE_SECONDS:
                last_probe = time.monotonic()  # the cluster may have grown or shrunk
                self.caps = await asyncio.to_thread(capabilities, self.settings)
            try:
                await self._beat()
            except Exception:
                log.warning("heartbeat not stored; retrying", exc_info=True)

    async def _pull(self) -> None:
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
        if row == MISFIT:  # back to the queue for a worker that has what it needs
            delay = self.settings.train_misfit_retry_seconds
            await message.nak(delay=delay)
            # Stay away from the queue until it is offered again, so it goes to another worker
            # (one that fetches as eagerly as this one would otherwise never get it).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=delay + 0.5)
            return
        self.current = row
        with contextlib.suppress(Exception):
            await self._beat()
        heartbeat_task = asyncio.create_task(heartbeat(message, self.settings.train_ack_wait_seconds / 3))
        job_dir = self.settings.train_work_dir / uid
        mixtures: list[str] = []
        try:
            outcome = await self.execute(row, job_dir, mixtures)
            if outcome["state"] != "preempted":
                await store_report(self.db, self.store, row)
            await self.outbox.write(self.db, lambda s: self._finish(s, uid, outcome))
            await message.ack()
            log.info("job ended", extra={"job": job_name(row), "state": outcome["state"]})
        except Stopping:
            await message.nak(delay=1)
            log.info("job handed back for redelivery", extra={"job": job_name(row)})
            return
        except Exception as exc:
            if await hand_back_on_outage(message, exc, job_name(row)):
                return  # resumed from its newest stored checkpoint once the store answers
            log.exception("job failed in the worker", extra={"job": job_name(row)})
            outcome = {"state": "failed", "reason": "WORKER_ERROR", "message": f"{type(exc).__name__}: {exc}"}
            await self.outbox.write(self.db, lambda s: self._finish(s, uid, outcome))
            await message.ack()
        finally:
            heartbeat_task.cancel()
            self.current = None
            await asyncio.to_thread(shutil.rmtree, job_dir, True)
        if outcome["state"] in TERMINAL:
            with contextlib.suppress(Exception):  # best effort: the data service sweeps the rest
                await preparation.release(self.peers, mixtures)

    def _claim(self, session: Session, uid: str) -> JobRow | str | None:
        row = session.get(JobRow, uid, with_for_update=True)
        if row is None or row.state in TERMINAL:
            return None
        if row.cancel_requested:
            row.state, row.end_time = "cancelled", utcnow()
            emit_job(self.outbox, session, row)
            return None
        if misfit(JobSpec.from_json(row.spec).resources, self.caps):
            return MISFIT
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
        for entry in newest.files:
            local = target / entry["path"]
            if local.is_file() and local.stat().st_size == entry["size_bytes"]:
                continue  # a restart on this worker: the folder it uploaded is still here
            await self.store.get_file(
                newest.storage_prefix + entry["path"],
                target / entry["path"],
                sha256=entry["sha256"],
                size_bytes=entry["size_bytes"],
                label=entry["path"],
            )
        (job_dir / "resume").write_text(str(target))
        log.info("resuming from checkpoint", extra={"job": job_name(row), "step": newest.step})

    async def execute(self, row: JobRow, job_dir: Path, mixtures: list[str]) -> dict[str, Any]:
        facts = await preparation.prepare(self.peers, row, job_dir)
        mixtures.extend(facts.get("mixtures", []))
        await self.store.put_file(
            f"jobs/{row.uid}/mixture.json", job_dir / "mixture.json", "application/json"
        )
        if facts.get("replay"):
            replayed = [
                {"dataset_version": d["dataset_version"], "sampling_rate": d["sampling_rate"]}
                for d in facts["replay"]["datasets"]
            ]
            row.spec = {**row.spec, "parent": {**row.spec["parent"], "replayed": replayed}}
            await self.db.run(lambda s: update_job(s, row.uid, spec=row.spec))
        await self._resume_point(row, job_dir)
        run = await self._run_child(row, job_dir)
        while self._restartable(run) and row.restarts < self.settings.train_max_restarts:
            # A process died (killed, or crashed without saying why): the job goes on from its
            # newest stored checkpoint, on this worker, with the same data position.
            row.restarts += 1
            await self.db.run(lambda s: update_job(s, row.uid, restarts=row.restarts))
            log.warning(
                "a training process died; restarting from the newest checkpoint",
                extra={"job": job_name(row), "restart": row.restarts, "code": self.child.returncode},
            )
            await self._resume_point(row, job_dir)
            run = await self._run_child(row, job_dir, run)
        if run.cancelled:
            return {"state": "cancelled"}
        if run.preempted is not None and not run.error:
            return {"state": "preempted", "step": run.preempted["step"]}
        if run.error:
            return {"state": "failed", "reason": run.error["reason"], "message": run.error["message"]}
        if run.checked is not None:  # a check_only job: the pre-flight passed, nothing to register
            return {
                "state": "succeeded",
                "metrics": {f"preflight_{k}": float(v) for k, v in run.checked.items()},
            }
        if not run.done:
            tail = (job_dir / "runner.log").read_text(errors="replace")[-1500:]
            code = self.child.returncode if self.child else None
            return {
                "state": "failed",
                "reason": "TRAINING_CRASHED",
                "message": f"the training process exited with {code}: {tail}",
            }
        return await self._register(row, job_dir, run)

    def _restartable(self, run: Run) -> bool:
        code = self.child.returncode if self.child else 0
        return bool(code) and not (run.done or run.error or run.cancelled or run.checked or run.preempted)

    async def _run_child(self, row: JobRow, job_dir: Path, run: Run | None = None) -> Run:
        """Start the runner (with torchrun when the job has several processes) and follow it until
        it exits, is cancelled, or the worker stops. `run`: what an earlier start reported."""
        logfile = (job_dir / "runner.log").open("ab")
        argv, env = launch.command(
            job_dir,
            JobSpec.from_json(row.spec).resources,
            self.caps,
            ray_address=self.settings.train_ray_address,
            max_restarts=self.settings.train_max_restarts,
        )
        self.child = await asyncio.create_subprocess_exec(*argv, stdout=logfile, stderr=logfile, env=env)
        # Uploads, hashing and bookkeeping yield the CPU to training: the worker lowers its own
        # priority once the child (which keeps the normal priority) has started.
        if not self._niced:
            with contextlib.suppress(OSError):
                os.nice(10)
            self._niced = True
        run = run or Run()
        last_check = 0.0
        normal_waiting_since: float | None = None
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.child.wait(), timeout=0.5)
                await self.progress.read(row, job_dir, run)
                if self.child.returncode is not None:
                    return run
                if self.stopping.is_set():
                    await self._stop_child()
                    raise Stopping
                if time.monotonic() - last_check > self.settings.train_cancel_poll_seconds:
                    last_check = time.monotonic()
                    normal_waiting_since = await self._cancel_or_preempt(
                        row, job_dir, run, normal_waiting_since
                    )
        except BaseException:
            # Whatever stops the following (a store outage while storing a checkpoint, say) stops
            # the training too: the job resumes elsewhere, never twice at once.
            if self.child.returncode is None:
                await self._stop_child()
            raise
        finally:
            logfile.close()

    async def _cancel_or_preempt(
        self, row: JobRow, job_dir: Path, run: Run, normal_waiting_since: float | None
    ) -> float | None:
        """Stop the child on cancel; ask an idle job to checkpoint and stop when a normal job has
        waited the grace period (no other worker took it). Returns since when one waits."""
        if await self.db.run(lambda s: s.get(JobRow, row.uid).cancel_requested):
            run.cancelled = True
            await self._stop_child()
            return None
        if row.priority != "idle" or (job_dir / "preempt").exists():
            return normal_waiting_since
        if not await self.db.run(self._normal_job_fits):
            return None
        since = normal_waiting_since or time.monotonic()
        if time.monotonic() - since >= self.settings.train_preempt_grace_seconds:
            (job_dir / "preempt").write_text("a normal job is waiting")
            log.info("preempting idle job", extra={"job": job_name(row)})
        return since

    def _normal_job_fits(self, session: Session) -> bool:
        """Whether a queued normal job waits that this worker could run (one it cannot run would
        not get the worker by preempting the idle job)."""
        specs = session.scalars(
            select(JobRow.spec).where(JobRow.state == "queued", JobRow.priority == "normal").limit(100)
        )
        return any(not misfit(JobSpec.from_json(spec).resources, self.caps) for spec in specs)

    async def _stop_child(self) -> None:
        if self.child is None or self.child.returncode is not None:
            return
        self.child.terminate()
        try:
            await asyncio.wait_for(self.child.wait(), timeout=10)
        except TimeoutError:
            self.child.kill()
            await self.child.wait()

    async def _register(self, row: JobRow, job_dir: Path, run: Run) -> dict[str, Any]:
        """Register the final model, and the best checkpoint when it differs, with lineage."""
        spec = JobSpec.from_json(row.spec)
        done = run.done or {}
        metrics = {
            "train_loss": done["train_loss"],
            "steps": float(done["step"]),
            "tokens_per_second": done.get("tokens_per_second", 0.0),
        }
        if done.get("best_validation_loss") is not None:
            metrics["best_validation_loss"] = done["best_validation_loss"]
        lineage = lineage_of(row)
        tags = {"method": spec.method, "tuning": spec.tuning}
        if spec.auto_evaluation:  # the eval service evaluates versions carrying these when registered
            tags["auto_eval.dataset"] = spec.auto_evaluation["dataset_version"]
            tags["auto_eval.metrics"] = ",".join(spec.auto_evaluation["metrics"])
        final = await register(
            self.peers,
            row,
            job_dir / "final",
            version_spec(f"final model of {job_name(row)}", lineage, tags=tags, metrics=metrics),
            f"{row.uid}-final",
            display_name=f"{row.display_name} outputs",
        )
        outcome: dict[str, Any] = {
            "state": "succeeded",
            "metrics": metrics,
            "final_model_version": final.name,
        }
        best = done.get("best_checkpoint")
        best_dir = None
        if (
            best
            and not spec.hyperparameters.early_stopping_patience
            and Path(best).name != f"checkpoint-{done['step']}"
        ):
            best_dir = await asyncio.to_thread(_model_files_of, Path(best), job_dir / "best")
        if best and best_dir is not None:
            version = await register(
                self.peers,
                row,
                best_dir,
                version_spec(
                    f"best checkpoint (validation loss) of {job_name(row)}",
                    lineage,
                    tags={"checkpoint": Path(best).name, "selection": "best_validation_loss"},
                    metrics={"validation_loss": done["best_validation_loss"]},
                ),
                f"{row.uid}-best",
            )
            outcome["best_model_version"] = version.name
        return outcome


def capabilities(settings: WorkerSettings) -> Capabilities:
    """What this worker offers: its devices, and its Ray cluster's when it has one."""
    ray = probe_ray(settings.train_ray_address) if settings.train_ray_address else None
    return detect(settings.train_cpu_devices, ray)


def probe_ray(address: str) -> dict[str, Any] | None:
    """The Ray cluster's nodes and devices (a child process: the worker never joins the cluster);
    None when it cannot be reached, so the worker offers no Ray backend until it can."""
    import json
    import subprocess

    try:
        done = subprocess.run(
            [sys.executable, "-m", "services.train.ray_launch", "--probe"],
            env={**os.environ, "TUNEFORGE_TRAIN_RAY_ADDRESS": address},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError) as error:
        log.warning(
            "the Ray cluster is not reachable", extra={"address": address, "error": str(error)[-500:]}
        )
        return None


def _model_files_of(checkpoint: Path, folder: Path) -> Path | None:
    """The model files of a local checkpoint copied into `folder` (None when it is gone)."""
    if not checkpoint.exists():
        return None
    folder.mkdir()
    for path in checkpoint.iterdir():
        if path.is_file() and path.name not in NOT_MODEL_FILES:
            shutil.copy(path, folder / path.name)
    return folder


async def main() -> None:
    settings = load_settings(WorkerSettings)
    runtime = await open_runtime(
        "train",
        settings,
        migrations=MIGRATIONS,
        outbox_table=OUTBOX,
        serves_api=False,
        bus_name=f"tuneforge-worker-{settings.worker_name}",
    )
    settings.train_work_dir.mkdir(parents=True, exist_ok=True)
    peers = Peers(
        {"registry": settings.registry_endpoint, "data": settings.data_endpoint},
        api_key=settings.worker_api_key.get_secret_value,
    )
    caps = await asyncio.to_thread(capabilities, settings)
    worker = Worker(settings, runtime.db, runtime.store, runtime.bus, runtime.outbox, peers, caps)
    try:
        await run_until_signalled(worker.stopping, worker.run, grace_seconds=settings.shutdown_grace_seconds)
        log.info("worker stopping", extra={"worker": settings.worker_name})
    finally:
        await peers.close()
        await runtime.close()


if __name__ == "__main__":
    asyncio.run(main())
