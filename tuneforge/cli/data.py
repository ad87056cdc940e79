"""`tuneforge data ...`: datasets, versions, insight, cleaning, splits, mixtures and presets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from google.protobuf import json_format

from tuneforge.api.datasets import KIND_NAMES, VERSION_STATES
from tuneforge.cli import augment
from tuneforge.cli.models import client, parse_pairs
from tuneforge.cli.output import (
    console,
    emit_json,
    exit_if_failed,
    hint_other_project,
    human_bytes,
    options,
    table,
    transfer_progress,
)
from tuneforge.data.v1 import dataset_pb2

app = typer.Typer(
    help="Datasets and their versions: upload, validate, inspect, clean, split, mix.", no_args_is_help=True
)
presets_app = typer.Typer(help="Ready-made scenarios (精调样板) with their data.", no_args_is_help=True)
app.add_typer(presets_app, name="presets")
app.add_typer(augment.teachers_app, name="teachers")
app.add_typer(augment.augment_app, name="augment")
app.add_typer(augment.annotate_app, name="annotate")

# FAILED in capitals: a version that holds no data should stand out in a table.
STATE = {**VERSION_STATES, dataset_pb2.DATASET_VERSION_STATE_FAILED: "FAILED"}


def short(name: str) -> str:
    parts = name.split("/")
    return f"{parts[3]}/{parts[5]}" if len(parts) >= 6 else parts[-1]


def show_version(version: dataset_pb2.DatasetVersion) -> None:
    table(
        short(version.name),
        ["field", "value"],
        [
            ("name", version.name),
            ("state", STATE.get(version.state, "?")),
            ("kind", KIND_NAMES.get(version.kind, "?")),
            ("rows", version.row_count),
            ("characters", version.character_count),
            ("skipped rows", version.skipped_row_count),
            ("source", version.source_file),
            ("recipe", json.dumps(json_format.MessageToDict(version.recipe), ensure_ascii=False)[:160]),
            ("tags", ", ".join(f"{k}={v}" for k, v in sorted(version.tags.items()))),
        ],
    )
    for warning in version.warnings:
        console.print(f"[yellow]warning[/] {warning.reason}: {warning.message}", highlight=False)
    if version.errors.error_count:
        table(
            f"{version.errors.error_count} bad rows: "
            + ", ".join(f"{k} {v}" for k, v in sorted(version.errors.counts_by_reason.items())),
            ["file", "line", "field", "reason", "message"],
            [
                (e.file, e.line or f"#{e.row + 1}", e.field, e.reason, e.message)
                for e in version.errors.examples
            ],
        )
    for step in version.cleaning:
        console.print(
            f"  {step.operation}: {step.rows_in} in, {step.rows_removed} removed, {step.rows_changed} changed"
        )


@app.command("create")
def create(
    ctx: typer.Context,
    dataset_id: str,
    kind: Annotated[
        str, typer.Option(help="text, sft, preference, unpaired_preference, prompt_only or eval")
    ],
    display_name: str = "",
    description: str = "",
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable")] = None,
) -> None:
    """Create a dataset of a kind."""
    dataset = client(ctx).data.create(
        dataset_id, kind, display_name=display_name, description=description, tags=parse_pairs(tag, "--tag")
    )
    emit_json(dataset) if options(ctx).json else typer.echo(f"created {dataset.name}")


@app.command("list")
def list_datasets(
    ctx: typer.Context, filter: Annotated[str, typer.Option(help='e.g. kind = "sft"')] = ""
) -> None:
    """List datasets in the project."""
    c = client(ctx)
    items = list(c.data.list(filter=filter))
    if options(ctx).json:
        emit_json(items)
        return
    table(
        f"datasets in {c.project}",
        ["dataset", "kind", "versions", "latest ready"],
        [
            (
                d.name.rsplit("/", 1)[-1],
                KIND_NAMES.get(d.kind, "?"),
                d.version_count,
                short(d.latest_version) if d.latest_version else "",
            )
            for d in items
        ],
    )
    if not items and not filter:
        hint_other_project(c.project)


@app.command("upload")
def upload(
    ctx: typer.Context,
    dataset: str,
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, help="JSONL, JSON, CSV, Parquet or text, optionally .gz"),
    ],
    format: Annotated[str, typer.Option(help="declare: jsonl, json, csv, parquet, text")] = "",
    schema: Annotated[
        str, typer.Option(help="declare: openai_chat, alpaca, sharegpt, qianfan, trl, text, canonical")
    ] = "",
    on_error: Annotated[str, typer.Option("--on-error", help="fail (default) or skip bad rows")] = "fail",
    description: str = "",
    presigned: Annotated[bool, typer.Option(help="upload straight to S3 by a presigned URL")] = False,
    column: Annotated[
        list[str] | None,
        typer.Option(
            "--column",
            help="FIELD=COLUMN: read the file's COLUMN as FIELD (prompt, response, reference, ...); repeatable",
        ),
    ] = None,
    text_split: Annotated[
        str, typer.Option(help="text files: blank_line (default), line (one document per line) or file")
    ] = "",
) -> None:
    """Upload a file as a new version; every bad row is reported with its line and field."""
    c = client(ctx)
    size = file.stat().st_size
    with transfer_progress(size, "upload", not options(ctx).json) as progress:
        task = progress.add_task(f"uploading {file.name}", total=size)
        version = c.data.upload(
            dataset,
            file,
            format=format,
            schema=schema,
            error_policy=on_error,
            description=description,
            presigned=presigned,
            progress=lambda n: progress.advance(task, n),
            columns=parse_pairs(column or [], "--column"),
            text_split=text_split,
        )
    emit_json(version) if options(ctx).json else show_version(version)
    exit_if_failed(
        version.state == dataset_pb2.DATASET_VERSION_STATE_FAILED,
        f"{version.name} FAILED validation ({version.errors.error_count} bad rows); fix them or use --on-error skip",
    )


def exit_if_version_failed(version: dataset_pb2.DatasetVersion) -> None:
    exit_if_failed(
        version.state == dataset_pb2.DATASET_VERSION_STATE_FAILED,
        f"{version.name} FAILED: {version.failure.message or version.failure.reason or 'see its errors'}",
    )


@app.command("versions")
def versions(ctx: typer.Context, dataset: str) -> None:
    """List a dataset's versions."""
    items = list(client(ctx).data.list_versions(dataset))
    if options(ctx).json:
        emit_json(items)
        return
    table(
        f"versions of {dataset}",
        ["version", "state", "rows", "characters", "bad rows", "made by", "tags"],
        [
            (
                short(v.name),
                STATE.get(v.state, "?"),
                v.row_count,
                v.character_count,
                v.errors.error_count,
                json_format.MessageToDict(v.recipe).get("type", ""),
                ", ".join(f"{k}={x}" for k, x in sorted(v.tags.items())),
            )
            for v in items
        ],
    )


