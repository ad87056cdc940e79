"""A serving process: holds deployments (`placement.py` decides which) and answers their requests
through its engine, over the internal `EngineService` the serve service calls.

    python -m services.serve.worker        (or `tuneforge serve-worker`)

Every second it renews its heartbeat, claims deployments short of replicas, loads what its
deployments should serve (downloaded from the registry, every file verified) and switches to it,
unloading what it no longer needs. One process per accelerator, or per CPU node.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from pydantic import Field, SecretStr
from sqlalchemy import select

from services.kit.errors import (
    DataLoss,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from services.kit.interceptors import ErrorInterceptor, LoggingInterceptor, RequestIdInterceptor
from services.kit.peers import Peers
from services.kit.server import create_server, open_runtime, run_until_signalled
from services.kit.settings import KitSettings, load_settings
from services.serve import placement
from services.serve.holdings import Holding, Models, Served
from services.serve.internal import TOKEN_HEADER, engine_token
from services.serve.repo import OUTBOX, DeploymentRow, ReplicaRow, WorkerRow
from tuneforge.serve.v1 import deployment_pb2, engine_service_pb2, engine_service_pb2_grpc

log = logging.getLogger("tuneforge.serve-worker")
MIGRATIONS = Path(__file__).parent / "migrations"


class ServeWorkerSettings(KitSettings):
    registry_endpoint: str = Field(description="registry host:port: the model versions to serve")
    worker_api_key: SecretStr = Field(description="the key the process reads model versions with")
    worker_name: str = Field(default_factory=lambda: f"serve-{socket.gethostname()}-{os.getpid()}")
    serve_work_dir: Path = Field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "tuneforge-serve-worker"
    )
    serve_worker_listen: str = Field("127.0.0.1:0", description="host:port its engine listens on")
    serve_worker_advertise: str = Field(
        "", description="host:port the serve service reaches it at (default: bound)"
    )
    serve_worker_capacity: int = Field(4, ge=1, le=64, description="deployments it holds at most")
    serve_max_batch: int = Field(16, ge=1, le=256, description="requests generated in one batch at most")
    serve_batch_window_ms: float = Field(
        10.0, ge=0, le=1000, description="how long a batch waits for company"
    )


class EngineServicer(engine_service_pb2_grpc.EngineServiceServicer):
    def __init__(self, holdings: dict[str, Holding], models: Models, token: str) -> None:
        self.holdings = holdings
        self.models = models
        self.token = token

    def _admit(self, uid: str) -> tuple[Holding, Served]:
        holding = self.holdings.get(uid)
        if holding is None:
            raise NotFound("this serving process does not hold that deployment", reason="NOT_HELD")
        served = holding.active
        if served is None:
            raise Unavailable("the deployment's model is still loading here", reason="LOADING")
        if served.in_flight >= 2 * holding.max_concurrent:
            raise ResourceExhausted("this replica is busy", reason="REPLICA_BUSY")
        return holding, served

    async def Generate(
        self, request: engine_service_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[engine_service_pb2.GenerateResponse]:
        # Only the serve service (which knows the secret key) may call the engine.
        given = dict(context.invocation_metadata() or ()).get(TOKEN_HEADER, "")
        if not hmac.compare_digest(str(given), self.token):
            raise Unauthenticated("the engine answers the serve service only", reason="NOT_THE_SERVE_SERVICE")
        _, served = self._admit(request.deployment_uid)
        served.in_flight += 1
        try:
            async for chunk in self._generate(request, served):
                yield chunk
        finally:
            served.in_flight -= 1

    async def _generate(
        self, request: engine_service_pb2.GenerateRequest, served: Served
    ) -> AsyncIterator[engine_service_pb2.GenerateResponse]:
        loaded, engine = self.models.model(served), self.models.module(served)
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        size = len(request.prompt) + sum(len(m["content"]) for m in messages)
        if size < 8000:  # a short prompt tokenizes faster than a hop to a thread
            ids = loaded.prompt_ids(messages, request.prompt)
        else:
            ids = await asyncio.to_thread(loaded.prompt_ids, messages, request.prompt)
        limit = min(request.max_context or loaded.position_limit, loaded.position_limit)
        if len(ids) + request.max_tokens > limit:
            raise InvalidArgument(
                str(engine.ContextTooLong(len(ids), request.max_tokens, limit)),
                reason="CONTEXT_LENGTH_EXCEEDED",
                metadata={"limit": str(limit), "prompt_tokens": str(len(ids))},
            )
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[tuple[str, str, dict[str, Any] | None]] = asyncio.Queue()
        job = engine.Request(
            adapter=served.adapter,
            input_ids=ids,
            max_new_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p or 1.0,
            stop=list(request.stop),
            seed=request.seed if request.HasField("seed") else None,
            emit=_emitter(loop, pieces, stream=request.stream),
        )
        self.models.batcher(served).submit(job)
        try:
            while True:
                delta, finish, usage = await pieces.get()
                # Whatever else is already generated goes in the same message (all of it, unstreamed).
                while not finish and (not request.stream or not pieces.empty()):
                    more, finish, usage = await pieces.get()
                    delta += more
                if finish == "error":
                    raise FailedPrecondition(
                        f"generation failed: {(usage or {}).get('error', '')}", reason="ENGINE_ERROR"
                    )
                yield engine_service_pb2.GenerateResponse(
                    delta=delta,
                    finish_reason=finish,
                    usage=deployment_pb2.Usage(
                        prompt_tokens=usage["prompt_tokens"],
                        completion_tokens=usage["completion_tokens"],
                        total_tokens=usage["prompt_tokens"] + usage["completion_tokens"],
                    )
                    if usage
                    else None,
                    model_version=served.version,
                )
                if finish:
                    return
        finally:
            job.cancelled.set()  # the caller went away: stop generating its row


def _emitter(loop: asyncio.AbstractEventLoop, pieces: asyncio.Queue[Any], *, stream: bool) -> Any:
    """The engine's callback (on its thread): every piece handed to the event loop when streaming,
    else the text gathered on the engine's thread and handed over once, when the answer ends."""
    if stream:
        return lambda d, f, u: loop.call_soon_threadsafe(pieces.put_nowait, (d, f, u))
    text: list[str] = []

    def emit(delta: str, finish: str, usage: dict[str, int] | None) -> None:
        text.append(delta)
        if finish:
            loop.call_soon_threadsafe(pieces.put_nowait, ("".join(text), finish, usage))

    return emit


