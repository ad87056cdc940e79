"""`tuneforge up`, `tuneforge status` and `tuneforge keys`: the embedded local suite and API keys.

These commands need the server packages (`pip install tuneforge[local]`); they are imported lazily
so that the SDK and the other commands work without them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from google.protobuf import json_format

from tuneforge.cli.output import emit_json, err_console, options, table
from tuneforge.client import tuneforge_home
from tuneforge.errors import TuneForgeError

if TYPE_CHECKING:
    from services.kit.auth import ApiKeyStore


keys_app = typer.Typer(help="API keys (operator commands on the auth database).", no_args_is_help=True)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="where the suite keeps its data [default: $TUNEFORGE_HOME or ~/.tuneforge]"
    ),
]


def _data_dir(value: Path | None) -> Path:
    return (value or tuneforge_home()).expanduser()


def _need_server_packages() -> None:
    try:
        import services.suite.suite  # noqa: F401
    except ImportError as exc:
        raise typer.BadParameter(
            f"the local suite needs the server packages ({exc.name} is missing): pip install 'tuneforge[local]'"
        ) from None


def up(ctx: typer.Context, data_dir: DataDir = None) -> None:
    """Start NATS, S3 and the services on loopback ports; Ctrl-C stops everything. Data persists."""
    _need_server_packages()
    from services.suite.suite import LocalSuite, SuiteRunning

    suite = LocalSuite(_data_dir(data_dir))
    err_console.print(f"starting the local suite in {suite.data_dir} …")
    stop = {"now": False}

    def request_stop(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, request_stop)
    # Ctrl-C stops the suite even when whatever started this process ignored SIGINT (a shell's
    # background job does), which Python would otherwise inherit.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        try:
            suite.start()
        except SuiteRunning as running:
            err_console.print(f"error: {running}", markup=False)
            raise typer.Exit(1) from None
        if options(ctx).json:
            emit_json(
                {
                    "endpoints": suite.endpoints,
                    "admin_api_key": suite.admin_key,
                    "data_dir": str(suite.data_dir),
                }
            )
        else:
            table("TuneForge local suite", ["component", "endpoint"], sorted(suite.endpoints.items()))
            typer.echo(f"admin API key: {suite.admin_key}")
            typer.echo(f"data: {suite.data_dir}   logs: {suite.data_dir / 'logs'}")
            typer.echo("Ctrl-C stops everything; data is kept for the next `tuneforge up`.")
        while not stop["now"]:
            for name, process in list(suite.processes.items()):
                if not process.running():
                    err_console.print(f"error: {name} stopped unexpectedly; see {process.log_path}")
                    stop["now"] = True
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        err_console.print("stopping …")
        suite.stop()


def _tcp(address: str) -> bool:
    host, _, port = address.rpartition(":")
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, int(port))) == 0


def _http_answers(address: str) -> bool:
    try:
        urllib.request.urlopen(f"http://{address}/", timeout=2)
    except urllib.error.HTTPError:
        return True  # S3 answers 403 to an anonymous request: it is up
    except OSError:
        return False
    return True


def status(ctx: typer.Context, data_dir: DataDir = None) -> None:
    """Show each component's health."""
    endpoints_file = _data_dir(data_dir) / "endpoints.json"
    if not endpoints_file.exists():
        raise typer.BadParameter(
            f"no running suite found ({endpoints_file} is missing); start one with `tuneforge up`"
        )
    endpoints: dict[str, str] = json.loads(endpoints_file.read_text())
    from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: I001
    import grpc

    rows = []
    for name, address in sorted(endpoints.items()):
        if name == "nats":
            healthy = _tcp(address.removeprefix("nats://"))
        elif name == "s3":
            healthy = _http_answers(address)
        elif name == "openai":  # the serve service's HTTP API: it answers 401 without a key
            healthy = _http_answers(address.removeprefix("http://") + "/models")
        elif name == "console":  # the browser console and its gRPC-Web gateway
            healthy = _http_answers(address.removeprefix("http://") + "/healthz")
        else:
            from tuneforge.client import tls_credentials

            target = address.removeprefix("tls://")
            channel = (
                grpc.secure_channel(target, tls_credentials())
                if address.startswith("tls://")
                else grpc.insecure_channel(target)
            )
            with channel:
                try:
                    reply = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=2
                    )
                    healthy = reply.status == health_pb2.HealthCheckResponse.SERVING
                except grpc.RpcError:
                    healthy = False
        rows.append((name, address, "serving" if healthy else "down"))
    train_up = any(name == "train" and state == "serving" for name, _, state in rows)
    found = _workers(_data_dir(data_dir), endpoints) if train_up else []
    if options(ctx).json:
        # The components as before, then one entry per training worker (`worker:NAME`).
        emit_json(
            [{"component": n, "endpoint": a, "status": s} for n, a, s in rows]
            + [
                {
                    "component": f"worker:{w.name.removeprefix('workers/')}",
                    "endpoint": "",
                    "status": "busy" if w.busy else "idle",
                    **json_format.MessageToDict(w, preserving_proto_field_name=True),
                }
                for w in found
            ]
        )
    else:
        table("TuneForge status", ["component", "endpoint", "status"], rows)
        from tuneforge.cli.train import worker_rows

        table(
            "training workers",
            ["worker", "devices", "memory/device", "backends", "state"],
            worker_rows(found),
        )
    if any(s != "serving" for _, _, s in rows):
        raise typer.Exit(1)