@app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="dataset/N, or dataset for the latest ready version")],
) -> None:
    """Show a version with its error summary and recipe."""
    version = client(ctx).data.get_version(ref)
    emit_json(version) if options(ctx).json else show_version(version)


@app.command("rows")
def rows(ctx: typer.Context, ref: str, limit: Annotated[int, typer.Option(help="rows to print")] = 5) -> None:
    """Print the first rows of a ready version in canonical form (JSON lines)."""
    for i, row in enumerate(client(ctx).data.rows(ref, page_size=min(limit, 1000))):
        if i >= limit:
            break
        typer.echo(json.dumps(row, ensure_ascii=False))


@app.command("download")
def download(ctx: typer.Context, ref: str, dest: Path) -> None:
    """Download a version's files (data.parquet, manifest.json, errors.jsonl, the source), verified."""
    version = client(ctx).data.download(ref, dest)
    emit_json({"dataset_version": version.name, "dest": str(dest)}) if options(ctx).json else typer.echo(
        f"downloaded {version.name} to {dest}"
    )


@app.command("insight")
def insight(
    ctx: typer.Context,
    ref: str,
    tokenizer: Annotated[str, typer.Option(help="a model version (m/N) whose tokenizer counts tokens")] = "",
    max_sequence_length: int = 2048,
) -> None:
    """Lengths, duplicates, scripts, labels and PII of a version, with charts."""
    result = client(ctx).data.insight(ref, tokenizer=tokenizer, max_sequence_length=max_sequence_length)
    report = json_format.MessageToDict(result.report)
    if options(ctx).json:
        emit_json({"report": report, "charts": {c.path: c.url for c in result.charts}})
        return
    unit = report["length_unit"]
    prompt = report.get(f"prompt_{unit}") or report["prompt_characters"]
    response = report.get(f"response_{unit}") or report.get("response_characters") or {}
    table(
        short(result.dataset_version),
        ["measure", "value"],
        [
            ("rows", int(report["rows"])),
            (
                f"prompt length p50 / p90 / max ({unit})",
                f"{prompt.get('p50', 0):.0f} / {prompt.get('p90', 0):.0f} / {prompt.get('max', 0):.0f}",
            ),
            (
                f"response length p50 / p90 / max ({unit})",
                f"{response.get('p50', 0):.0f} / {response.get('p90', 0):.0f} / {response.get('max', 0):.0f}"
                if response
                else "",
            ),
            (
                f"rows over {int(report['max_sequence_length'])} {unit}",
                int(report["rows_over_max_sequence_length"]),
            ),
            (
                "exact / near duplicates",
                f"{int(report['exact_duplicates'])} / {int(report['near_duplicates'])}",
            ),
            ("rows with empty fields", int(report["rows_with_empty_fields"])),
            ("script mix", ", ".join(f"{k} {v:.0%}" for k, v in report["script_mix"].items())),
            ("PII (rows)", ", ".join(f"{k} {int(v)}" for k, v in report["pii_rows"].items()) or "none"),
            ("labels", ", ".join(f"{k} {int(v)}" for k, v in report.get("labels", {}).items())),
        ],
    )
    for chart in result.charts:
        typer.echo(f"chart {chart.path}: {chart.url}")


