"""`tuneforge data teachers|augment|annotate ...`: models that write and label data."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tuneforge.api.augmentation import ITEM_STATUSES, RUN_STATES, TASK_STATES
from tuneforge.cli.models import client, parse_pairs
from tuneforge.cli.output import console, emit_json, exit_if_failed, options, table, to_dict
from tuneforge.data.v1 import augmentation_pb2, dataset_pb2

teachers_app = typer.Typer(
    help="Models that write and label data: serve deployments or any OpenAI-compatible API.",
    no_args_is_help=True,
)
augment_app = typer.Typer(
    help="Augmentation runs (数据增强): new rows written by a teacher, filtered.", no_args_is_help=True
)
annotate_app = typer.Typer(
    help="Annotation tasks (智能标注): a model pre-labels, people review.", no_args_is_help=True
)


def _values(pairs: list[str] | None, what: str) -> dict[str, Any]:
    """KEY=VALUE pairs; a value that parses as JSON is that value, anything else is text."""
    out: dict[str, Any] = {}
    for key, value in parse_pairs(pairs, what).items():
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _key(api_key_env: str, api_key_stdin: bool) -> str:
    """The key from an environment variable or standard input, never from the command line."""
    if api_key_env:
        if api_key_env not in os.environ:
            raise typer.BadParameter(f"{api_key_env} is not set", param_hint="--api-key-env")
        return os.environ[api_key_env]
    return sys.stdin.readline().strip() if api_key_stdin else ""


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


# -- teachers ------------------------------------------------------------------------------------


def show_teacher(teacher: augmentation_pb2.Teacher) -> None:
    table(
        _short(teacher.name),
        ["field", "value"],
        [
            ("name", teacher.name),
            ("endpoint", teacher.deployment or teacher.base_url),
            ("model", teacher.model),
            ("api key", "stored (sealed)" if teacher.has_api_key else "none"),
            ("max concurrency", teacher.max_concurrency),
            ("requests per minute", teacher.requests_per_minute or "no limit"),
            ("timeout", f"{teacher.timeout_seconds:g} s"),
            ("retries", teacher.max_retries),
            (
                "price per 1M tokens (in/out)",
                f"{teacher.input_cost_per_million_tokens:g} / {teacher.output_cost_per_million_tokens:g}",
            ),
        ],
    )


@teachers_app.command("create")
def teacher_create(
    ctx: typer.Context,
    teacher_id: str,
    deployment: Annotated[str, typer.Option(help="a serve deployment of this project")] = "",
    base_url: Annotated[str, typer.Option(help="an OpenAI-compatible API, https://host/v1")] = "",
    model: Annotated[str, typer.Option(help="the model to ask for (with --base-url)")] = "",
    api_key_env: Annotated[str, typer.Option(help="read the API key from this environment variable")] = "",
    api_key_stdin: Annotated[bool, typer.Option(help="read the API key from standard input")] = False,
    max_concurrency: int = 0,
    requests_per_minute: float = 0.0,
    timeout: Annotated[float, typer.Option(help="seconds per request")] = 0.0,
    max_retries: Annotated[int | None, typer.Option(help="retries on 429, 5xx, lost connections")] = None,
    input_price: Annotated[float, typer.Option(help="price per million prompt tokens")] = 0.0,
    output_price: Annotated[float, typer.Option(help="price per million completion tokens")] = 0.0,
) -> None:
    """Register a teacher (its key is stored encrypted and never shown again)."""
    teacher = client(ctx).augment.create_teacher(
        teacher_id,
        deployment=deployment,
        base_url=base_url,
        model=model,
        api_key=_key(api_key_env, api_key_stdin),
        max_concurrency=max_concurrency,
        requests_per_minute=requests_per_minute,
        timeout_seconds=timeout,
        max_retries=max_retries,
        input_cost_per_million_tokens=input_price,
        output_cost_per_million_tokens=output_price,
    )
    emit_json(teacher) if options(ctx).json else show_teacher(teacher)


@teachers_app.command("list")
def teacher_list(ctx: typer.Context) -> None:
    """List the project's teachers."""
    items = list(client(ctx).augment.teachers())
    if options(ctx).json:
        emit_json(items)
        return
    table(
        "teachers",
        ["teacher", "endpoint", "model", "key", "concurrency"],
        [
            (
                _short(t.name),
                t.deployment or t.base_url,
                t.model,
                "yes" if t.has_api_key else "",
                t.max_concurrency,
            )
            for t in items
        ],
    )