def _workers(folder: Path, endpoints: dict[str, str]) -> list[object]:
    """The training workers' heartbeats, asked with the suite's admin key (none when it is missing)."""
    key_file = folder / "admin.key"
    if not key_file.exists():
        return []
    from tuneforge import Client

    try:
        with Client(endpoints, api_key=key_file.read_text().strip(), project="default") as c:
            return list(c.train.workers())
    except TuneForgeError as error:
        err_console.print(f"workers not listed: {error}")
        return []


@contextmanager
def _keys(database_url: str | None, data_dir: Path | None) -> Iterator[ApiKeyStore]:
    """The auth database's key store; its domain errors become the CLI's one-line errors."""
    _need_server_packages()
    from services.kit.auth import ApiKeyStore
    from services.kit.db import Database
    from services.kit.errors import ServiceError as DomainError

    url = (
        database_url
        or os.environ.get("TUNEFORGE_AUTH_DATABASE_URL")
        or f"sqlite:///{_data_dir(data_dir) / 'db' / 'auth.db'}"
    )
    store = ApiKeyStore(Database(url, schema="auth"))
    try:
        store.migrate()
        yield store
    except DomainError as error:
        raise TuneForgeError(error.code, error.message, reason=error.reason) from None
    finally:
        store.db.dispose()


AuthDb = Annotated[
    str | None, typer.Option("--auth-database-url", help="[default: the local suite's auth database]")
]


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    project: Annotated[str, typer.Option(help="the project the key may act on ('*' with --role admin: all)")],
    role: Annotated[str, typer.Option(help="viewer, member or admin")] = "member",
    name: Annotated[str, typer.Option(help="a note on who uses it")] = "",
    auth_database_url: AuthDb = None,
    data_dir: DataDir = None,
) -> None:
    """Create an API key; the key is printed once and never stored."""
    from services.kit.access import ensure_project

    with _keys(auth_database_url, data_dir) as store, store.db.transaction() as session:
        if project != "*":
            ensure_project(session, project)
        key, token = store.create(project, role, name, session=session)
    if options(ctx).json:
        emit_json({"key_id": key.key_id, "project": key.project, "role": key.role, "api_key": token})
    else:
        typer.echo(token)


@keys_app.command("list")
def keys_list(ctx: typer.Context, auth_database_url: AuthDb = None, data_dir: DataDir = None) -> None:
    """List API keys (never their secrets)."""
    with _keys(auth_database_url, data_dir) as store:
        keys = store.list()
    if options(ctx).json:
        emit_json(
            [
                {
                    "key_id": k.key_id,
                    "project": k.project,
                    "role": k.role,
                    "name": k.display_name,
                    "revoked": k.revoke_time is not None,
                }
                for k in keys
            ]
        )
        return
    table(
        "API keys",
        ["key id", "project", "role", "name", "created", "revoked"],
        [
            (
                k.key_id,
                k.project,
                k.role,
                k.display_name,
                k.create_time.isoformat(timespec="seconds"),
                k.revoke_time.isoformat(timespec="seconds") if k.revoke_time else "",
            )
            for k in keys
        ],
    )


@keys_app.command("revoke")
def keys_revoke(
    ctx: typer.Context, key_id: str, auth_database_url: AuthDb = None, data_dir: DataDir = None
) -> None:
    """Revoke an API key (every service refuses it within about a second)."""
    with _keys(auth_database_url, data_dir) as store:
        key = store.revoke(key_id)
    if options(ctx).json:
        emit_json({"key_id": key.key_id, "revoked": True})
    else:
        typer.echo(f"revoked {key.key_id}")
