"""The console process: the built single-page app (`console/dist`) and the gRPC-Web gateway to the
services, on one origin, so the page needs no CORS and no second API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import uvicorn
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from services.console.gateway import Gateway
from services.kit import tls
from services.kit.logs import configure_logging
from services.kit.settings import load_settings

log = logging.getLogger(__name__)
DEFAULT_STATIC = Path(__file__).resolve().parents[2] / "console" / "dist"
# The page loads only its own scripts and styles and talks only to its own origin.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUNEFORGE_", extra="ignore", frozen=True)

    console_listen: str = Field("127.0.0.1:8080", description="host:port of the console (port 0: any)")
    console_port_file: Path | None = Field(None, description="write the bound port here once listening")
    console_static_dir: Path = Field(DEFAULT_STATIC, description="the built app (npm run build)")
    console_max_request_bytes: int = Field(32 * 1024 * 1024, ge=1024, description="largest call (uploads)")
    registry_endpoint: str = ""
    data_endpoint: str = ""
    train_endpoint: str = ""
    eval_endpoint: str = ""
    serve_endpoint: str = ""
    iam_endpoint: str = ""
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_ca_file: Path | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "text"] = "auto"


def create_app(settings: ConsoleSettings) -> Starlette:
    endpoints = {
        "registry": settings.registry_endpoint,
        "data": settings.data_endpoint,
        "train": settings.train_endpoint,
        "eval": settings.eval_endpoint,
        "serve": settings.serve_endpoint,
        "iam": settings.iam_endpoint,
    }
    gateway = Gateway(endpoints, max_request_bytes=settings.console_max_request_bytes)
    static = settings.console_static_dir
    index = static / "index.html"

    async def page(request: Request) -> Response:
        """Every path of the app is the app (it routes in the browser)."""
        if not index.exists():
            return PlainTextResponse(
                f"the console is not built: run `npm ci && npm run build` in console/ ({static})", 503
            )
        return FileResponse(index, headers={**SECURITY_HEADERS, "cache-control": "no-cache"})

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await gateway.close()

    routes = [
        Route("/healthz", health),
        Route("/tuneforge.{rest:path}", gateway.handle, methods=["POST"]),
    ]
    if (static / "assets").is_dir():
        routes.append(Mount("/assets", StaticFiles(directory=static / "assets")))
    routes.append(Route("/{rest:path}", page, methods=["GET"]))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.gateway = gateway
    return app


async def main() -> None:
    settings = load_settings(ConsoleSettings)
    configure_logging(settings.log_level, settings.log_format)
    tls.configure(tls.TlsConfig.from_files(None, None, settings.tls_ca_file, None))
    host, _, port = settings.console_listen.rpartition(":")
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=int(port),
        log_level="warning",
        ssl_certfile=str(settings.tls_cert_file) if settings.tls_cert_file else None,
        ssl_keyfile=str(settings.tls_key_file) if settings.tls_key_file else None,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()  # it could not listen: say why
            return
        await asyncio.sleep(0.05)
    if settings.console_port_file:
        bound = server.servers[0].sockets[0].getsockname()[1]
        tmp = settings.console_port_file.with_suffix(".tmp")
        tmp.write_text(str(bound))
        tmp.replace(settings.console_port_file)
        log.info("console serving", extra={"port": bound})
    await serving
