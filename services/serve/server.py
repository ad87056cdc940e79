"""The serve service: its gRPC edge (thin handlers over `Deployments`, `Calls`, `CallLogs`,
`Backflow`) and, in the same process and event loop, the OpenAI-compatible HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import uvicorn
from google.protobuf import empty_pb2
from pydantic import Field

from services.kit.peers import Peers
from services.kit.server import open_runtime, serve
from services.kit.settings import KitSettings, load_settings
from services.kit.times import from_timestamp
from services.kit.watch import ChangeFeed
from services.serve.backflow import Backflow
from services.serve.calls import CallRequest, Calls, Routes, new_call_id
from services.serve.deployments import Deployments
from services.serve.internal import engine_token
from services.serve.logs import CallLogs
from services.serve.openai_api import OpenAiApi
from services.serve.repo import OUTBOX
from tuneforge.serve.v1 import deployment_pb2, serve_service_pb2, serve_service_pb2_grpc

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
Context = grpc.aio.ServicerContext


class ServeSettings(KitSettings):
    registry_endpoint: str = Field(description="registry host:port: the versions deployments serve")
    data_endpoint: str = Field("", description="data service host:port: where backflow writes")
    serve_http_listen: str = Field(
        "127.0.0.1:8000", description="host:port of the OpenAI-compatible API (port 0: any)"
    )
    serve_http_port_file: Path | None = Field(None, description="write the HTTP port here once listening")
    serve_log_compact_after_seconds: float = Field(
        3600, gt=0, description="payloads older than this go to Parquet"
    )
    serve_compact_interval_seconds: float = Field(300, gt=0)


class ServeServicer(serve_service_pb2_grpc.ServeServiceServicer):
    def __init__(self, deployments: Deployments, calls: Calls, logs: CallLogs, backflow: Backflow) -> None:
        self.deployments = deployments
        self.calls = calls
        self.logs = logs
        self.backflow = backflow

    async def CreateDeployment(
        self, request: serve_service_pb2.CreateDeploymentRequest, context: Context
    ) -> deployment_pb2.Deployment:
        return await self.deployments.create(
            request.parent, request.deployment_id, request.deployment, request.request_id
        )

    async def GetDeployment(
        self, request: serve_service_pb2.GetDeploymentRequest, context: Context
    ) -> deployment_pb2.Deployment:
        return await self.deployments.get(request.name)

    async def ListDeployments(
        self, request: serve_service_pb2.ListDeploymentsRequest, context: Context
    ) -> serve_service_pb2.ListDeploymentsResponse:
        items, token = await self.deployments.list(request.parent, request.page_size, request.page_token)
        return serve_service_pb2.ListDeploymentsResponse(deployments=items, next_page_token=token)

    async def UpdateDeployment(
        self, request: serve_service_pb2.UpdateDeploymentRequest, context: Context
    ) -> deployment_pb2.Deployment:
        return await self.deployments.update(request.deployment, list(request.update_mask.paths))

    async def DeleteDeployment(
        self, request: serve_service_pb2.DeleteDeploymentRequest, context: Context
    ) -> empty_pb2.Empty:
        uid = (await self.deployments.get(request.name)).uid
        await self.deployments.delete(request.name)
        with contextlib.suppress(Exception):  # the parts of compacted logs; best effort
            await self.logs.delete_parts(uid)
        return empty_pb2.Empty()

    async def WatchDeployment(
        self, request: serve_service_pb2.WatchDeploymentRequest, context: Context
    ) -> AsyncIterator[deployment_pb2.Deployment]:
        async for deployment in self.deployments.watch(request.name):
            yield deployment

    async def Chat(
        self, request: serve_service_pb2.ChatRequest, context: Context
    ) -> AsyncIterator[serve_service_pb2.ChatResponse]:
        deployment = await self.deployments.for_call(request.deployment, "deployment")
        call = CallRequest(
            messages=[{"role": m.role, "content": m.content} for m in request.messages],
            max_tokens=request.max_tokens or None,
            temperature=request.temperature if request.HasField("temperature") else None,
            top_p=request.top_p if request.HasField("top_p") else None,
            stop=list(request.stop),
            seed=request.seed if request.HasField("seed") else None,
            stream=True,
        )
        call_id = new_call_id("chat")
        async for piece in self.calls.run(deployment, call, call_id):
            usage = None
            if piece.usage:
                usage = deployment_pb2.Usage(
                    prompt_tokens=piece.usage["prompt_tokens"],
                    completion_tokens=piece.usage["completion_tokens"],
                    total_tokens=piece.usage["prompt_tokens"] + piece.usage["completion_tokens"],
                )
            yield serve_service_pb2.ChatResponse(
                id=call_id,
                delta=piece.delta,
                finish_reason=piece.finish_reason,
                usage=usage,
                model_version=piece.model_version,
            )

    async def GetDeploymentStats(
        self, request: serve_service_pb2.GetDeploymentStatsRequest, context: Context
    ) -> deployment_pb2.DeploymentStats:
        await self.calls.written()
        start = from_timestamp(request.start_time, "start_time") if request.HasField("start_time") else None
        end = from_timestamp(request.end_time, "end_time") if request.HasField("end_time") else None
        return await self.logs.stats(request.name, start, end)

    async def ListCallLogs(
        self, request: serve_service_pb2.ListCallLogsRequest, context: Context
    ) -> serve_service_pb2.ListCallLogsResponse:
        await self.calls.written()
        items, token = await self.logs.list(
            request.parent, request.page_size, request.page_token, request.filter
        )
        return serve_service_pb2.ListCallLogsResponse(call_logs=items, next_page_token=token)

    async def SubmitFeedback(
        self, request: serve_service_pb2.SubmitFeedbackRequest, context: Context
    ) -> deployment_pb2.CallLog:
        await self.calls.written()
        return await self.logs.feedback(request.name, request.feedback)

    async def CreateDatasetFromLogs(
        self, request: serve_service_pb2.CreateDatasetFromLogsRequest, context: Context
    ) -> serve_service_pb2.CreateDatasetFromLogsResponse:
        await self.calls.written()
        return await self.backflow.create(request)


class EmbeddedHttp(uvicorn.Server):
    """uvicorn inside the service's own event loop: the service handles the signals."""

    def capture_signals(self) -> Any:
        return contextlib.nullcontext()


