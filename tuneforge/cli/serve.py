"""`tuneforge serve ...` and `tuneforge chat`: deployments, their calls and feedback, backflow."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from tuneforge.api.serving import DEPLOYMENT_STATES
from tuneforge.cli.models import client, short
from tuneforge.cli.output import console, emit_json, exit_if_failed, options, table

app = typer.Typer(
    help="Serving (模型服务): deployments behind an OpenAI-compatible API.", no_args_is_help=True
)


def _show(deployment) -> None:  # type: ignore[no-untyped-def]
    rows = [
        ("name", deployment.name),
        (
            "state",
            DEPLOYMENT_STATES[deployment.state]
            + (f" ({deployment.state_reason})" if deployment.state_reason else ""),
        ),
        ("model version", short(deployment.model_version)),
        ("serving", short(deployment.serving_version) or "-"),
        ("base (adapter)", short(deployment.base_model_version) or "-"),
        ("replicas", f"{deployment.ready_replicas}/{deployment.replicas} ready"),
        ("max concurrent", str(deployment.max_concurrent_requests)),
        (
            "logging",
            f"{'on' if deployment.logging else 'off'}{', PII masked' if deployment.pii_masking else ''}",
        ),
    ]
    table(deployment.name.rsplit("/", 1)[-1], ["field", "value"], rows)


@app.command("create")
def create(
    ctx: typer.Context,
    deployment_id: Annotated[str, typer.Argument(help="the deployment's id (the OpenAI `model`)")],
    model: Annotated[str, typer.Option(help="model version to serve (m/N, m@alias)")],
    replicas: int = 1,
    engine: Annotated[str, typer.Option(help="auto, vllm or transformers")] = "auto",
    max_tokens: Annotated[int, typer.Option(help="default new tokens per answer")] = 0,
    temperature: Annotated[float | None, typer.Option(help="default sampling temperature")] = None,
    max_concurrent: Annotated[
        int, typer.Option(help="requests per replica at once (then queued, then 429)")
    ] = 0,
    max_context: Annotated[int, typer.Option(help="prompt + answer in tokens (0: the model's)")] = 0,
    logging: Annotated[bool, typer.Option(help="log every call's messages and answer")] = True,
    pii_masking: Annotated[bool, typer.Option(help="mask e-mails, phone and ID numbers in the logs")] = False,
    watch: Annotated[bool, typer.Option(help="wait until it is READY")] = False,
) -> None:
    """Deploy a model version."""
    c = client(ctx)
    deployment = c.serve.create(
        deployment_id,
        model,
        replicas=replicas,
        engine=engine,
        max_tokens=max_tokens,
        temperature=temperature,
        max_concurrent_requests=max_concurrent,
        max_context=max_context,
        logging=logging,
        pii_masking=pii_masking,
    )
    if watch:
        with console.status(f"loading {short(deployment.model_version)} …"):
            deployment = c.serve.wait(deployment.name)
    emit_json(deployment) if options(ctx).json else _show(deployment)
    exit_if_failed(
        DEPLOYMENT_STATES[deployment.state] == "failed",
        f"{deployment.name} failed: {deployment.state_reason}",
    )


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List the project's deployments."""
    items = list(client(ctx).serve.list())
    if options(ctx).json:
        emit_json(items)
        return
    table(
        "deployments",
        ["deployment", "state", "serving", "replicas"],
        [
            (
                d.name.rsplit("/", 1)[-1],
                DEPLOYMENT_STATES[d.state],
                short(d.serving_version) or "-",
                f"{d.ready_replicas}/{d.replicas}",
            )
            for d in items
        ],
    )


@app.command("show")
def show(ctx: typer.Context, deployment: str) -> None:
    """Show a deployment."""
    found = client(ctx).serve.get(deployment)
    emit_json(found) if options(ctx).json else _show(found)


