"""`tuneforge models ...`: the model registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tuneforge.api._calls import folder_files
from tuneforge.cli.output import emit_json, human_bytes, options, table, transfer_progress
from tuneforge.client import Client
from tuneforge.registry.v1 import model_pb2

app = typer.Typer(help="Models and their versions in the registry.", no_args_is_help=True)
alias_app = typer.Typer(help="Aliases such as `production` that point at a version.", no_args_is_help=True)
app.add_typer(alias_app, name="alias")

KIND = {
    model_pb2.MODEL_VERSION_KIND_FULL: "full",
    model_pb2.MODEL_VERSION_KIND_LORA_ADAPTER: "lora",
    model_pb2.MODEL_VERSION_KIND_OTHER: "other",
}


def client(ctx: typer.Context) -> Client:
    o = options(ctx)
    return Client(o.endpoint, api_key=o.api_key, project=o.project)


def parse_pairs(values: list[str] | None, what: str) -> dict[str, str]:
    out = {}
    for value in values or []:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{value!r} is not KEY=VALUE", param_hint=what)
        out[key] = val
    return out


def short(name: str) -> str:
    """`projects/p/models/m/versions/3` as `m/3`."""
    parts = name.split("/")
    if len(parts) >= 6 and parts[4] == "versions":
        return f"{parts[3]}/{parts[5]}"
    return parts[3] if len(parts) >= 4 else name


def show_version(version: model_pb2.ModelVersion) -> None:
    table(
        short(version.name),
        ["field", "value"],
        [
            ("name", version.name),
            ("kind", KIND.get(version.kind, "?")),
            ("size", human_bytes(version.total_size_bytes)),
            ("aliases", ", ".join(version.aliases)),
            ("base model", version.lineage.base_model),
            ("parent version", version.lineage.parent_version),
            ("source job", version.lineage.source_job),
            (
                "datasets",
                ", ".join(
                    f"{d.dataset_version}×{d.sampling_rate:g}" for d in version.lineage.dataset_versions
                ),
            ),
            ("metrics", ", ".join(f"{k}={v:g}" for k, v in sorted(version.metrics.items()))),
            ("tags", ", ".join(f"{k}={v}" for k, v in sorted(version.tags.items()))),
            ("created", version.create_time.ToDatetime().isoformat(timespec="seconds")),
        ],
    )
    table(
        "files",
        ["path", "size", "sha256"],
        [(f.path, human_bytes(f.size_bytes), f.sha256[:16] + "…") for f in version.files],
    )


@app.command("create")
def create(
    ctx: typer.Context,
    model_id: Annotated[str, typer.Argument(help="lower-case id, e.g. qwen-essay")],
    display_name: Annotated[str, typer.Option(help="human-readable name")] = "",
    description: Annotated[str, typer.Option()] = "",
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable")] = None,
) -> None:
    """Create a model."""
    model = client(ctx).models.create(
        model_id, display_name=display_name, description=description, tags=parse_pairs(tag, "--tag")
    )
    if options(ctx).json:
        emit_json(model)
    else:
        typer.echo(f"created {model.name}")


@app.command("list")
def list_models(
    ctx: typer.Context,
    filter: Annotated[str, typer.Option(help='e.g. tags.family = "llama"')] = "",
    order_by: Annotated[str, typer.Option(help="create_time, update_time or model_id, optionally desc")] = "",
) -> None:
    """List models in the project."""
    models = list(client(ctx).models.list(filter=filter, order_by=order_by))
    if options(ctx).json:
        emit_json(models)
        return
    table(
        f"models in {client(ctx).project}",
        ["model", "display name", "versions", "latest", "tags"],
        [
            (
                short(m.name),
                m.display_name,
                m.version_count,
                short(m.latest_version) if m.latest_version else "",
                ", ".join(f"{k}={v}" for k, v in sorted(m.tags.items())),
            )
            for m in models
        ],
    )


@app.command("show")
def show(
    ctx: typer.Context, ref: Annotated[str, typer.Argument(help="model, model/N or model@alias")]
) -> None:
    """Show a model, or a version with its files and lineage."""
    c = client(ctx)
    if "/" in ref.removeprefix("projects/").split("/models/")[-1] or "@" in ref:
        version = c.models.get_version(ref)
        if options(ctx).json:
            emit_json(version)
        else:
            show_version(version)
        return
    model = c.models.get(ref)
    if options(ctx).json:
        emit_json(model)
        return
    table(
        short(model.name),
        ["field", "value"],
        [
            ("name", model.name),
            ("display name", model.display_name),
            ("description", model.description),
            ("versions", model.version_count),
            ("latest", model.latest_version),
            ("tags", ", ".join(f"{k}={v}" for k, v in sorted(model.tags.items()))),
        ],
    )


@app.command("versions")
def versions(ctx: typer.Context, model: str, filter: Annotated[str, typer.Option()] = "") -> None:
    """List a model's versions."""
    items = list(client(ctx).models.list_versions(model, filter=filter))
    if options(ctx).json:
        emit_json(items)
        return
    table(
        f"versions of {model}",
        ["version", "kind", "size", "aliases", "parent", "created"],
        [
            (
                short(v.name),
                KIND.get(v.kind, "?"),
                human_bytes(v.total_size_bytes),
                ", ".join(v.aliases),
                short(v.lineage.parent_version) if v.lineage.parent_version else "",
                v.create_time.ToDatetime().isoformat(timespec="seconds"),
            )
            for v in items
        ],
    )


