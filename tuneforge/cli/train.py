"""`tuneforge train ...` and `tuneforge worker`: training jobs."""

from __future__ import annotations

import inspect
import json
import typing
from pathlib import Path
from typing import Annotated, Any

import typer
from google.protobuf import json_format
from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from tuneforge.api.training import STATE_NAMES, TERMINAL
from tuneforge.cli.models import client, parse_pairs
from tuneforge.cli.output import console, emit_json, exit_if_failed, options, table
from tuneforge.client import Client
from tuneforge.train.v1 import training_job_pb2

app = typer.Typer(
    help="Training jobs: create, watch the loss live, cancel, list checkpoints.", no_args_is_help=True
)
BLOCKS = " ▁▂▃▄▅▆▇█"


def loss_chart(losses: list[float], width: int = 60, height: int = 8) -> str:
    """A terminal chart of the last `width` losses, `height` rows of block characters."""
    if not losses:
        return "(no loss yet)"
    values = losses[-width:]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    levels = [int((v - low) / span * (height * 8 - 1)) for v in values]
    rows = []
    for row in range(height - 1, -1, -1):
        line = "".join(
            BLOCKS[min(8, max(0, level - row * 8 + 1))] if level >= row * 8 else " " for level in levels
        )
        label = f"{high:8.4f} ┤" if row == height - 1 else f"{low:8.4f} ┤" if row == 0 else "         │"
        rows.append(label + line)
    return "\n".join(rows)


def describe(job: training_job_pb2.TrainingJob) -> list[tuple[str, str]]:
    rows = [
        ("name", job.name),
        ("state", STATE_NAMES[job.state]),
        ("base model", job.base_model),
        ("method / tuning", f"{job.method} / {job.tuning}"),
        (
            "data",
            ", ".join(
                f"{d.dataset_version.split('/')[3]}/v{d.dataset_version.split('/')[5]}×{d.sampling_rate:g}"
                for d in job.training_data
            ),
        ),
        ("priority", job.priority + (f" (preempted {job.preemptions}×)" if job.preemptions else "")),
        ("steps", f"{job.current_step} / {job.total_steps}"),
        ("over-length samples", str(job.overlength_samples)),
        ("attempt", str(job.attempt) + (f" ({job.restarts} restarts)" if job.restarts else "")),
    ]
    r = job.resources
    if r.accelerators_per_node > 1 or r.nodes > 1 or r.accelerator_kind:
        kind = f" {r.accelerator_kind}" if r.accelerator_kind else ""
        rows.append(("resources", f"{r.nodes} node × {r.accelerators_per_node}{kind}"))
    if job.worker:
        rows.append(("worker", job.worker))
    if job.waiting_reason:
        rows.append(("waiting", job.waiting_reason))
    parameters = json_format.MessageToDict(job.method_parameters, preserving_proto_field_name=True)
    if parameters:
        rows.append(("method parameters", json.dumps(parameters, ensure_ascii=False)))
    if job.replay_share:
        rows.append(("replay share", f"{job.replay_share:g} of the parent's training data"))
    if job.final_model_version:
        rows.append(("final model", job.final_model_version))
    if job.best_model_version:
        rows.append(("best checkpoint", job.best_model_version))
    if job.metrics:
        rows.append(("metrics", ", ".join(f"{k}={v:.4g}" for k, v in sorted(job.metrics.items()))))
    if job.error.reason:
        rows.append(("error", f"{job.error.reason}: {job.error.message}"))
    return rows


def parse_reward(text: str) -> dict[str, object]:
    """`regex:PATTERN`, `exact_answer`, `word_count[:WORDS]`, `json_fields:F1,F2`, each with `@WEIGHT`."""
    body, at, weight = text.rpartition("@") if "@" in text else (text, "", "")
    kind, _, argument = body.partition(":")
    spec: dict[str, object] = {"type": kind}
    if kind == "regex":
        spec["pattern"] = argument
    elif kind == "word_count" and argument:
        if not argument.isdigit():
            raise typer.BadParameter(f"{text!r}: word_count takes a number of words", param_hint="--reward")
        spec["target_words"] = int(argument)
    elif kind == "json_fields":
        spec["required_fields"] = [f for f in argument.split(",") if f]
    if at:
        try:
            spec["weight"] = float(weight)
        except ValueError:
            raise typer.BadParameter(
                f"{text!r}: the weight after @ is not a number", param_hint="--reward"
            ) from None
    return spec


