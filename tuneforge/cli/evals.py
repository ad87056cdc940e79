"""`tuneforge eval ...`: evaluations."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from google.protobuf import json_format

from tuneforge.api.evaluations import STATE_NAMES
from tuneforge.cli.models import client, short
from tuneforge.cli.output import console, emit_json, exit_if_failed, options, table

if TYPE_CHECKING:
    from tuneforge.client import Client
    from tuneforge.eval.v1 import evaluation_pb2

app = typer.Typer(
    help="Evaluations: base vs fine-tuned on an evaluation set, metrics side by side.", no_args_is_help=True
)


def show_results(evaluation) -> None:  # type: ignore[no-untyped-def]
    names = list(evaluation.metrics)
    table(
        f"{evaluation.name.rsplit('/', 1)[-1]}: {STATE_NAMES[evaluation.state]} ({evaluation.done_samples}/{evaluation.total_samples * len(evaluation.model_versions)} answers)",
        ["model version", *names, "tokens/s"],
        [
            (
                short(r.model_version),
                *[
                    (
                        f"{r.metrics[m]:.4g}"
                        + (f" ({r.delta_vs_baseline[m]:+.3g})" if i and m in r.delta_vs_baseline else "")
                    )
                    if m in r.metrics
                    else "unscored"
                    for m in names
                ],
                f"{r.tokens_per_second:.0f}",
            )
            for i, r in enumerate(evaluation.results)
        ],
    )
    for r in evaluation.results:
        if r.judge_scored or r.judge_parse_failures:
            console.print(
                f"judge on {short(r.model_version)}: mean {r.judge_score:.2f} over {r.judge_scored} scored, "
                f"{r.judge_parse_failures} unparseable verdicts",
                markup=False,
            )
    for p in evaluation.pairwise:
        console.print(
            f"pairwise {short(p.model_version)} vs {short(p.baseline)}: "
            f"{p.wins} wins, {p.ties} ties, {p.losses} losses, {p.parse_failures} unparseable",
            markup=False,
        )
    for r in evaluation.results:
        notes = [f"{count} unscored on {m}" for m, count in r.unscored.items()]
        notes += [f"{m} pass rate {rate:.0%}" for m, rate in r.pass_rates.items()]
        if r.capped_samples:
            notes.append(f"{r.capped_samples} pairs scored on their first 20,000 characters")
        notes += [f"grader: {count} × {message}" for message, count in r.grader_errors.items()]
        if r.truncated_prompts:
            notes.append(f"{r.truncated_prompts} prompts cut in the middle to fit the context")
        if notes:
            console.print(f"{short(r.model_version)}: " + "; ".join(notes), markup=False)
    if evaluation.error:
        console.print(f"error: {evaluation.error}", markup=False)


def thresholds(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise typer.BadParameter(
                f"{item!r}: give METRIC=NUMBER, e.g. bleu4=30", param_hint="--pass-threshold"
            ) from None
    return out


PythonGraderFile = Annotated[
    Path | None,
    typer.Option(help="a .py file defining grade(sample, item) -> float, run sandboxed as a metric"),
]
GraderFiles = Annotated[
    list[Path] | None,
    typer.Option(
        "--grader",
        help="repeatable: a JSON file holding an OpenAI grader (string_check, text_similarity, "
        "score_model, python, multi), scored as grader:NAME",
    ),
]
GraderEndpoint = Annotated[str, typer.Option(help="the OpenAI-compatible API (…/v1) score_model graders ask")]


@app.command("create")
def create(
    ctx: typer.Context,
    model: Annotated[
        list[str],
        typer.Option("--model", help="model version (m/N, m@alias), repeatable; the first is the baseline"),
    ],
    dataset: Annotated[str, typer.Option(help="eval (or sft) dataset version")],
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", help="repeatable: bleu4, rouge_l, score_accuracy, json_field_f1, ..."),
    ] = None,
    max_new_tokens: int = 128,
    batch_size: int = 16,
    judge: Annotated[str, typer.Option(help="a model version that scores the answers (LLM as a judge)")] = "",
    judge_endpoint: Annotated[
        str,
        typer.Option(help="or an OpenAI-compatible endpoint (…/v1); key from TUNEFORGE_EVAL_JUDGE_API_KEY"),
    ] = "",
    judge_endpoint_model: Annotated[str, typer.Option(help="the endpoint's model name")] = "",
    rubric: Annotated[str, typer.Option(help="what the judge should look for")] = "",
    pairwise: Annotated[bool, typer.Option(help="MT-Bench pairwise verdicts vs the baseline")] = False,
    score_regex: Annotated[
        str, typer.Option(help="how score_mae/score_accuracy read a score: a regex whose group is the score")
    ] = "",
    score_json_path: Annotated[
        str, typer.Option(help="or a JSON path into the answer's JSON object (最终得分, scores.total)")
    ] = "",
    pass_threshold: Annotated[
        list[str] | None,
        typer.Option(
            "--pass-threshold", help="METRIC=VALUE, repeatable: report the share of samples that pass"
        ),
    ] = None,
    python_grader: PythonGraderFile = None,
    grader: GraderFiles = None,
    grader_endpoint: GraderEndpoint = "",
    watch: Annotated[bool, typer.Option(help="wait and print the results")] = False,
) -> None:
    """Queue an evaluation of one or more model versions."""
    c = client(ctx)
    judge_settings = None
    if judge or judge_endpoint:
        judge_settings = {
            "model_version": judge,
            "endpoint": judge_endpoint,
            "endpoint_model": judge_endpoint_model,
            "rubric": rubric,
            "pairwise": pairwise,
        }
    evaluation = c.evals.create(
        model,
        dataset,
        metrics=metric or [],
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        judge=judge_settings,
        score_regex=score_regex,
        score_json_path=score_json_path,
        pass_thresholds=thresholds(pass_threshold or []),
        python_grader=python_grader.read_text() if python_grader else "",
        graders=[g.read_text() for g in grader or []],
        grader_endpoint=grader_endpoint,
    )
    if watch:
        evaluation = c.evals.wait(evaluation.name) if options(ctx).json else follow(c, evaluation.name)
    if options(ctx).json:
        emit_json(evaluation)
    elif watch:
        show_results(evaluation)
    else:
        typer.echo(
            f"queued {evaluation.name} ({evaluation.total_samples} samples × {len(evaluation.model_versions)} models)"
        )
    exit_if_failed(
        watch and STATE_NAMES[evaluation.state] == "failed",
        f"{evaluation.name} failed: {evaluation.error}",
    )


def follow(c: Client, name: str, title: str = "evaluating") -> evaluation_pb2.Evaluation:
    """A progress bar over the samples generated and scored, until the evaluation ends."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    last = c.evals.get(name)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(title, total=None)
        for last in c.evals.watch(name):
            answers = last.total_samples * len(last.model_versions)
            progress.update(
                task,
                description=f"{title} ({STATE_NAMES[last.state]})",
                total=answers or None,
                completed=last.done_samples,
            )
            if STATE_NAMES[last.state] in ("succeeded", "failed", "cancelled"):
                break
    return c.evals.get(name)