@app.command("upload")
def upload(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="the model to add a version to")],
    folder: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="a Hugging Face model folder")],
    description: Annotated[str, typer.Option()] = "",
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable")] = None,
    base_model: Annotated[str, typer.Option(help="a version (m/N) or hf://org/name or local:///path")] = "",
    parent: Annotated[str, typer.Option(help="the version this one was trained from (m/N)")] = "",
    presigned: Annotated[bool, typer.Option(help="upload straight to S3 by presigned URLs")] = False,
) -> None:
    """Upload a folder (safetensors weights, config, tokenizer) as a new immutable version."""
    c = client(ctx)
    lineage = {}
    if base_model:
        lineage["base_model"] = base_model if "://" in base_model else c.models.version_name(base_model)
    if parent:
        lineage["parent_version"] = c.models.version_name(parent)
    total = sum(p.stat().st_size for _, p in folder_files(folder))
    with transfer_progress(total, "upload", not options(ctx).json) as progress:
        task = progress.add_task(f"uploading {folder.name}", total=total)
        version = c.models.upload(
            model,
            folder,
            description=description,
            tags=parse_pairs(tag, "--tag"),
            lineage=lineage,
            presigned=presigned,
            progress=lambda n: progress.advance(task, n),
        )
    if options(ctx).json:
        emit_json(version)
    else:
        typer.echo(
            f"created {version.name} ({len(version.files)} files, {human_bytes(version.total_size_bytes)})"
        )


@app.command("download")
def download(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="model/N, model@alias or model (latest)")],
    dest: Annotated[Path, typer.Argument(help="folder to write into")],
    presigned: Annotated[bool, typer.Option(help="download straight from S3 by presigned URLs")] = False,
) -> None:
    """Download a version; every file is checked against its SHA-256 before it is put in place."""
    c = client(ctx)
    version = c.models.get_version(ref)
    with transfer_progress(version.total_size_bytes, "download", not options(ctx).json) as progress:
        task = progress.add_task(f"downloading {short(version.name)}", total=version.total_size_bytes)
        c.models.download(
            version.name, dest, presigned=presigned, progress=lambda n: progress.advance(task, n)
        )
    if options(ctx).json:
        emit_json(
            {"model_version": version.name, "dest": str(dest), "files": [f.path for f in version.files]}
        )
    else:
        typer.echo(f"downloaded {version.name} to {dest} ({len(version.files)} files verified)")


@app.command("delete")
def delete(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="model or model/N")],
    force: Annotated[bool, typer.Option(help="delete a model with its versions")] = False,
) -> None:
    """Delete a model or one version (refused while aliases or other versions depend on it)."""
    c = client(ctx)
    if "/" in ref.removeprefix("projects/").split("/models/")[-1]:
        c.models.delete_version(ref)
    else:
        c.models.delete(ref, force=force)
    if options(ctx).json:
        emit_json({"deleted": ref})
    else:
        typer.echo(f"deleted {ref}")


@alias_app.command("set")
def alias_set(
    ctx: typer.Context, model: str, alias: str, version: Annotated[str, typer.Argument(help="m/N")]
) -> None:
    """Point an alias at a version (creates or moves it)."""
    result = client(ctx).models.set_alias(model, alias, version)
    if options(ctx).json:
        emit_json(result)
    else:
        typer.echo(f"{model}@{alias} -> {short(result.version)}")


@alias_app.command("list")
def alias_list(ctx: typer.Context, model: str) -> None:
    """List a model's aliases."""
    aliases = list(client(ctx).models.list_aliases(model))
    if options(ctx).json:
        emit_json(aliases)
        return
    table(
        f"aliases of {model}",
        ["alias", "version", "updated"],
        [
            (
                a.name.rsplit("/", 1)[-1],
                short(a.version),
                a.update_time.ToDatetime().isoformat(timespec="seconds"),
            )
            for a in aliases
        ],
    )


@alias_app.command("rm")
def alias_rm(ctx: typer.Context, model: str, alias: str) -> None:
    """Remove an alias."""
    client(ctx).models.delete_alias(model, alias)
    if options(ctx).json:
        emit_json({"deleted": f"{model}@{alias}"})
    else:
        typer.echo(f"removed {model}@{alias}")