def _rates(data: list[str]) -> dict[str, float]:
    rates = {}
    for value in data:
        ref, sep, rate = value.rpartition("=")
        if not sep:
            raise typer.BadParameter(f"{value!r} is not DATASET_VERSION=RATE", param_hint="--data")
        rates[ref] = float(rate)
    return rates


def _values(hp: list[str] | None) -> dict[str, Any]:
    """--hp KEY=VALUE pairs; numbers, booleans and JSON become values, the rest stays text."""
    return {k: json.loads(v) if v[:1] in "-0123456789tf{[" else v for k, v in parse_pairs(hp, "--hp").items()}


def _given(**values: Any) -> dict[str, Any]:
    """The options that were given (a default of 0, "" or [] means "not given")."""
    return {k: v for k, v in values.items() if v}


MethodParams = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        help="any method parameter, KEY=VALUE, repeatable (loss_type=dr_grpo, mask_reasoning=true ...)",
    ),
]
CheckOnly = Annotated[
    bool, typer.Option(help="only the pre-flight check (what `tuneforge train check` runs)")
]
Rewards = Annotated[
    list[str] | None,
    typer.Option(
        "--reward",
        help="grpo, repeatable: regex:PATTERN, exact_answer, word_count[:WORDS], json_fields:F1,F2 "
        "(append @WEIGHT to weigh it)",
    ),
]


@app.command("create")
def create(
    ctx: typer.Context,
    base_model: Annotated[str, typer.Option(help="model version (m/N, m@alias) or local:///path")],
    data: Annotated[
        list[str], typer.Option("--data", help="DATASET_VERSION=RATE, repeatable (e.g. essays=1.0)")
    ],
    method: Annotated[
        str, typer.Option(help="post_pretrain, sft, dpo, orpo, kto, grpo or reward_model")
    ] = "sft",
    tuning: Annotated[str, typer.Option(help="lora, full, or qlora (4-bit base, CUDA workers)")] = "lora",
    job_id: str = "",
    validation_data: str = "",
    validation_split: float = 0.0,
    output_model: str = "",
    accelerators: Annotated[
        int, typer.Option(help="processes on the node, one per device (DDP; FSDP for full on CUDA)")
    ] = 0,
    nodes: Annotated[int, typer.Option(help="nodes (more than 1 runs on a Ray cluster)")] = 0,
    accelerator_kind: Annotated[str, typer.Option(help="cuda or cpu (default: any)")] = "",
    hp: Annotated[
        list[str] | None,
        typer.Option("--hp", help="HYPERPARAMETER=VALUE, repeatable (epochs=3 learning_rate=3e-4 ...)"),
    ] = None,
    evaluate_on: Annotated[
        str, typer.Option(help="eval dataset version: evaluate the final model against the base when done")
    ] = "",
    evaluation_metric: Annotated[
        list[str] | None, typer.Option("--evaluation-metric", help="repeatable; default: bleu4 and rouge_l")
    ] = None,
    beta: Annotated[float, typer.Option(help="dpo/orpo/kto/grpo: preference strength (DPO beta)")] = 0.0,
    desirable_weight: Annotated[float, typer.Option(help="kto: weight of desirable examples")] = 0.0,
    undesirable_weight: Annotated[float, typer.Option(help="kto: weight of undesirable examples")] = 0.0,
    num_generations: Annotated[int, typer.Option(help="grpo: completions per prompt")] = 0,
    max_completion_length: Annotated[int, typer.Option(help="grpo: longest completion in tokens")] = 0,
    temperature: Annotated[float, typer.Option(help="grpo: sampling temperature")] = 0.0,
    reward: Rewards = None,
    reward_model: Annotated[str, typer.Option(help="grpo: a registered reward model version")] = "",
    param: MethodParams = None,
    priority: Annotated[str, typer.Option(help="normal, or idle: run on spare capacity, preemptible")] = "",
    replay_share: Annotated[
        float, typer.Option(help="base is a fine-tuned version: share of its training data to replay")
    ] = 0.0,
    watch: Annotated[bool, typer.Option(help="watch the job after creating it")] = False,
    check_only: CheckOnly = False,
) -> None:
    """Validate and queue a training job."""
    job = client(ctx).train.create(
        base_model=base_model,
        training_data=_rates(data),
        method=method,
        tuning=tuning,
        job_id=job_id,
        validation_data=validation_data,
        validation_split=validation_split,
        output_model=output_model,
        hyperparameters=_values(hp),
        evaluate_on=evaluate_on,
        evaluation_metrics=evaluation_metric or [],
        method_parameters=_given(
            beta=beta,
            desirable_weight=desirable_weight,
            undesirable_weight=undesirable_weight,
            num_generations=num_generations,
            max_completion_length=max_completion_length,
            temperature=temperature,
            rewards=[parse_reward(r) for r in reward or []],
            reward_model=reward_model,
        )
        | _values(param),
        priority=priority,
        replay_share=replay_share,
        check_only=check_only,
        resources=_given(accelerators_per_node=accelerators, nodes=nodes, accelerator_kind=accelerator_kind),
    )
    if check_only:
        show_check(ctx, client(ctx).train.wait(job.name))
        return
    queued(ctx, job, watch)