@teachers_app.command("show")
def teacher_show(ctx: typer.Context, teacher: str) -> None:
    found = client(ctx).augment.get_teacher(teacher)
    emit_json(found) if options(ctx).json else show_teacher(found)


@teachers_app.command("set-key")
def teacher_set_key(
    ctx: typer.Context,
    teacher: str,
    api_key_env: Annotated[str, typer.Option(help="read the new key from this environment variable")] = "",
    api_key_stdin: Annotated[bool, typer.Option(help="read the new key from standard input")] = False,
) -> None:
    """Replace a teacher's stored key (an empty one removes it)."""
    updated = client(ctx).augment.update_teacher(teacher, api_key=_key(api_key_env, api_key_stdin))
    emit_json(updated) if options(ctx).json else typer.echo(
        f"{updated.name}: key {'stored' if updated.has_api_key else 'removed'}"
    )


@teachers_app.command("delete")
def teacher_delete(ctx: typer.Context, teacher: str) -> None:
    client(ctx).augment.delete_teacher(teacher)
    typer.echo(f"deleted {teacher}")


# -- augmentation runs ---------------------------------------------------------------------------


def show_run(run: augmentation_pb2.AugmentationRun) -> None:
    p = run.progress
    rows = [
        ("name", run.name),
        ("state", RUN_STATES.get(run.state, "?")),
        (
            "operation",
            augmentation_pb2.AugmentationOperation.Name(run.operation)
            .removeprefix("AUGMENTATION_OPERATION_")
            .lower(),
        ),
        ("source → output", f"{run.source} → {run.output_dataset}"),
        ("teacher / judge", f"{_short(run.teacher)} / {_short(run.judge)}"),
        ("rows", f"{p.rows_done}/{p.rows_total} done, {p.rows_failed} failed"),
        ("generated → kept", f"{p.generated_rows} → {p.kept_rows}"),
        ("dropped", ", ".join(f"{k} {v}" for k, v in sorted(p.dropped_by_reason.items())) or "none"),
        ("calls", f"{p.calls} sent, {p.cached_calls} cached, {p.retries} retried"),
        ("tokens", f"{p.prompt_tokens} in, {p.completion_tokens} out (cost ≈ {p.cost_estimate:g})"),
        ("output version", run.output_version),
    ]
    if run.failure.reason:
        rows.append(("failure", f"{run.failure.reason}: {run.failure.message}"))
    if run.rejects.url:
        rows.append(("rejects", run.rejects.url))
    table(_short(run.name), ["field", "value"], rows)
    if run.error_examples:
        table(
            "failed rows: " + ", ".join(f"{k} {v}" for k, v in sorted(run.errors_by_reason.items())),
            ["row", "reason", "message"],
            [(e.row_id, e.reason, e.message) for e in run.error_examples],
        )


def _follow_run(ctx: typer.Context, name: str) -> augmentation_pb2.AugmentationRun:
    c = client(ctx)
    last = c.augment.get(name)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=options(ctx).json,
    ) as bar:
        task = bar.add_task(_short(name), total=last.progress.rows_total or None)
        for last in c.augment.watch(name):
            p = last.progress
            bar.update(
                task,
                completed=p.rows_done,
                total=p.rows_total or None,
                description=f"{_short(name)} {RUN_STATES.get(last.state, '?')} · {p.calls} calls, {p.cached_calls} cached",
            )
    return last


@augment_app.command("run")
def augment_run(
    ctx: typer.Context,
    operation: Annotated[
        str,
        typer.Argument(help="answer, paraphrase, self_instruct, evol_instruct, preference_pairs, translate"),
    ],
    source: Annotated[str, typer.Argument(help="the dataset version (ds/3, or ds for its latest)")],
    into: Annotated[str, typer.Option(help="the dataset of the new version (made if missing)")],
    teacher: Annotated[str, typer.Option()],
    judge: Annotated[str, typer.Option(help="the judge (default: the teacher)")] = "",
    param: Annotated[
        list[str] | None,
        typer.Option(help="KEY=VALUE: samples, count, rounds, temperature, ... (repeatable)"),
    ] = None,
    filter: Annotated[
        list[str] | None,
        typer.Option(help="KEY=VALUE: judge_min_score, regex, json_schema, ... (repeatable)"),
    ] = None,
    template: Annotated[
        list[str] | None, typer.Option(help="NAME=TEXT or NAME=@FILE: replace a prompt template")
    ] = None,
    description: str = "",
    watch: Annotated[bool, typer.Option(help="follow its progress until it ends")] = False,
) -> None:
    """Start an augmentation run; with --watch, follow it to its end."""
    templates = {}
    for key, value in parse_pairs(template, "--template").items():
        templates[key] = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
    run = client(ctx).augment.run(
        operation,
        source,
        into=into,
        teacher=teacher,
        judge=judge,
        parameters=_values(param, "--param"),
        filters=_values(filter, "--filter"),
        templates=templates,
        description=description,
    )
    if watch:
        run = _follow_run(ctx, run.name)
    emit_json(run) if options(ctx).json else show_run(run)
    exit_if_failed(RUN_STATES.get(run.state) == "failed", f"{run.name} failed: {run.failure.message}")