@app.command("update")
def update(
    ctx: typer.Context,
    deployment: str,
    model: Annotated[str, typer.Option(help="a new model version: rolls over with no failed request")] = "",
    replicas: Annotated[int | None, typer.Option(help="serving processes to hold it (0 stops it)")] = None,
    max_concurrent: Annotated[int | None, typer.Option()] = None,
    watch: Annotated[bool, typer.Option(help="wait until it is READY again")] = False,
) -> None:
    """Change a deployment (a new version, replicas, limits)."""
    fields: dict[str, object] = {}
    if model:
        fields["model_version"] = model
    if replicas is not None:
        fields["replicas"] = replicas
    if max_concurrent is not None:
        fields["max_concurrent_requests"] = max_concurrent
    if not fields:
        raise typer.BadParameter("give --model, --replicas or --max-concurrent")
    c = client(ctx)
    changed = c.serve.update(deployment, **fields)
    if watch:
        with console.status("rolling over …"):
            changed = c.serve.wait(changed.name)
    emit_json(changed) if options(ctx).json else _show(changed)


@app.command("delete")
def delete(ctx: typer.Context, deployment: str) -> None:
    """Delete a deployment and its call logs."""
    client(ctx).serve.delete(deployment)
    typer.echo(f"deleted {deployment}")


@app.command("stats")
def stats(
    ctx: typer.Context, deployment: str, hours: Annotated[int, typer.Option(help="the last N hours")] = 24
) -> None:
    """Call statistics (调用统计) per hour: requests, errors, tokens, latency and time to first token."""
    end = datetime.now(UTC)
    result = client(ctx).serve.stats(deployment, start=end - timedelta(hours=hours), end=end)
    if options(ctx).json:
        emit_json(result)
        return

    def row(label: str, h) -> tuple[str, ...]:  # type: ignore[no-untyped-def]
        errors = ", ".join(f"{k} {v}" for k, v in sorted(h.errors.items())) or "-"
        return (
            label,
            str(h.requests),
            errors,
            f"{h.prompt_tokens}/{h.completion_tokens}",
            f"{h.latency_ms_p50:.0f}/{h.latency_ms_p95:.0f}/{h.latency_ms_p99:.0f}",
            f"{h.time_to_first_token_ms_p50:.0f}/{h.time_to_first_token_ms_p95:.0f}",
        )

    rows = [row(h.start_time.ToDatetime(UTC).strftime("%Y-%m-%d %H:00"), h) for h in result.hours]
    rows.append(row("total", result.total))
    table(
        f"{deployment}: the last {hours} h",
        [
            "hour (UTC)",
            "requests",
            "errors",
            "tokens in/out",
            "latency ms p50/95/99",
            "first token ms p50/95",
        ],
        rows,
    )


def _calls(ctx: typer.Context, deployment: str, filter_text: str, limit: int, title: str) -> None:
    items = []
    for item in client(ctx).serve.logs(deployment, filter=filter_text):
        items.append(item)
        if len(items) >= limit:
            break
    if options(ctx).json:
        emit_json(items)
        return

    def clip(text: str) -> str:
        text = text.replace("\n", " ")
        return text if len(text) <= 60 else text[:57] + "…"

    table(
        title,
        ["call", "time (UTC)", "status", "question", "answer", "feedback"],
        [
            (
                c.id,
                c.time.ToDatetime(UTC).strftime("%m-%d %H:%M:%S"),
                c.status,
                clip(next((m.content for m in reversed(c.messages) if m.role == "user"), "")),
                clip(c.answer),
                " ".join(
                    x
                    for x in (
                        {1: "👍", 2: "👎"}.get(c.feedback.rating, ""),
                        "corrected" if c.feedback.correction else "",
                        " ".join(c.feedback.tags),
                    )
                    if x
                ),
            )
            for c in items
        ],
    )


@app.command("logs")
def logs(
    ctx: typer.Context,
    deployment: str,
    filter: Annotated[str, typer.Option(help='e.g. rating = "down" AND tag = "wrong-score"')] = "",
    limit: int = 20,
) -> None:
    """The newest logged calls."""
    _calls(ctx, deployment, filter, limit, f"{deployment}: calls")