def queued(ctx: typer.Context, job: training_job_pb2.TrainingJob, watch: bool, detail: str = "") -> None:
    """A job just created: its JSON, or a line, then (with `watch`) its progress."""
    if options(ctx).json and not watch:
        emit_json(job)
        return
    typer.echo(f"queued {job.name} ({job.total_steps} steps{detail})")
    if watch:
        watch_job(ctx, job.name)


def show_check(ctx: typer.Context, job: training_job_pb2.TrainingJob) -> None:
    """The pre-flight check's outcome; exit 1 when it found a problem."""
    failed = STATE_NAMES[job.state] != "succeeded"
    if options(ctx).json:
        emit_json(job)
    elif failed:
        typer.echo(f"pre-flight check failed ({job.error.reason}):", err=True)
        for finding in job.error.message.split("; "):
            typer.echo(f"  - {finding}", err=True)
    else:
        m = job.metrics
        typer.echo(
            f"pre-flight check passed: {int(m['preflight_rows_checked'])} rows checked, memory about "
            f"{m['preflight_memory_estimate_bytes'] / 2**30:.2f} GiB of "
            f"{m['preflight_device_memory_bytes'] / 2**30:.2f} GiB"
        )
    exit_if_failed(failed, f"{job.name}: {job.error.message}")


def _check(*args: Any, **kwargs: Any) -> None:
    """Run the job's pre-flight check on a worker (template, packing, memory, vocabulary): nothing trains."""
    create(*args, **kwargs, check_only=True)


# `check` takes every option of `create` (annotations resolved: typer reads the signature).
_hints = typing.get_type_hints(create, include_extras=True)
_check.__signature__ = inspect.signature(create).replace(  # type: ignore[attr-defined]
    parameters=[
        p.replace(annotation=_hints[n])
        for n, p in inspect.signature(create).parameters.items()
        if n not in ("watch", "check_only")
    ],
    return_annotation=None,
)
_check.__annotations__ = {n: p.annotation for n, p in _check.__signature__.parameters.items()}
app.command("check")(_check)


@app.command("create-openai")
def create_openai(
    ctx: typer.Context,
    request: Annotated[Path, typer.Argument(help="a JSON file shaped like OpenAI's fine-tuning job request")],
    tuning: Annotated[str, typer.Option(help="lora or full")] = "lora",
    watch: Annotated[bool, typer.Option(help="watch the job after creating it")] = False,
) -> None:
    """Queue a job from an OpenAI fine-tuning request (method supervised, dpo or reinforcement)."""
    from tuneforge.api.openai_jobs import OpenAIJobError, openai_job

    try:
        kwargs, notes = openai_job(json.loads(request.read_text()))
    except (ValueError, OpenAIJobError) as exc:
        typer.echo(f"{request}: {exc}", err=True)
        raise typer.Exit(2) from None
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    job = client(ctx).train.create(**kwargs, tuning=tuning)
    queued(ctx, job, watch, f", method {kwargs['method']}")


