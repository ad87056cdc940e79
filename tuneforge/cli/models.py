"""`tuneforge models ...`: the model registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tuneforge.api._calls import folder_files
from tuneforge.cli.output import (
    console,
    emit_json,
    hint_other_project,
    human_bytes,
    options,
    table,
    to_dict,
    transfer_progress,
)
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
    try:
        return Client(o.endpoint, api_key=o.api_key, project=o.project, profile=o.profile)
    except ValueError as error:  # a missing or malformed profile
        raise typer.BadParameter(str(error), param_hint="--profile") from None


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
            ("family / parameters", f"{version.catalog.family} / {version.catalog.parameter_count:,}"),
            ("context / dtypes", f"{version.catalog.context_length} / {', '.join(version.catalog.dtypes)}"),
            (
                "license / chat template",
                f"{version.catalog.license or '?'} / {'yes' if version.catalog.has_chat_template else 'no'}",
            ),
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
    if not models and not filter:
        hint_other_project(client(ctx).project)


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


@app.command("import")
def import_model(
    ctx: typer.Context,
    source: Annotated[
        str, typer.Argument(help="a local Hugging Face folder, or a hub id such as Qwen/Qwen2.5-0.5B")
    ],
    model_id: Annotated[str, typer.Argument(help="the model to create or add a version to")],
    display_name: str = "",
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable")] = None,
) -> None:
    """Import a base model (safetensors only; remote-code models are refused) into the catalogue."""
    version = client(ctx).models.import_model(
        source, model_id, display_name=display_name, tags=parse_pairs(tag, "--tag")
    )
    if options(ctx).json:
        emit_json(version)
    else:
        show_version(version)


@app.command("catalog")
def catalog(
    ctx: typer.Context,
    filter: Annotated[str, typer.Option(help='e.g. family = "llama" AND kind = "full"')] = "",
) -> None:
    """The catalogue (模型广场): every version with its family, size, method and metrics side by side."""
    entries = client(ctx).models.catalog(filter=filter)
    if options(ctx).json:
        emit_json([{"model_version": to_dict(e.model_version), "method": e.method} for e in entries])
        return
    metric_names = sorted({k for e in entries for k in e.model_version.metrics})[:6]
    table(
        "catalogue",
        ["version", "kind", "family", "parameters", "context", "method", "aliases", *metric_names],
        [
            (
                short(v.name),
                KIND.get(v.kind, "?"),
                v.catalog.family,
                f"{v.catalog.parameter_count:,}",
                v.catalog.context_length or "",
                e.method,
                ", ".join(v.aliases),
                *[f"{v.metrics[m]:.4g}" if m in v.metrics else "" for m in metric_names],
            )
            for e in entries
            for v in [e.model_version]
        ],
    )


@app.command("lineage")
def lineage(
    ctx: typer.Context, ref: Annotated[str, typer.Argument(help="model/N, model@alias or model")]
) -> None:
    """Print a version's ancestors and descendants as a tree, with the job and data of each step."""
    from rich.tree import Tree

    graph = client(ctx).models.lineage(ref)
    if options(ctx).json:
        emit_json(to_dict(graph))
        return
    nodes = {n.model_version: n for n in graph.nodes}
    children: dict[str, list[tuple[str, str]]] = {}
    has_source = set()
    for edge in graph.edges:
        if edge.relation == "base" and any(
            e.child == edge.child and e.relation != "base" for e in graph.edges
        ):
            continue  # drawn under its parent; the base is still named on the node
        children.setdefault(edge.source, []).append((edge.child, edge.relation))
        has_source.add(edge.child)

    def label(name: str, relation: str = "") -> str:
        node = nodes[name]
        parts = [
            f"[bold]{short(name)}[/bold]" + (" ◀" if name == graph.root else ""),
            KIND.get(node.kind, "?"),
        ]
        if relation:
            parts.insert(0, f"[dim]{relation}[/dim]")
        if node.derivation:
            parts.append(f"derived: {node.derivation}")
        if node.lineage.source_job:
            parts.append(f"job {node.lineage.source_job.rsplit('/', 1)[-1]}")
        if node.lineage.dataset_versions:
            parts.append(
                "data "
                + ", ".join(
                    f"{d.dataset_version.split('/')[3]}/v{d.dataset_version.split('/')[5]}×{d.sampling_rate:g}"
                    for d in node.lineage.dataset_versions
                )
            )
        if node.aliases:
            parts.append("@" + ", @".join(node.aliases))
        return "  ".join(parts)

    def grow(tree: Tree, name: str) -> None:
        for child, relation in sorted(children.get(name, [])):
            grow(tree.add(label(child, relation)), child)

    for root in [n.model_version for n in graph.nodes if n.model_version not in has_source]:
        tree = Tree(label(root))
        grow(tree, root)
        console.print(tree)


@app.command("export")
def export(ctx: typer.Context, ref: str, dest: Path) -> None:
    """Export a version as a plain Hugging Face folder through one verified, streamed archive."""
    c = client(ctx)
    version = c.models.get_version(ref)
    with transfer_progress(version.total_size_bytes, "export", not options(ctx).json) as progress:
        task = progress.add_task(f"exporting {short(version.name)}", total=version.total_size_bytes)
        c.models.export(version.name, dest, progress=lambda n: progress.advance(task, n))
    if options(ctx).json:
        emit_json({"model_version": version.name, "dest": str(dest)})
    else:
        typer.echo(f"exported {version.name} to {dest} ({len(version.files)} files verified)")


@app.command("derive")
def derive(
    ctx: typer.Context,
    ref: str,
    operation: Annotated[str, typer.Argument(help="merge_lora, convert_dtype or quantize")],
    target: Annotated[
        str, typer.Argument(help="bfloat16/float16 for convert_dtype, int8/int4 for quantize")
    ] = "",
    output_model: str = "",
) -> None:
    """Merge a LoRA adapter into its base, convert dtype, or quantize weights, as a new version."""
    version = client(ctx).models.derive(ref, operation, target, output_model=output_model)
    if options(ctx).json:
        emit_json(version)
    else:
        typer.echo(
            f"created {version.name} ({version.catalog.derivation}, {human_bytes(version.total_size_bytes)})"
        )


@alias_app.command("history")
def alias_history(ctx: typer.Context, model: str) -> None:
    """Who moved which alias when, from which version to which."""
    entries = client(ctx).models.alias_history(model)
    if options(ctx).json:
        emit_json(entries)
        return
    table(
        f"alias history of {model}",
        ["time", "alias", "from", "to", "by key"],
        [
            (
                h.time.ToDatetime().isoformat(timespec="seconds"),
                h.alias,
                short(h.from_version) if h.from_version else "",
                short(h.to_version) if h.to_version else "(removed)",
                h.actor,
            )
            for h in entries
        ],
    )


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