@app.command("cancel")
def cancel(ctx: typer.Context, evaluation: str) -> None:
    """Stop a queued or running evaluation."""
    result = client(ctx).evals.cancel(evaluation)
    emit_json(result) if options(ctx).json else console.print(f"{result.name}: {STATE_NAMES[result.state]}")


@app.command("show")
def show(ctx: typer.Context, evaluation: str) -> None:
    """Show an evaluation's results, with deltas against the baseline."""
    result = client(ctx).evals.get(evaluation)
    emit_json(result) if options(ctx).json else show_results(result)


@app.command("report")
def report(
    ctx: typer.Context,
    evaluation: str,
    out: Annotated[str, typer.Option(help="folder for report.json and the PNG charts")] = "",
) -> None:
    """An evaluation's report (metrics, deltas, judge, worst samples) and charts."""
    c = client(ctx)
    if out:
        for path in c.evals.download_report(evaluation, out):
            typer.echo(str(path))
        return
    result = c.evals.report(evaluation)
    emit_json(
        {
            "report": json_format.MessageToDict(result.report),
            "charts": {chart.path: chart.url for chart in result.charts},
        }
    )


@app.command("list")
def list_evaluations(ctx: typer.Context) -> None:
    """The project's evaluations, newest first."""
    items = list(client(ctx).evals.list())
    if options(ctx).json:
        emit_json(items)
        return
    table(
        "evaluations",
        ["evaluation", "state", "models", "dataset", "metrics"],
        [
            (
                e.name.rsplit("/", 1)[-1],
                STATE_NAMES[e.state],
                ", ".join(short(m) for m in e.model_versions),
                short(e.dataset_version),
                ", ".join(e.metrics),
            )
            for e in items
        ],
    )