@app.command("watch")
def watch_job(ctx: typer.Context, job: str) -> None:
    """Follow a job: a progress bar and the live loss, until it ends."""
    c = client(ctx)
    if options(ctx).json:
        for update in c.train.watch(job):
            key = "training_job" if isinstance(update, training_job_pb2.TrainingJob) else "metric_point"
            typer.echo(json.dumps({key: json_format.MessageToDict(update, preserving_proto_field_name=True)}))
        final = c.train.get(job)
        exit_if_failed(STATE_NAMES[final.state] == "failed", f"{final.name} failed: {final.error.message}")
        return
    last = follow(c, job)
    table(last.name.rsplit("/", 1)[-1], ["field", "value"], describe(c.train.get(job)))
    if STATE_NAMES[last.state] == "failed":
        raise typer.Exit(1)


def follow(c: Client, job: str, title: str = "") -> training_job_pb2.TrainingJob:
    """A progress bar and the live loss chart (GRPO: the mean reward) until the job ends, with the
    method's margin or reward in the caption; returns the job's last state."""
    curve: list[float] = []
    validation: list[float] = []
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    prefix = f"{title} " if title else ""
    task = progress.add_task(f"{prefix}queued", total=None)
    rl = c.train.get(job).method == "grpo"  # no likelihood loss: follow the reward
    name = "reward" if rl else "loss"
    with Live(console=console, refresh_per_second=4, transient=bool(title)) as live:
        latest = ""
        for update in c.train.watch(job):
            if isinstance(update, training_job_pb2.TrainingJob):
                progress.update(
                    task,
                    description=f"{prefix}{STATE_NAMES[update.state]}",
                    total=update.total_steps or None,
                    completed=update.current_step,
                )
            elif update.has_validation_loss:
                validation.append(update.validation_loss)
            else:
                curve.append(update.method_metrics.get("reward", 0.0) if rl else update.loss)
                progress.update(task, completed=update.step)
                extra = "".join(
                    f"   {key} {update.method_metrics[key]:.4f}"
                    for key in ("rewards/margins", "kl")
                    if key in update.method_metrics
                )
                latest = f"{name} {curve[-1]:.4f}{extra}"
            caption = latest + (f"   validation loss {validation[-1]:.4f}" if validation else "")
            live.update(Group(progress, Text(loss_chart(curve, height=6 if title else 8)), Text(caption)))
    return c.train.get(job)


@app.command("list")
def list_jobs(
    ctx: typer.Context, filter: Annotated[str, typer.Option(help='e.g. state = "running"')] = ""
) -> None:
    """List training jobs, newest first."""
    jobs = list(client(ctx).train.list(filter=filter))
    if options(ctx).json:
        emit_json(jobs)
        return
    table(
        "training jobs",
        ["job", "state", "method", "steps", "final model"],
        [
            (
                j.name.rsplit("/", 1)[-1],
                STATE_NAMES[j.state],
                f"{j.method}/{j.tuning}",
                f"{j.current_step}/{j.total_steps}",
                j.final_model_version,
            )
            for j in jobs
        ],
    )


@app.command("workers")
def list_workers(
    ctx: typer.Context, lost: Annotated[bool, typer.Option(help="also workers lost in the last hour")] = False
) -> None:
    """List the training workers: devices, memory, backends, busy or idle."""
    found = client(ctx).train.workers(include_lost=lost)
    if options(ctx).json:
        emit_json(found)
        return
    table("training workers", ["worker", "devices", "memory/device", "backends", "state"], worker_rows(found))


def worker_rows(found: list[Any]) -> list[tuple[str, ...]]:
    return [
        (
            w.name.removeprefix("workers/"),
            f"{w.accelerators} {w.accelerator_kind}" + (f" ({w.device_names[0]})" if w.device_names else ""),
            f"{w.accelerator_memory_bytes / 2**30:.1f} GiB",
            ", ".join(w.backends),
            ("busy" + (f": {w.current_job}" if w.current_job else "") if w.busy else "idle")
            if w.live
            else "lost",
        )
        for w in found
    ]


