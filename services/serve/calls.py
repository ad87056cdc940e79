"""One call to a deployment, as the serve service runs it for the OpenAI API and for `Chat`: its
parameters checked against the deployment's defaults and limits, admitted (or refused with 429 when
the bounded queue is full), routed to the least busy replica, streamed back, and logged.

A replica that fails before the first token is skipped for the next one; one that dies mid-answer
ends the answer with an error (the text already sent cannot be taken back).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from prometheus_client import Counter, Histogram
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.kit import pii, tls
from services.kit.db import Database
from services.kit.errors import InvalidArgument, ResourceExhausted, ServiceError, Unavailable
from services.kit.peers import peer_error
from services.kit.times import utcnow
from services.serve.convert import DEFAULT_GENERATION
from services.serve.internal import TOKEN_HEADER
from services.serve.placement import live_workers
from services.serve.repo import CallRow, DeploymentRow, ReplicaRow
from tuneforge.serve.v1 import deployment_pb2, engine_service_pb2, engine_service_pb2_grpc

MAX_TOKENS = 8192
MAX_STOP = 4
ROUTES_TTL = 1.0


# Serving, for operators: tokens/s is `rate(tuneforge_serve_tokens_total{kind="completion"}[1m])`.
SERVE_CALLS = Counter(
    "tuneforge_serve_calls", "Model calls served, by deployment and outcome", ["deployment", "status"]
)
SERVE_TOKENS = Counter(
    "tuneforge_serve_tokens", "Tokens read and written, by deployment", ["deployment", "kind"]
)
SERVE_SECONDS = Histogram(
    "tuneforge_serve_call_duration_seconds",
    "Time from a call's arrival to its last token",
    ["deployment"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
)


class ReplicaLost(Unavailable):
    """The replica answering stopped mid-answer."""


@dataclass
class CallRequest:
    """A chat (`messages`) or completion (`prompt`) request, with what it asked for."""

    messages: list[dict[str, str]] | None = None
    prompt: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    stream: bool = False


@dataclass
class Piece:
    delta: str
    finish_reason: str
    usage: dict[str, int] | None
    model_version: str


@dataclass
class Settled:
    """A request's generation settings once the deployment's defaults are filled in."""

    max_tokens: int
    temperature: float
    top_p: float
    stop: list[str]
    seed: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stop": self.stop,
            **({"seed": self.seed} if self.seed is not None else {}),
        }


def settle(deployment: DeploymentRow, request: CallRequest) -> Settled:
    """The request's settings over the deployment's defaults, each checked (the error names it)."""
    defaults = {**DEFAULT_GENERATION, **(deployment.generation or {})}
    temperature = defaults["temperature"] if request.temperature is None else request.temperature
    top_p = defaults["top_p"] if request.top_p is None else request.top_p
    max_tokens = defaults["max_tokens"] if request.max_tokens is None else request.max_tokens
    if not (isinstance(temperature, int | float) and math.isfinite(temperature) and 0 <= temperature <= 2):
        raise InvalidArgument.field("temperature", f"must be between 0 and 2 (got {temperature})")
    if not (isinstance(top_p, int | float) and math.isfinite(top_p) and 0 < top_p <= 1):
        raise InvalidArgument.field("top_p", f"must be above 0 and at most 1 (got {top_p})")
    if not (isinstance(max_tokens, int) and 1 <= max_tokens <= MAX_TOKENS):
        raise InvalidArgument.field("max_tokens", f"must be between 1 and {MAX_TOKENS} (got {max_tokens})")
    if len(request.stop) > MAX_STOP or any(not s or len(s) > 100 for s in request.stop):
        raise InvalidArgument.field("stop", f"at most {MAX_STOP} stop sequences of 1-100 characters")
    if request.messages is not None:
        if not request.messages:
            raise InvalidArgument.field("messages", "give at least one message")
        for i, message in enumerate(request.messages):
            if message.get("role") not in ("system", "user", "assistant"):
                raise InvalidArgument.field(f"messages[{i}].role", "must be system, user or assistant")
        if request.messages[-1]["role"] != "user":
            raise InvalidArgument.field("messages", "the last message must be the user's")
    return Settled(max_tokens, float(temperature), float(top_p), list(request.stop), request.seed)


class Routes:
    """The ready replicas of each deployment (re-read at most every second), the engines' channels,
    and how many calls this service has on each replica."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._routes: dict[str, tuple[float, list[str]]] = {}
        self._channels: dict[str, grpc.aio.Channel] = {}
        self.in_flight: dict[str, int] = {}

    async def replicas(self, deployment_uid: str) -> list[str]:
        cached = self._routes.get(deployment_uid)
        if cached and cached[0] > time.monotonic():
            return cached[1]

        def read(session: Session) -> list[str]:
            alive = live_workers(session)
            rows = session.scalars(
                select(ReplicaRow).where(
                    ReplicaRow.deployment_uid == deployment_uid, ReplicaRow.state == "ready"
                )
            )
            return [alive[r.worker].address for r in rows if r.worker in alive]

        addresses = await self.db.run(read)
        self._routes[deployment_uid] = (time.monotonic() + ROUTES_TTL, addresses)
        return addresses

    def forget(self, deployment_uid: str) -> None:
        self._routes.pop(deployment_uid, None)

    def stub(self, address: str) -> engine_service_pb2_grpc.EngineServiceStub:
        if address not in self._channels:
            self._channels[address] = tls.aio_channel(
                address,
                options=[("grpc.initial_reconnect_backoff_ms", 200), ("grpc.max_reconnect_backoff_ms", 2000)],
            )
        return engine_service_pb2_grpc.EngineServiceStub(self._channels[address])

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()


