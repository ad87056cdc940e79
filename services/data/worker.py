"""The data worker: pulls the data service's long work from its JetStream queue and does it
(`tasks.py`): making versions first, then materialized mixtures, then insights. Work that calls
teachers (augmentation runs, annotation pre-labelling: long, and bound by the teacher) has slots of
its own, so it never holds up the rest.

    python -m services.data.worker        (or `tuneforge data-worker`)

A task is acked once its outcome is stored. A task that fails is redelivered after a pause (a store
or peer that was down); one that keeps failing is marked FAILED with the error, never retried forever.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import tempfile
from pathlib import Path
from typing import Any

import httpx2 as httpx
from pydantic import Field, SecretStr

from services.data.annotating import Annotating
from services.data.augment_runs import AugmentationRunner, TeacherAccess
from services.data.catalog import QUEUE_SUBJECT
from services.data.repo import OUTBOX
from services.data.tasks import Tasks
from services.data.teachers import SEAL_PURPOSE
from services.kit.access import Access
from services.kit.bus import DATA_QUEUE_STREAM
from services.kit.db import Database
from services.kit.peers import Peers
from services.kit.sealing import SecretBox
from services.kit.server import open_runtime, run_until_signalled
from services.kit.settings import KitSettings, load_settings
from services.kit.workqueue import hand_back_on_outage, heartbeat, pull_by_priority

log = logging.getLogger("tuneforge.data-worker")
MIGRATIONS = Path(__file__).parent / "migrations"
# Highest priority first: a new upload should not wait behind a long insight.
PRIORITY = ("version", "mixture", "insight")
TEACHER_WORK = ("annotation", "augmentation")
MAX_DELIVERIES = 5


class DataWorkerSettings(KitSettings):
    registry_endpoint: str = Field("", description="registry host:port, to read tokenizers of model versions")
    worker_api_key: SecretStr = Field(description="the key the worker reads tokenizers with")
    worker_name: str = Field(default_factory=lambda: f"data-{socket.gethostname()}-{os.getpid()}")
    data_work_dir: Path = Field(default_factory=lambda: Path(tempfile.gettempdir()) / "tuneforge-data-worker")
    data_ack_wait_seconds: float = Field(60.0, ge=2)
    data_worker_concurrency: int = Field(2, ge=1, le=64, description="tasks done at once")
    data_teacher_concurrency: int = Field(
        2, ge=1, le=64, description="augmentation runs and annotation pre-labellings done at once"
    )
    serve_openai_endpoint: str = Field(
        "",
        description="the serve service's OpenAI-compatible API (http://host:port/v1), for deployment teachers",
    )


class DataWorker:
    def __init__(self, settings: DataWorkerSettings, tasks: Tasks, bus: Any) -> None:
        self.settings = settings
        self.tasks = tasks
        self.bus = bus
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        log.info("worker ready", extra={"worker": self.settings.worker_name})
        lanes = [
            (
                [(QUEUE_SUBJECT.format(task=t), f"data-{t}") for t in PRIORITY],
                self.settings.data_worker_concurrency,
            ),
            (
                [(QUEUE_SUBJECT.format(task=t), f"data-{t}") for t in TEACHER_WORK],
                self.settings.data_teacher_concurrency,
            ),
        ]
        await asyncio.gather(
            *(
                pull_by_priority(
                    self.bus,
                    stream=DATA_QUEUE_STREAM,
                    queues=queues,
                    ack_wait=self.settings.data_ack_wait_seconds,
                    handle=self.handle,
                    stopping=self.stopping,
                )
                for queues, slots in lanes
                for _ in range(slots)
            )
        )

    async def handle(self, message: Any) -> None:
        task = message.subject.rsplit(".", 1)[-1]
        uid = message.data.decode()
        beat = asyncio.create_task(heartbeat(message, self.settings.data_ack_wait_seconds / 3))
        try:
            await self.tasks.run(task, uid)
        except Exception as exc:
            if await hand_back_on_outage(message, exc, f"{task} {uid}"):
                return
            deliveries = getattr(message.metadata, "num_delivered", 1) or 1
            if deliveries >= MAX_DELIVERIES:
                log.exception("data task failed for good", extra={"task": task, "uid": uid})
                await self.tasks.fail(task, uid, "WORKER_ERROR", f"{type(exc).__name__}: {exc}")
                await message.ack()
            else:
                log.warning(
                    "data task failed; it will be retried", extra={"task": task, "uid": uid}, exc_info=True
                )
                await message.nak(delay=2 * deliveries)
            return
        finally:
            beat.cancel()
        await message.ack()
        log.info("data task done", extra={"task": task, "uid": uid})


def _trusted(settings: DataWorkerSettings) -> ssl.SSLContext:
    """The system's roots, and the platform's own CA (TUNEFORGE_TLS_CA_FILE: a TLS suite's serve API)."""
    context = ssl.create_default_context()
    if settings.tls_ca_file:
        context.load_verify_locations(cafile=str(settings.tls_ca_file))
    return context


async def main() -> None:
    settings = load_settings(DataWorkerSettings)
    runtime = await open_runtime(
        "data",
        settings,
        migrations=MIGRATIONS,
        outbox_table=OUTBOX,
        serves_api=False,
        bus_name=f"tuneforge-{settings.worker_name}",
    )
    settings.data_work_dir.mkdir(parents=True, exist_ok=True)
    peers = Peers({"registry": settings.registry_endpoint}, api_key=settings.worker_api_key.get_secret_value)
    access = TeacherAccess(
        serve_openai_endpoint=settings.serve_openai_endpoint,
        worker_key=settings.worker_api_key.get_secret_value(),
        box=SecretBox(settings.secret_key.get_secret_value(), SEAL_PURPOSE),
    )
    # One connection pool for every teacher call of this worker (its size bounds nothing: each
    # teacher's own concurrency does).
    http = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=64), verify=_trusted(settings)
    )
    tasks = Tasks(
        runtime.db,
        runtime.store,
        runtime.outbox,
        peers,
        settings.data_work_dir,
        augmentation=AugmentationRunner(runtime.db, runtime.store, runtime.outbox, access, http),
        annotating=Annotating(runtime.db, runtime.store, runtime.outbox, access, http),
        # Versions count against their project's storage quota.
        access=Access(Database(settings.auth_database_url, schema="auth")),
    )
    worker = DataWorker(settings, tasks, runtime.bus)
    try:
        await run_until_signalled(worker.stopping, worker.run, grace_seconds=settings.shutdown_grace_seconds)
        log.info("worker stopping", extra={"worker": settings.worker_name})
    finally:
        await http.aclose()
        await peers.close()
        await runtime.close()


if __name__ == "__main__":
    asyncio.run(main())