@app.command("show")
def show(ctx: typer.Context, job: str) -> None:
    """Show a job."""
    result = client(ctx).train.get(job)
    emit_json(result) if options(ctx).json else table(
        result.name.rsplit("/", 1)[-1], ["field", "value"], describe(result)
    )


@app.command("cancel")
def cancel(ctx: typer.Context, job: str) -> None:
    """Cancel a job (a running one stops promptly; checkpoints are kept)."""
    result = client(ctx).train.cancel(job)
    emit_json(result) if options(ctx).json else typer.echo(
        f"{result.name}: {STATE_NAMES[result.state]}{' (stopping)' if STATE_NAMES[result.state] not in TERMINAL else ''}"
    )


@app.command("checkpoints")
def checkpoints(ctx: typer.Context, job: str) -> None:
    """List a job's kept checkpoints."""
    items = client(ctx).train.checkpoints(job)
    if options(ctx).json:
        emit_json(items)
        return
    table(
        "checkpoints",
        ["step", "epoch", "validation loss", "best"],
        [
            (
                c.step,
                f"{c.epoch:.2f}",
                f"{c.validation_loss:.4f}" if c.validation_loss else "",
                "★" if c.best else "",
            )
            for c in items
        ],
    )


@app.command("report")
def report(
    ctx: typer.Context,
    job: str,
    out: Annotated[str, typer.Option(help="folder for report.json and loss.png")] = "",
) -> None:
    """The training report: what the loss curves mean, what to do next, and the samples behind spikes."""
    c = client(ctx)
    if out:
        for path in c.train.download_report(job, out):
            typer.echo(str(path))
        return
    result = c.train.report(job)
    if options(ctx).json:
        emit_json(
            {
                "diagnosis": json_format.MessageToDict(result.diagnosis, preserving_proto_field_name=True),
                "report": json_format.MessageToDict(result.report),
                "charts": {chart.path: chart.url for chart in result.charts},
                "final": result.final,
            }
        )
        return
    d = result.diagnosis
    curves = json_format.MessageToDict(result.report).get("curves", {})
    console.print(f"[bold]{d.verdict}[/bold]{'' if result.final else '  (live: the job is still running)'}")
    console.print(d.summary)
    if curves.get("loss"):
        console.print(Text(loss_chart([float(v) for v in curves["loss"]], width=80)))
    for line in d.advice:
        console.print(f"→ {line}")
    if d.spikes:
        table(
            "loss spikes",
            ["step", "loss", "baseline", "samples in the batch"],
            [(s.step, f"{s.loss:.4f}", f"{s.baseline:.4f}", ", ".join(s.sample_ids)) for s in d.spikes],
        )
    if result.charts:
        console.print(f"charts: {', '.join(chart.path for chart in result.charts)} (--out DIR saves them)")


@app.command("register-checkpoint")
def register_checkpoint(
    ctx: typer.Context,
    checkpoint: Annotated[str, typer.Argument(help="JOB/checkpoints/STEP (as the report names it)")],
) -> None:
    """Register a kept checkpoint (e.g. the best by validation loss) as a model version."""
    job, sep, step = checkpoint.rpartition("/checkpoints/")
    if not sep or not step.isdigit():
        raise typer.BadParameter(f"{checkpoint!r} is not JOB/checkpoints/STEP", param_hint="CHECKPOINT")
    name = client(ctx).train.register_checkpoint(job, int(step))
    emit_json({"model_version": name}) if options(ctx).json else typer.echo(f"registered {name}")


def worker() -> None:
    """Run a training worker (settings from TUNEFORGE_* variables; `tuneforge up` starts one)."""
    import asyncio

    from services.train.worker import main

    asyncio.run(main())


def serve_worker() -> None:
    """Run a serving process: holds deployments and answers their calls (`tuneforge up` starts one)."""
    import asyncio

    from services.serve.worker import main

    asyncio.run(main())


def data_worker() -> None:
    """Run a data worker: ingest, cleaning, splits, mixtures, insight (`tuneforge up` starts one)."""
    import asyncio

    from services.data.worker import main

    asyncio.run(main())


def registry_worker() -> None:
    """Run a registry worker: derivations (merge, dtype conversion, quantization; `tuneforge up` starts one)."""
    import asyncio

    from services.registry.worker import main

    asyncio.run(main())