@app.command("clean")
def clean(
    ctx: typer.Context,
    ref: str,
    op: Annotated[
        list[str],
        typer.Option(
            "--op",
            help='an operation name, or JSON like {"near_dedup": {"threshold": 0.85}}; repeatable, in order',
        ),
    ],
    description: str = "",
) -> None:
    """Run a cleaning pipeline, making a new version with what each step removed or changed."""
    operations = [json.loads(o) if o.strip().startswith("{") else o for o in op]
    version = client(ctx).data.clean(ref, operations, description=description)
    emit_json(version) if options(ctx).json else show_version(version)
    exit_if_version_failed(version)


@app.command("split")
def split(
    ctx: typer.Context, ref: str, validation_ratio: Annotated[float, typer.Option()] = 0.1, seed: int = 0
) -> None:
    """Split a version into train and validation versions, deterministically."""
    result = client(ctx).data.split(ref, validation_ratio, seed=seed)
    if options(ctx).json:
        emit_json(
            {
                "train": json_format.MessageToDict(result.train),
                "validation": json_format.MessageToDict(result.validation),
            }
        )
    else:
        typer.echo(
            f"train {short(result.train.name)} ({result.train.row_count} rows), validation {short(result.validation.name)} ({result.validation.row_count} rows)"
        )


def _sources(values: list[str]) -> dict[str, float]:
    out = {}
    for value in values:
        ref, sep, rate = value.rpartition("=")
        try:
            out[ref] = float(rate)
        except ValueError:
            raise typer.BadParameter(
                f"{value!r} is not VERSION=RATE (e.g. essays/2=0.5)", param_hint="--source"
            ) from None
        if not sep:
            raise typer.BadParameter(f"{value!r} is not VERSION=RATE", param_hint="--source")
    return out


@app.command("mix")
def mix(
    ctx: typer.Context,
    source: Annotated[
        list[str], typer.Option("--source", help="VERSION=RATE, e.g. essays/2=1.0; repeatable")
    ],
    into: Annotated[
        str, typer.Option(help="dataset that receives the mixture (omit to only show the plan)")
    ] = "",
    seed: int = 0,
) -> None:
    """Show a mixture's plan (数据配比), and with --into make it as a new version."""
    c = client(ctx)
    sources = _sources(source)
    plan = c.data.plan_mixture(sources, seed=seed)
    if not options(ctx).json:
        table(
            "mixture plan",
            ["source", "characters", "samples", "rate", "sampled", "share"],
            [
                (
                    short(s.source.dataset_version),
                    s.characters,
                    s.samples,
                    f"{s.source.sampling_rate:g}",
                    s.sampled_samples,
                    f"{s.share:.2%}",
                )
                for s in plan.sources
            ],
        )
    if into:
        version = c.data.create_mixture(into, sources, seed=seed)
        emit_json(version) if options(ctx).json else typer.echo(
            f"created {version.name} ({version.row_count} rows)"
        )
        exit_if_version_failed(version)
    elif options(ctx).json:
        emit_json(plan)


@app.command("delete")
def delete(
    ctx: typer.Context,
    ref: str,
    force: Annotated[bool, typer.Option(help="delete a dataset with its versions")] = False,
) -> None:
    """Delete a dataset (dataset) or a version (dataset/N)."""
    c = client(ctx)
    c.data.delete_version(ref) if "/" in ref.removeprefix("projects/").split("/datasets/")[
        -1
    ] else c.data.delete(ref, force=force)
    emit_json({"deleted": ref}) if options(ctx).json else typer.echo(f"deleted {ref}")


@presets_app.command("list")
def presets_list(ctx: typer.Context) -> None:
    """List the presets."""
    items = client(ctx).data.presets()
    if options(ctx).json:
        emit_json(items)
        return
    table(
        "presets",
        ["preset", "title", "method", "datasets", "metrics"],
        [
            (
                p.name.removeprefix("presets/"),
                p.display_name,
                p.method,
                ", ".join(p.datasets),
                ", ".join(p.metrics),
            )
            for p in items
        ],
    )


@presets_app.command("install")
def presets_install(ctx: typer.Context, preset: str) -> None:
    """Create a preset's datasets in the project."""
    result = client(ctx).data.install_preset(preset)
    if options(ctx).json:
        emit_json(json_format.MessageToDict(result, preserving_proto_field_name=True))
        return
    for version in result.dataset_versions:
        typer.echo(
            f"installed {short(version.name)}: {version.row_count} rows, {human_bytes(version.character_count)} of text"
        )