@augment_app.command("show")
def augment_show(ctx: typer.Context, run: str) -> None:
    found = client(ctx).augment.get(run)
    emit_json(found) if options(ctx).json else show_run(found)


@augment_app.command("watch")
def augment_watch(ctx: typer.Context, run: str) -> None:
    """Follow a run's progress until it ends."""
    done = _follow_run(ctx, client(ctx).augment.run_name(run))
    emit_json(done) if options(ctx).json else show_run(done)
    exit_if_failed(RUN_STATES.get(done.state) == "failed", f"{done.name} failed: {done.failure.message}")


@augment_app.command("list")
def augment_list(ctx: typer.Context) -> None:
    items = list(client(ctx).augment.list())
    if options(ctx).json:
        emit_json(items)
        return
    table(
        "augmentation runs",
        ["run", "state", "source", "rows", "kept", "output"],
        [
            (
                _short(r.name),
                RUN_STATES.get(r.state, "?"),
                r.source,
                f"{r.progress.rows_done}/{r.progress.rows_total}",
                r.progress.kept_rows,
                r.output_version,
            )
            for r in items
        ],
    )


@augment_app.command("cancel")
def augment_cancel(ctx: typer.Context, run: str) -> None:
    """Cancel a run: the rows done so far become its version."""
    cancelled = client(ctx).augment.cancel(run)
    emit_json(cancelled) if options(ctx).json else typer.echo(f"{cancelled.name}: cancelling")


@augment_app.command("templates")
def augment_templates(ctx: typer.Context, operation: Annotated[str, typer.Argument()] = "") -> None:
    """The default prompt templates and the fields each may use."""
    items = client(ctx).augment.templates(operation)
    if options(ctx).json:
        emit_json(items)
        return
    for t in items:
        console.rule(f"{t.name}  ({t.description})")
        console.print(t.text, markup=False, highlight=False)


# -- annotation ----------------------------------------------------------------------------------


def show_task(task: augmentation_pb2.AnnotationTask) -> None:
    p, a = task.progress, task.agreement
    table(
        _short(task.name),
        ["field", "value"],
        [
            ("name", task.name),
            ("state", TASK_STATES.get(task.state, "?")),
            (
                "kind",
                augmentation_pb2.AnnotationKind.Name(task.kind).removeprefix("ANNOTATION_KIND_").lower(),
            ),
            ("source", task.source),
            ("teacher", task.teacher or "(people only)"),
            (
                "items",
                f"{p.items}: {p.prelabelled} pre-labelled, {p.prelabel_failed} not, {p.reviewed} reviewed",
            ),
            ("reviews", ", ".join(f"{k} {v}" for k, v in sorted(a.reviews_by_action.items())) or "none"),
            (
                "model vs people",
                f"{a.model_agreement:.0%} agree over {a.model_reviews} reviews, κ {a.model_kappa:.2f}",
            ),
            (
                "people vs people",
                f"{a.reviewer_agreement:.0%} agree on {a.multi_reviewed_items} items, Fleiss κ {a.reviewer_kappa:.2f}",
            ),
            ("output version", task.output_version),
            *([("failure", f"{task.failure.reason}: {task.failure.message}")] if task.failure.reason else []),
        ],
    )


def _value(v: augmentation_pb2.AnnotationValue) -> str:
    which = v.WhichOneof("value")
    return "" if which is None else str(getattr(v, which))[:80]


@annotate_app.command("create")
def annotate_create(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="the dataset version")],
    kind: Annotated[str, typer.Option(help="score, label, correction or choice")],
    teacher: Annotated[str, typer.Option(help="the model that pre-labels (none: people only)")] = "",
    label: Annotated[list[str] | None, typer.Option(help="a label to choose from (repeatable)")] = None,
    score_min: int = 0,
    score_max: int = 0,
    instructions: str = "",
    max_rows: int = 0,
    wait: Annotated[bool, typer.Option(help="wait until the items are pre-labelled")] = False,
) -> None:
    """Create an annotation task over a dataset version."""
    c = client(ctx)
    task = c.annotate.create(
        source,
        kind=kind,
        teacher=teacher,
        labels=label or (),
        instructions=instructions,
        max_rows=max_rows,
        score_range=(score_min, score_max) if score_min or score_max else None,
    )
    if wait:
        task = c.annotate.wait(task.name)
    emit_json(task) if options(ctx).json else show_task(task)
    exit_if_failed(TASK_STATES.get(task.state) == "failed", f"{task.name} failed: {task.failure.message}")


