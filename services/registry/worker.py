"""The registry worker: pulls derivations from `TUNEFORGE_REGISTRY_QUEUE` and makes their versions
(`deriving.py`), one at a time, each in a child bounded in memory and time.

    python -m services.registry.worker        (or `tuneforge registry-worker`)

It needs torch (install `tuneforge[registry-worker]`); the registry service does not. A derivation
is acked once its outcome is stored; one whose worker dies is redelivered to another after
`ack_wait` (the child dies with its worker), and finds the version it may already have registered.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from pydantic import Field

from services.kit.access import Access
from services.kit.bus import REGISTRY_QUEUE_STREAM, REGISTRY_QUEUE_SUBJECTS
from services.kit.db import Database
from services.kit.server import open_runtime, run_until_signalled
from services.kit.settings import load_settings
from services.kit.workqueue import hand_back_on_outage, heartbeat, pull_forever
from services.registry.deriving import DerivationRunner
from services.registry.lookup import RegistryContext
from services.registry.repo import OUTBOX
from services.registry.server import MIGRATIONS, RegistrySettings, limits_from
from services.registry.versions import Versions

log = logging.getLogger("tuneforge.registry-worker")
MAX_DELIVERIES = 5


class RegistryWorkerSettings(RegistrySettings):
    worker_name: str = Field(default_factory=lambda: f"registry-{socket.gethostname()}-{os.getpid()}")
    registry_work_dir: Path = Field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "tuneforge-registry-worker"
    )
    registry_ack_wait_seconds: float = Field(60.0, ge=2)


async def main() -> None:
    settings = load_settings(RegistryWorkerSettings)
    runtime = await open_runtime(
        "registry",
        settings,
        migrations=MIGRATIONS,
        outbox_table=OUTBOX,
        serves_api=False,
        bus_name=f"tuneforge-{settings.worker_name}",
    )
    settings.registry_work_dir.mkdir(parents=True, exist_ok=True)
    # Derived versions count against their project's storage quota as uploads do.
    access = Access(Database(settings.auth_database_url, schema="auth"))
    ctx = RegistryContext(
        runtime.db, runtime.store, runtime.outbox, runtime.page_tokens, limits_from(settings), access=access
    )
    runner = DerivationRunner(ctx, Versions(ctx), settings.registry_work_dir)
    stopping = asyncio.Event()

    async def handle(message: Any) -> None:
        uid = message.data.decode()
        beat = asyncio.create_task(heartbeat(message, settings.registry_ack_wait_seconds / 3))
        try:
            await runner.run(uid)
        except Exception as exc:
            if await hand_back_on_outage(message, exc, f"derivation {uid}"):
                return
            deliveries = getattr(message.metadata, "num_delivered", 1) or 1
            if deliveries >= MAX_DELIVERIES:
                log.exception("derivation failed for good", extra={"uid": uid})
                await runner.fail(uid, "WORKER_ERROR", f"{type(exc).__name__}: {exc}")
                await message.ack()
            else:
                log.warning("derivation failed; it will be retried", extra={"uid": uid}, exc_info=True)
                await message.nak(delay=2 * deliveries)
            return
        finally:
            beat.cancel()
        await message.ack()
        log.info("derivation done", extra={"uid": uid})

    async def work() -> None:
        log.info("worker ready", extra={"worker": settings.worker_name})
        await pull_forever(
            runtime.bus,
            stream=REGISTRY_QUEUE_STREAM,
            subjects=REGISTRY_QUEUE_SUBJECTS,
            durable="registry-derive",
            ack_wait=settings.registry_ack_wait_seconds,
            handle=handle,
            stopping=stopping,
        )

    try:
        await run_until_signalled(stopping, work, grace_seconds=settings.shutdown_grace_seconds)
        log.info("worker stopping", extra={"worker": settings.worker_name})
    finally:
        await runtime.close()


if __name__ == "__main__":
    asyncio.run(main())
