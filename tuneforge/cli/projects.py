"""`tuneforge projects ...`: projects, their API keys and their audit log, over the iam service."""

from __future__ import annotations

from typing import Annotated

import typer

from tuneforge.api.iam import ROLE_NAMES
from tuneforge.cli.models import client
from tuneforge.cli.output import emit_json, options, table
from tuneforge.iam.v1 import iam_pb2

app = typer.Typer(help="Projects, their API keys (roles, expiry) and their audit log.", no_args_is_help=True)


def _when(ts: object) -> str:
    return ts.ToDatetime().strftime("%Y-%m-%d %H:%M") if ts.seconds else ""  # type: ignore[attr-defined]


def show_project(project: iam_pb2.Project) -> None:
    q = project.quota
    table(
        project.name,
        ["field", "value"],
        [
            ("display name", project.display_name),
            ("description", project.description),
            ("storage quota", f"{q.max_storage_bytes} bytes" if q.max_storage_bytes else "none"),
            ("running jobs quota", q.max_running_jobs or "none"),
            (
                "requests per second per key",
                f"{q.max_requests_per_second:g}" if q.max_requests_per_second else "default",
            ),
            ("created", _when(project.create_time)),
        ],
    )


@app.command("create")
def create(
    ctx: typer.Context,
    project_id: str,
    display_name: str = "",
    description: str = "",
    max_storage_bytes: int = 0,
    max_running_jobs: int = 0,
    max_requests_per_second: float = 0.0,
) -> None:
    """Create a project (an operator's key)."""
    project = client(ctx).iam.create_project(
        project_id,
        display_name=display_name,
        description=description,
        quota={
            "max_storage_bytes": max_storage_bytes,
            "max_running_jobs": max_running_jobs,
            "max_requests_per_second": max_requests_per_second,
        },
    )
    emit_json(project) if options(ctx).json else show_project(project)


@app.command("list")
def list_projects(ctx: typer.Context) -> None:
    """The projects this key may see."""
    items = list(client(ctx).iam.projects())
    if options(ctx).json:
        emit_json(items)
        return
    table(
        "projects",
        ["project", "display name", "created"],
        [(p.name, p.display_name, _when(p.create_time)) for p in items],
    )


@app.command("show")
def show(ctx: typer.Context, project: Annotated[str, typer.Argument()] = "") -> None:
    found = client(ctx).iam.get_project(project or None)
    emit_json(found) if options(ctx).json else show_project(found)


@app.command("set-quota")
def set_quota(
    ctx: typer.Context,
    project: str,
    max_storage_bytes: int = 0,
    max_running_jobs: int = 0,
    max_requests_per_second: float = 0.0,
) -> None:
    """Set a project's quota (an operator's key; 0 is no limit)."""
    updated = client(ctx).iam.update_project(
        project,
        quota={
            "max_storage_bytes": max_storage_bytes,
            "max_running_jobs": max_running_jobs,
            "max_requests_per_second": max_requests_per_second,
        },
    )
    emit_json(updated) if options(ctx).json else show_project(updated)


@app.command("delete")
def delete(ctx: typer.Context, project: str) -> None:
    """Delete an empty project (an operator's key); its keys stop working at once."""
    client(ctx).iam.delete_project(project)
    typer.echo(f"deleted projects/{project}")


@app.command("keys")
def keys(ctx: typer.Context, project: Annotated[str, typer.Argument()] = "") -> None:
    """The project's API keys (never their secrets)."""
    items = list(client(ctx).iam.keys(project or None))
    if options(ctx).json:
        emit_json(items)
        return
    table(
        "API keys",
        ["key", "role", "name", "created", "expires", "last used", "state"],
        [
            (
                k.name.rsplit("/", 1)[-1],
                ROLE_NAMES.get(k.role, "?"),
                k.display_name,
                _when(k.create_time),
                _when(k.expire_time),
                _when(k.last_used_time),
                "active" if k.active else ("revoked" if k.revoke_time.seconds else "expired"),
            )
            for k in items
        ],
    )


@app.command("create-key")
def create_key(
    ctx: typer.Context,
    role: Annotated[str, typer.Argument(help="viewer, member or admin")],
    project: Annotated[str, typer.Option(help="the project (default: the client's)")] = "",
    name: Annotated[str, typer.Option(help="who or what uses it")] = "",
    expires_in_days: Annotated[
        float | None, typer.Option(help="it stops working after this many days")
    ] = None,
) -> None:
    """Create an API key in the project; its secret is printed once."""
    made = client(ctx).iam.create_key(
        role, project=project or None, display_name=name, expires_in_days=expires_in_days
    )
    if options(ctx).json:
        emit_json({"api_key": made.api_key.name, "role": role, "token": made.token})
    else:
        typer.echo(made.token)


@app.command("revoke-key")
def revoke_key(
    ctx: typer.Context, key: Annotated[str, typer.Argument(help="the key's id or full name")]
) -> None:
    """Revoke a key: every service refuses it within a second."""
    c = client(ctx)
    name = key if key.startswith("projects/") else f"projects/{c.project}/apiKeys/{key}"
    revoked = c.iam.revoke_key(name)
    emit_json(revoked) if options(ctx).json else typer.echo(f"revoked {revoked.name}")


@app.command("audit")
def audit(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument()] = "",
    method: Annotated[str, typer.Option(help="only this method (its full name)")] = "",
    limit: int = 50,
) -> None:
    """The project's writes, newest first (who, what, when, how it ended)."""
    entries = []
    for entry in client(ctx).iam.audit_log(project or None, method=method):
        entries.append(entry)
        if len(entries) >= limit:
            break
    if options(ctx).json:
        emit_json(entries)
        return
    table(
        "audit log",
        ["time", "key", "role", "method", "resource", "status"],
        [
            (
                entry.time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S"),
                entry.api_key.rsplit("/", 1)[-1],
                ROLE_NAMES.get(entry.role, "?"),
                entry.method.rsplit("/", 1)[-1],
                entry.resource,
                entry.status,
            )
            for entry in entries
        ],
    )