class ServeWorker:
    def __init__(
        self, settings: ServeWorkerSettings, runtime: Any, models: Models, engines: list[str], address: str
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.models = models
        self.holdings: dict[str, Holding] = {}
        # Versions switched away from (or dropped), unloaded once their last request has finished.
        self.draining: list[Served] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.me = WorkerRow(
            name=settings.worker_name,
            address=address,
            engines=engines,
            device=models.device,
            capacity=settings.serve_worker_capacity,
        )
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        log.info("worker ready", extra={"worker": self.me.name, "address": self.me.address})
        while not self.stopping.is_set():
            try:
                await self.reconcile()
            except Exception:
                log.warning("reconciling failed; trying again", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=1.0)
        await self._leave()

    async def reconcile(self) -> None:
        outbox, me = self.runtime.outbox, self.me

        def step(session: Any) -> list[DeploymentRow]:
            placement.heartbeat(session, me)
            placement.drop_dead(session, outbox)
            placement.claim(session, outbox, session.get(WorkerRow, me.name), set(me.engines))
            mine = session.scalars(
                select(DeploymentRow)
                .join(ReplicaRow, ReplicaRow.deployment_uid == DeploymentRow.uid)
                .where(ReplicaRow.worker == me.name)
            ).all()
            alive = placement.live_workers(session)
            kept = []
            for deployment in mine:
                holders = sorted(
                    r.worker
                    for r in session.scalars(
                        select(ReplicaRow).where(ReplicaRow.deployment_uid == deployment.uid)
                    )
                    if r.worker in alive
                )
                if me.name in holders and holders.index(me.name) >= deployment.replicas:
                    placement.release(session, outbox, deployment.uid, me.name)  # more replicas than asked
                    continue
                session.expunge(deployment)
                kept.append(deployment)
            return kept

        mine = await outbox.write(self.runtime.db, step)
        held = {d.uid for d in mine}
        for deployment in mine:
            holding = self.holdings.setdefault(deployment.uid, Holding(deployment.uid))
            holding.max_concurrent = deployment.max_concurrent_requests
            want = deployment.desired_version
            current = holding.active.version if holding.active else ""
            if want != current and not holding.loading and holding.failed != want:
                holding.loading = want
                self._spawn(self._load(holding, deployment))
        for uid in list(self.holdings):
            if uid not in held:
                holding = self.holdings.pop(uid)
                self.draining.extend([holding.active] if holding.active else [])
        for served in list(self.draining):
            if served.in_flight == 0:  # its last request has finished
                self.draining.remove(served)
                await self.models.release(served)

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _load(self, holding: Holding, deployment: DeploymentRow) -> None:
        version = deployment.desired_version
        try:
            served = await self.models.acquire(
                version,
                deployment.base_version,
                engine=self._engine_for(deployment),
                max_batch=self.settings.serve_max_batch,
                window=self.settings.serve_batch_window_ms / 1000,
            )
        except Exception as exc:
            reason = (
                f"the files of {version} failed verification: {exc}"
                if isinstance(exc, DataLoss)
                else f"{version} could not be loaded: {getattr(exc, 'message', None) or exc}"
            )
            log.warning("loading failed", extra={"deployment": deployment.uid, "reason": reason})
            holding.failed, holding.loading = version, ""
            if holding.active is not None:  # an update that could not load: the old version serves on
                await self._set(deployment.uid, "ready", holding.active.version, reason)
            else:
                await self._set(deployment.uid, "failed", version, reason)
            return
        previous, holding.active = holding.active, served  # the switch: new requests go to `served`
        holding.loading, holding.failed = "", ""
        if previous is not None:
            self.draining.append(previous)
        await self._set(deployment.uid, "ready", version)
        log.info("serving", extra={"deployment": deployment.uid, "model_version": version})

    def _engine_for(self, deployment: DeploymentRow) -> str:
        """vLLM when asked for, or for `auto` where this process has it; else transformers."""
        if deployment.engine == "vllm" or (deployment.engine == "auto" and "vllm" in self.me.engines):
            return "vllm"
        return "transformers"

    async def _set(self, uid: str, state: str, version: str, reason: str = "") -> None:
        await self.runtime.outbox.write(
            self.runtime.db,
            lambda s: placement.set_replica(
                s, self.runtime.outbox, uid, self.me.name, state=state, version=version, reason=reason
            ),
        )

    async def _leave(self) -> None:
        """Shutting down: give up every replica so others take them at once."""
        name = self.me.name

        def leave(session: Any) -> None:
            for replica in session.scalars(select(ReplicaRow).where(ReplicaRow.worker == name)).all():
                placement.release(session, self.runtime.outbox, replica.deployment_uid, name)
            row = session.get(WorkerRow, name)
            if row is not None:
                session.delete(row)

        with contextlib.suppress(Exception):
            await self.runtime.outbox.write(self.runtime.db, leave)


def engines_here() -> tuple[str, list[str]]:
    """The device, and the engines this process can run."""
    import importlib.util

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    engines = ["transformers"]
    if device == "cuda" and importlib.util.find_spec("vllm") is not None:
        engines.append("vllm")
    return device, engines


async def main() -> None:
    settings = load_settings(ServeWorkerSettings)
    runtime = await open_runtime(
        "serve",
        settings,
        migrations=MIGRATIONS,
        outbox_table=OUTBOX,
        serves_api=False,
        bus_name=f"tuneforge-{settings.worker_name}",
    )
    from services.serve import engine

    device, engines = engines_here()
    modules = {"transformers": engine}
    if "vllm" in engines:
        from services.serve import engine_vllm

        modules["vllm"] = engine_vllm
    settings.serve_work_dir.mkdir(parents=True, exist_ok=True)
    peers = Peers({"registry": settings.registry_endpoint}, api_key=settings.worker_api_key.get_secret_value)
    models = Models(peers, settings.serve_work_dir, device, modules)
    token = engine_token(settings.secret_key.get_secret_value())
    server, port = create_server(
        settings.serve_worker_listen,
        interceptors=[RequestIdInterceptor(), LoggingInterceptor(), ErrorInterceptor()],
    )
    host = settings.serve_worker_listen.rpartition(":")[0]
    worker = ServeWorker(
        settings, runtime, models, engines, settings.serve_worker_advertise or f"{host}:{port}"
    )
    engine_service_pb2_grpc.add_EngineServiceServicer_to_server(
        EngineServicer(worker.holdings, models, token), server
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    try:
        await run_until_signalled(worker.stopping, worker.run, grace_seconds=settings.shutdown_grace_seconds)
    finally:
        await server.stop(5)
        await peers.close()
        await runtime.close()


if __name__ == "__main__":
    asyncio.run(main())
