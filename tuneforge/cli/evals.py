"""`tuneforge eval ...`: evaluations."""

from __future__ import annotations

from typing import Annotated

import typer

from tuneforge.api.evaluations import STATE_NAMES
from tuneforge.cli.models import client, short
from tuneforge.cli.output import console, emit_json, options, table

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
                    f"{r.metrics[m]:.4g}"
                    + (f" ({r.delta_vs_baseline[m]:+.3g})" if i and m in r.delta_vs_baseline else "")
                    for m in names
                ],
                f"{r.tokens_per_second:.0f}",
            )
            for i, r in enumerate(evaluation.results)
        ],
    )
    if evaluation.error:
        console.print(f"error: {evaluation.error}", markup=False)


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
    watch: Annotated[bool, typer.Option(help="wait and print the results")] = False,
) -> None:
    """Queue an evaluation of one or more model versions."""
    c = client(ctx)
    evaluation = c.evals.create(
        model, dataset, metrics=metric or [], max_new_tokens=max_new_tokens, batch_size=batch_size
    )
    if watch:
        evaluation = c.evals.wait(evaluation.name)
    if options(ctx).json:
        emit_json(evaluation)
    elif watch:
        show_results(evaluation)
    else:
        typer.echo(
            f"queued {evaluation.name} ({evaluation.total_samples} samples × {len(evaluation.model_versions)} models)"
        )


@app.command("show")
def show(ctx: typer.Context, evaluation: str) -> None:
    """Show an evaluation's results, with deltas against the baseline."""
    result = client(ctx).evals.get(evaluation)
    emit_json(result) if options(ctx).json else show_results(result)


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