@app.command("badcases")
def badcases(ctx: typer.Context, deployment: str, limit: int = 50) -> None:
    """Calls rated thumbs down or corrected: what backflow learns from."""
    c = client(ctx)
    seen, found = set(), []
    for filter_text in ('rating = "down"', 'has_correction = "true"'):
        for item in c.serve.logs(deployment, filter=filter_text):
            if item.id not in seen:
                seen.add(item.id)
                found.append(item.id)
    if options(ctx).json:
        emit_json({"calls": found})
        return
    _calls(ctx, deployment, 'rating = "down"', limit, f"{deployment}: thumbs down")
    _calls(ctx, deployment, 'has_correction = "true"', limit, f"{deployment}: corrected")


@app.command("feedback")
def feedback(
    ctx: typer.Context,
    call: Annotated[str, typer.Argument(help="projects/…/deployments/…/calls/ID, or DEPLOYMENT/ID")],
    rating: Annotated[str, typer.Option(help="up or down")] = "",
    correction: str = "",
    comment: str = "",
    tag: Annotated[list[str] | None, typer.Option("--tag")] = None,
) -> None:
    """Feedback on a call."""
    c = client(ctx)
    if not call.startswith("projects/"):
        deployment, _, call_id = call.partition("/")
        call = f"{c.serve.deployment_name(deployment)}/calls/{call_id}"
    logged = c.serve.feedback(call, rating=rating, correction=correction, comment=comment, tags=tag or [])
    emit_json(logged) if options(ctx).json else typer.echo(f"recorded feedback on {logged.name}")


@app.command("backflow")
def backflow(
    ctx: typer.Context,
    deployment: str,
    dataset: Annotated[str, typer.Option(help="the dataset that receives the rows (created if missing)")],
    kind: Annotated[
        str, typer.Option(help="sft (corrections), kto (thumbs) or dpo (correction over answer)")
    ] = "sft",
    hours: Annotated[int, typer.Option(help="calls of the last N hours (0: all)")] = 0,
    include_thumbs_up: Annotated[bool, typer.Option(help="sft: also answers rated thumbs up")] = False,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="only calls with one of these tags")] = None,
) -> None:
    """Turn calls with feedback into a new dataset version (数据回流), ready for incremental training."""
    c = client(ctx)
    start = datetime.now(UTC) - timedelta(hours=hours) if hours else None
    result = c.serve.backflow(
        deployment, dataset, kind=kind, start=start, include_thumbs_up=include_thumbs_up, tags=tag or []
    )
    version = c.data.wait(c.data.get_version(result.dataset_version))
    if options(ctx).json:
        emit_json({"dataset_version": version.name, "rows": result.rows, "duplicates": result.duplicates})
        return
    typer.echo(
        f"{short(version.name)}: {version.row_count} rows from {deployment} ({result.duplicates} duplicates left out)"
    )


def chat(
    ctx: typer.Context,
    deployment: Annotated[str, typer.Argument(help="the deployment to talk to")],
    system: Annotated[str, typer.Option(help="a system message")] = "",
    max_tokens: int = 0,
    temperature: Annotated[float | None, typer.Option()] = None,
) -> None:
    """Talk to a deployment (体验中心): each line you type is sent, the answer streams back.
    End with Ctrl-D; /reset starts a new conversation."""
    c = client(ctx)
    history: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    parameters: dict[str, object] = {}
    if max_tokens:
        parameters["max_tokens"] = max_tokens
    if temperature is not None:
        parameters["temperature"] = temperature
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            console.print("[bold]you>[/bold] ", end="")
        line = sys.stdin.readline()
        if not line:
            break
        text = line.rstrip("\n")
        if text.strip() == "/reset":
            history = history[:1] if system else []
            continue
        if not text.strip():
            continue
        history.append({"role": "user", "content": text})
        answer = []
        call_id = ""
        for piece in c.serve.chat(deployment, history, **parameters):
            call_id = piece.id
            answer.append(piece.delta)
            sys.stdout.write(piece.delta)
            sys.stdout.flush()
        sys.stdout.write("\n")
        if interactive:
            console.print(f"[dim]({call_id})[/dim]")
        history.append({"role": "assistant", "content": "".join(answer)})