class Admission:
    """A bounded queue per deployment: `capacity` calls run, as many more wait, the rest get 429."""

    def __init__(self) -> None:
        self.running: dict[str, int] = {}
        self.waiting: dict[str, int] = {}
        self.freed: dict[str, asyncio.Condition] = {}

    @contextlib.asynccontextmanager
    async def slot(self, uid: str, capacity: int) -> AsyncIterator[None]:
        condition = self.freed.setdefault(uid, asyncio.Condition())
        async with condition:
            if self.running.get(uid, 0) >= capacity:
                if self.waiting.get(uid, 0) >= capacity:
                    raise ResourceExhausted(
                        f"the deployment is at its limit of {capacity} concurrent requests and as many waiting; retry shortly",
                        reason="QUEUE_FULL",
                        metadata={"retry_after": "1"},
                    )
                self.waiting[uid] = self.waiting.get(uid, 0) + 1
                try:
                    await condition.wait_for(lambda: self.running.get(uid, 0) < capacity)
                finally:
                    self.waiting[uid] -= 1
            self.running[uid] = self.running.get(uid, 0) + 1
        try:
            yield
        finally:
            async with condition:
                self.running[uid] -= 1
                condition.notify()


class Calls:
    def __init__(self, db: Database, routes: Routes, token: str) -> None:
        self.db = db
        self.routes = routes
        self.token = token
        self.admission = Admission()
        # Call logs being written: off the answer's path, awaited by whatever reads the logs.
        self.writing: set[asyncio.Task[None]] = set()

    async def run(
        self, deployment: DeploymentRow, request: CallRequest, call_id: str
    ) -> AsyncIterator[Piece]:
        """The answer's pieces; the call is logged when it ends, however it ends."""
        started = time.perf_counter()
        log: dict[str, Any] = {
            "status": "OK",
            "error": "",
            "ttft": None,
            "answer": [],
            "usage": None,
            "version": "",
        }
        settled: Settled | None = None
        try:
            settled = settle(deployment, request)
            async for piece in self._route(deployment, request, settled):
                if piece.delta and log["ttft"] is None:
                    log["ttft"] = (time.perf_counter() - started) * 1000
                log["answer"].append(piece.delta)
                log["usage"] = piece.usage or log["usage"]
                log["version"] = piece.model_version
                yield piece
        except ServiceError as error:
            log["status"], log["error"] = error.code, error.message
            raise
        except BaseException:
            log["status"], log["error"] = "CANCELLED", "the client went away"
            raise
        finally:
            task = asyncio.create_task(self._log(deployment, request, settled, call_id, started, log))
            self.writing.add(task)
            task.add_done_callback(self.writing.discard)

    async def written(self) -> None:
        """Once the logs of every call answered so far are stored (read-your-writes for readers)."""
        if self.writing:
            await asyncio.gather(*list(self.writing), return_exceptions=True)

    async def _route(
        self, deployment: DeploymentRow, request: CallRequest, settled: Settled
    ) -> AsyncIterator[Piece]:
        addresses = await self.routes.replicas(deployment.uid)
        if not addresses:
            raise Unavailable(
                f"the deployment is {deployment.state}: {deployment.state_reason or 'no replica serves it yet'}",
                reason="NOT_SERVING",
            )
        capacity = deployment.max_concurrent_requests * len(addresses)
        async with self.admission.slot(deployment.uid, capacity):
            last: ServiceError | None = None
            for address in sorted(addresses, key=lambda a: self.routes.in_flight.get(a, 0)):
                started = False
                self.routes.in_flight[address] = self.routes.in_flight.get(address, 0) + 1
                try:
                    async for piece in self._generate(address, deployment, request, settled):
                        started = True
                        yield piece
                    return
                except grpc.aio.AioRpcError as rpc:
                    error = peer_error(rpc, "serving process")
                    if started:
                        raise ReplicaLost(
                            "the serving process answering stopped mid-answer; send the request again",
                            reason="REPLICA_LOST",
                        ) from None
                    if rpc.code() not in (
                        grpc.StatusCode.UNAVAILABLE,
                        grpc.StatusCode.NOT_FOUND,
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        grpc.StatusCode.UNAUTHENTICATED,
                    ):
                        raise error from None
                    self.routes.forget(deployment.uid)
                    last = error
                finally:
                    self.routes.in_flight[address] -= 1
            assert last is not None
            if isinstance(last, ResourceExhausted):
                raise ResourceExhausted(
                    "every replica is busy; retry shortly", reason="QUEUE_FULL", metadata={"retry_after": "1"}
                )
            raise Unavailable(f"no replica could answer ({last.message})", reason="NOT_SERVING")

    async def _generate(
        self, address: str, deployment: DeploymentRow, request: CallRequest, settled: Settled
    ) -> AsyncIterator[Piece]:
        message = engine_service_pb2.GenerateRequest(
            deployment_uid=deployment.uid,
            messages=[deployment_pb2.ChatMessage(**m) for m in request.messages or []],
            prompt=request.prompt or "",
            max_tokens=settled.max_tokens,
            temperature=settled.temperature,
            top_p=settled.top_p,
            stop=settled.stop,
            max_context=deployment.max_context,
            stream=request.stream,
            **({"seed": settled.seed} if settled.seed is not None else {}),
        )
        call = self.routes.stub(address).Generate(
            message, metadata=((TOKEN_HEADER, self.token),), timeout=600
        )
        async for chunk in call:
            usage = None
            if chunk.HasField("usage"):
                usage = {
                    "prompt_tokens": chunk.usage.prompt_tokens,
                    "completion_tokens": chunk.usage.completion_tokens,
                }
            yield Piece(chunk.delta, chunk.finish_reason, usage, chunk.model_version)

    async def _log(
        self,
        deployment: DeploymentRow,
        request: CallRequest,
        settled: Settled | None,
        call_id: str,
        started: float,
        log: dict[str, Any],
    ) -> None:
        messages = (
            request.messages
            if request.messages is not None
            else [{"role": "user", "content": request.prompt or ""}]
        )
        answer = "".join(log["answer"])
        payload = None
        if deployment.logging:
            if deployment.pii_masking:
                messages = [{**m, "content": pii.mask(m.get("content", ""))[0]} for m in messages]
                answer = pii.mask(answer)[0]
            payload = {
                "messages": messages,
                "answer": answer,
                "parameters": settled.as_dict() if settled else {},
            }
        usage = log["usage"] or {}
        label = f"{deployment.project}/{deployment.deployment_id}"
        SERVE_CALLS.labels(label, log["status"] or "unknown").inc()
        SERVE_TOKENS.labels(label, "prompt").inc(usage.get("prompt_tokens", 0))
        SERVE_TOKENS.labels(label, "completion").inc(usage.get("completion_tokens", 0))
        SERVE_SECONDS.labels(label).observe(time.perf_counter() - started)
        row = CallRow(
            id=call_id,
            deployment_uid=deployment.uid,
            time=utcnow(),
            model_version=log["version"],
            status=log["status"],
            error=log["error"][:2000],
            prompt_tokens=usage.get("prompt_tokens", 0),
            completion_tokens=usage.get("completion_tokens", 0),
            latency_ms=(time.perf_counter() - started) * 1000,
            ttft_ms=log["ttft"] if request.stream else None,
            stream=request.stream,
            payload=payload,
            part="",
        )
        with contextlib.suppress(Exception):  # a call whose deployment was deleted meanwhile is not logged
            await self.db.run(lambda s: s.add(row))


def new_call_id(kind: str) -> str:
    """The response id a client sees (`chatcmpl-…`, `cmpl-…`), also the call log's id."""
    return f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex[:24]}"