@app.command("predictions")
def predictions(
    ctx: typer.Context,
    evaluation: str,
    model: str = "",
    order_by: Annotated[str, typer.Option(help="a metric: the worst samples first")] = "",
    limit: int = 10,
) -> None:
    """Per-sample answers with their scores."""
    items = []
    for item in client(ctx).evals.predictions(
        evaluation, model_version=model, order_by=order_by, page_size=min(limit, 1000)
    ):
        if len(items) >= limit:
            break
        items.append(item)
    if options(ctx).json:
        emit_json(items)
        return
    table(
        "predictions",
        ["sample", "model", "prediction", "reference", "scores"],
        [
            (
                p.sample_id,
                short(p.model_version),
                p.prediction[:60],
                p.reference[:60],
                ", ".join(f"{k}={v:.3g}" for k, v in sorted(p.scores.items())),
            )
            for p in items
        ],
    )


@app.command("rating-task")
def rating_task(
    ctx: typer.Context,
    evaluation: str,
    kind: Annotated[
        str, typer.Option(help="rating (1..scale per answer) or side_by_side (A, B or tie)")
    ] = "rating",
    model: Annotated[
        list[str] | None, typer.Option("--model", help="model versions to show (default: all)")
    ] = None,
    scale: int = 5,
) -> None:
    """Open a human rating or side-by-side task on a finished evaluation's answers."""
    task = client(ctx).evals.create_rating_task(
        evaluation, kind=kind, model_versions=model or [], scale=scale
    )
    if options(ctx).json:
        emit_json(task)
    else:
        typer.echo(f"created {task.name} ({task.items} items)")


@app.command("rating-items")
def rating_items(ctx: typer.Context, task: str, limit: int = 20) -> None:
    """The items of a rating task: the prompt and the answers to rate (A, B for side by side)."""
    items = []
    for item in client(ctx).evals.rating_items(task, page_size=min(limit, 1000)):
        if len(items) >= limit:
            break
        items.append(item)
    if options(ctx).json:
        emit_json(items)
        return
    for item in items:
        console.print(f"[bold]{item.sample_id}[/bold]  {item.prompt[:200]}")
        for label, answer in zip("AB", item.answers, strict=False):
            console.print(f"  {label}: {answer[:200]}", markup=False)


@app.command("rate")
def rate(
    ctx: typer.Context,
    task: str,
    sample: str,
    rater: str,
    score: int = 0,
    preference: Annotated[str, typer.Option(help="side_by_side: A, B or tie")] = "",
    comment: str = "",
) -> None:
    """Record one rater's rating of one item (a resubmission replaces it)."""
    count = client(ctx).evals.submit_rating(
        task, sample, rater, score=score, preference=preference, comment=comment
    )
    typer.echo(f"{count} ratings on {sample}")


@app.command("rating-summary")
def rating_summary(ctx: typer.Context, task: str) -> None:
    """Mean score or preference shares, with percent agreement and Fleiss' kappa between raters."""
    s = client(ctx).evals.rating_summary(task)
    if options(ctx).json:
        emit_json(s)
        return
    table(
        task.rsplit("/", 1)[-1],
        ["ratings", "raters", "mean score", "A / B / tie", "agreement", "Fleiss κ"],
        [
            (
                s.ratings,
                s.raters,
                f"{s.mean_score:.3g}",
                f"{s.share_a:.0%} / {s.share_b:.0%} / {s.share_tie:.0%}",
                f"{s.percent_agreement:.0%}",
                f"{s.fleiss_kappa:.3g}",
            )
        ],
    )
