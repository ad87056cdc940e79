"""The data worker: pulls the data service's long work from its JetStream queue and does it
(`tasks.py`): making versions first, then materialized mixtures, then insights.

    python -m services.data.worker        (or `tuneforge data-worker`)

A task is acked once its outcome is stored. A task that fails is redelivered after a pause (a store
or peer that was down); one that keeps failing is marked FAILED with the error, never retried forever.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr

from services.data.catalog import QUEUE_SUBJECT
from services.data.repo import OUTBOX
from services.data.tasks import Tasks
from services.kit.bus import DATA_QUEUE_STREAM
from services.kit.peers import Peers
from services.kit.server import open_runtime, run_until_signalled
from services.kit.settings import KitSettings, load_settings
from services.kit.workqueue import heartbeat, pull_by_priority

log = logging.getLogger("tuneforge.data-worker")
MIGRATIONS = Path(__file__).parent / "migrations"
# Highest priority first: a new upload should not wait behind a long insight.
PRIORITY = ("version", "mixture", "insight")
MAX_DELIVERIES = 5


class DataWorkerSettings(KitSettings):
    registry_endpoint: str = Field("", description="registry host:port, to read tokenizers of model versions")
    worker_api_key: SecretStr = Field(description="the key the worker reads tokenizers with")
    worker_name: str = Field(default_factory=lambda: f"data-{socket.gethostname()}-{os.getpid()}")
    data_work_dir: Path = Field(default_factory=lambda: Path(tempfile.gettempdir()) / "tuneforge-data-worker")
    data_ack_wait_seconds: float = Field(60.0, ge=2)
    data_worker_concurrency: int = Field(2, ge=1, le=64, description="tasks done at once")


class DataWorker:
    def __init__(self, settings: DataWorkerSettings, tasks: Tasks, bus: Any) -> None:
        self.settings = settings
        self.tasks = tasks
        self.bus = bus
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        log.info("worker ready", extra={"worker": self.settings.worker_name})
        queues = [(QUEUE_SUBJECT.format(task=t), f"data-{t}") for t in PRIORITY]
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
                for _ in range(self.settings.data_worker_concurrency)
            )
        )

    async def handle(self, message: Any) -> None:
        task = message.subject.rsplit(".", 1)[-1]
        uid = message.data.decode()
        beat = asyncio.create_task(heartbeat(message, self.settings.data_ack_wait_seconds / 3))
        try:
            await self.tasks.run(task, uid)
        except Exception as exc:
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
    tasks = Tasks(runtime.db, runtime.store, runtime.outbox, peers, settings.data_work_dir)
    worker = DataWorker(settings, tasks, runtime.bus)
    try:
        await run_until_signalled(worker.stopping, worker.run)
        log.info("worker stopping", extra={"worker": settings.worker_name})
    finally:
        await peers.close()
        await runtime.close()


if __name__ == "__main__":
    asyncio.run(main())
