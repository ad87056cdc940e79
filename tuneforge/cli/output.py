"""How the CLI prints: rich tables for people, JSON for scripts, one line for errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import typer
from google.protobuf import json_format
from google.protobuf.message import Message
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


@dataclass
class Options:
    """Global options every command sees."""

    endpoint: str | None = None
    api_key: str | None = None
    project: str | None = None
    json: bool = False
    profile: str | None = None


def options(ctx: typer.Context) -> Options:
    return ctx.ensure_object(Options)


def to_dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def emit_json(value: Any) -> None:
    if isinstance(value, Message):
        value = to_dict(value)
    elif isinstance(value, list) and value and isinstance(value[0], Message):
        value = [to_dict(v) for v in value]
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def exit_if_failed(failed: bool, message: str) -> None:
    """Every command exits 1 when what it made or waited for failed, whatever the output format."""
    if failed:
        err_console.print(f"error: {message}", markup=False, highlight=False)
        raise typer.Exit(1)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    t = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        t.add_column(column)
    for row in rows:
        t.add_row(*["" if v is None else str(v) for v in row])
    console.print(t)


def transfer_progress(total: int, description: str, enabled: bool) -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=not enabled or not err_console.is_terminal,
        transient=True,
    )


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def hint_other_project(project: str) -> None:
    """An empty list in the default project after a quickstart: say where its resources are."""
    from tuneforge.client import tuneforge_home

    if project == "default" and (tuneforge_home() / "quickstart").is_dir():
        err_console.print(
            "nothing in project `default`; the quickstart's models and data are in project "
            "`quickstart`: pass --project quickstart (or export TUNEFORGE_PROJECT=quickstart)",
            markup=False,
        )