@annotate_app.command("show")
def annotate_show(ctx: typer.Context, task: str) -> None:
    found = client(ctx).annotate.get(task)
    emit_json(found) if options(ctx).json else show_task(found)


@annotate_app.command("list")
def annotate_list(ctx: typer.Context) -> None:
    items = list(client(ctx).annotate.list())
    if options(ctx).json:
        emit_json(items)
        return
    table(
        "annotation tasks",
        ["task", "state", "source", "items", "output"],
        [
            (_short(t.name), TASK_STATES.get(t.state, "?"), t.source, t.progress.items, t.output_version)
            for t in items
        ],
    )


@annotate_app.command("items")
def annotate_items(
    ctx: typer.Context,
    task: str,
    status: Annotated[str, typer.Option(help="unreviewed, kept or rejected")] = "",
    annotator: Annotated[str, typer.Option(help="items this person reviewed")] = "",
) -> None:
    """A task's items with the model's label and the reviews."""
    items = list(client(ctx).annotate.items(task, status=status, annotator=annotator))
    if options(ctx).json:
        emit_json(items)
        return
    table(
        f"items of {task}",
        ["#", "row", "model", "reviews", "status", "final"],
        [
            (
                i.name.rsplit("/", 1)[-1],
                i.row_id,
                _value(i.model_value) or f"[red]{i.model_error[:40]}[/]",
                ", ".join(
                    f"{r.annotator}:{augmentation_pb2.ReviewAction.Name(r.action).removeprefix('REVIEW_ACTION_').lower()}"
                    for r in i.reviews
                ),
                ITEM_STATUSES.get(i.status, "?"),
                _value(i.final_value),
            )
            for i in items
        ],
    )


@annotate_app.command("review")
def annotate_review(
    ctx: typer.Context,
    task: str,
    item: Annotated[int, typer.Argument(help="the item's number (its row position, from 1)")],
    annotator: Annotated[str, typer.Option(help="who reviews")],
    accept: bool = False,
    reject: bool = False,
    score: int | None = None,
    label: str | None = None,
    answer: str | None = None,
    choice: str | None = None,
) -> None:
    """Accept the model's label, reject the row, or edit the label (--score, --label, --answer, --choice)."""
    c = client(ctx)
    reviewed = c.annotate.review(
        c.annotate.item_name(task, item),
        annotator,
        accept=accept,
        reject=reject,
        score=score,
        label=label,
        answer=answer,
        choice=choice,
    )
    emit_json(reviewed) if options(ctx).json else typer.echo(
        f"{reviewed.name}: {ITEM_STATUSES.get(reviewed.status, '?')} {_value(reviewed.final_value)}"
    )


@annotate_app.command("finish")
def annotate_finish(
    ctx: typer.Context,
    task: str,
    into: Annotated[str, typer.Option(help="the dataset of the new version (made if missing)")],
    include_unreviewed: Annotated[
        bool, typer.Option(help="keep unreviewed items with the model's label")
    ] = False,
    min_score: int = 0,
    keep_label: Annotated[
        list[str] | None, typer.Option(help="keep only rows with this label (repeatable)")
    ] = None,
) -> None:
    """Finish a task: the rows the reviews keep become a new dataset version."""
    c = client(ctx)
    done = c.annotate.finish(
        task,
        into=into,
        include_unreviewed=include_unreviewed,
        min_score=min_score,
        keep_labels=keep_label or (),
    )
    version = c.data.wait(c.data.get_version(done.output_version))
    if options(ctx).json:
        emit_json({"task": to_dict(done), "version": to_dict(version)})
    else:
        show_task(done)
        typer.echo(f"{version.name}: {version.row_count} rows")
    exit_if_failed(
        version.state != dataset_pb2.DATASET_VERSION_STATE_READY,
        f"{version.name} failed: {version.failure.message}",
    )


@annotate_app.command("cancel")
def annotate_cancel(ctx: typer.Context, task: str) -> None:
    cancelled = client(ctx).annotate.cancel(task)
    emit_json(cancelled) if options(ctx).json else typer.echo(f"{cancelled.name}: cancelled")