async def start_http(
    app: Any, listen: str, port_file: Path | None, tls_files: tuple[Path, Path] | None = None
) -> tuple[EmbeddedHttp, asyncio.Task[None], int]:
    """The OpenAI-compatible API on `listen`; HTTPS with `tls_files` (certificate, key)."""
    host, _, port = listen.rpartition(":")
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it every response waits ~40 ms for the client's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), int(port)))
    bound = sock.getsockname()[1]
    ssl = {"ssl_certfile": str(tls_files[0]), "ssl_keyfile": str(tls_files[1])} if tls_files else {}
    server = EmbeddedHttp(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, **ssl))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    if port_file:
        tmp = port_file.with_suffix(".tmp")
        tmp.write_text(str(bound))
        tmp.replace(port_file)
    log.info("serving the OpenAI-compatible API", extra={"port": bound})
    return server, task, bound


async def main() -> None:
    settings = load_settings(ServeSettings)
    runtime = await open_runtime("serve", settings, migrations=MIGRATIONS, outbox_table=OUTBOX)
    assert runtime.keys is not None
    feed = ChangeFeed(runtime.bus, "tuneforge.serve.>")
    await feed.start()
    runtime.closers.append(feed.stop)
    peers = Peers({"registry": settings.registry_endpoint, "data": settings.data_endpoint})
    runtime.closers.append(peers.close)
    routes = Routes(runtime.db)
    runtime.closers.append(routes.close)
    deployments = Deployments(runtime.db, runtime.outbox, runtime.page_tokens, peers, feed)
    calls = Calls(runtime.db, routes, engine_token(settings.secret_key.get_secret_value()))
    runtime.closers.append(calls.written)
    logs = CallLogs(runtime.db, runtime.store, runtime.outbox, runtime.page_tokens)
    servicer = ServeServicer(deployments, calls, logs, Backflow(logs, peers))
    compact_after = timedelta(seconds=settings.serve_log_compact_after_seconds)
    runtime.run_periodically(
        "compacted call logs", settings.serve_compact_interval_seconds, lambda: logs.compact(compact_after)
    )
    api = OpenAiApi(runtime.keys, deployments, calls, logs)
    tls_files = (
        (settings.tls_cert_file, settings.tls_key_file) if settings.tls_cert_file and settings.tls_key_file else None
    )
    http, http_task, _ = await start_http(api.app, settings.serve_http_listen, settings.serve_http_port_file, tls_files)

    async def stop_http() -> None:
        http.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(http_task, timeout=10)

    runtime.closers.append(stop_http)

    def register(server: grpc.aio.Server) -> list[str]:
        serve_service_pb2_grpc.add_ServeServiceServicer_to_server(servicer, server)
        return [serve_service_pb2.DESCRIPTOR.services_by_name["ServeService"].full_name]

    await serve(runtime, register)
