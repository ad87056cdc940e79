"""`tuneforge quickstart`: the essay-grading case (作文批改) end to end on one machine, offline.

The seed's walk-through, for real: bring the local suite up; install the essay-grading preset and
the general corpus and look into the data; build a small base model offline (a byte-level BPE
tokenizer trained on the project's own corpora and a Llama of a few million parameters) and
register it; post-pretrain it on the general corpus so it can write; fine-tune it with LoRA on the
essays with validation, showing the live loss; read the training report and its diagnosis; evaluate
base against tuned on the preset's held-out essays (BLEU-4, ROUGE-L, score accuracy and error,
optionally a judge); point the alias `production` at the tuned version; print a summary and where
the report images are.

`--base-model` takes a hub id or a local Hugging Face folder instead (imported into the registry,
safetensors only, no post-pretraining: a real model can already write); the worker uses a GPU when
the machine has one. `--fast` trains a smaller model for fewer steps (for CI).
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from tuneforge.cli.output import console, emit_json, human_bytes, options, table
from tuneforge.cli.suite import DataDir, _data_dir, _need_server_packages
from tuneforge.client import Client

BASE_ID = "quickstart-base"
WRITER_ID = "quickstart-writer"
TUNED_ID = "quickstart-essay"
METRICS = ("score_mae", "score_accuracy", "rouge_l", "bleu4")
LOWER_IS_BETTER = {"score_mae"}


@dataclass(frozen=True)
class Settings:
    """The model and the training runs: the normal quickstart, or a smaller one for CI."""

    hidden: int = 256
    layers: int = 4
    vocab: int = 3000
    pretrain_epochs: float = 2.0
    sft_epochs: float = 10.0
    sft_learning_rate: float = 2e-3
    lora_rank: int = 16
    max_new_tokens: int = 24


FULL = Settings()
FAST = Settings(hidden=128, layers=2, vocab=2000, pretrain_epochs=1.0, sft_epochs=8.0)


def _ensure_model(client: Client, model_id: str, display_name: str) -> None:
    if model_id not in {
        m.name.rsplit("/", 1)[-1] for m in client.models.list(filter=f'model_id = "{model_id}"')
    }:
        client.models.create(model_id, display_name=display_name, tags={"origin": "quickstart"})


def _short(name: str) -> str:
    return name.split("/models/")[-1].replace("/versions/", "/") if "/models/" in name else name


def run(
    client: Client,
    *,
    settings: Settings,
    out_dir: Path,
    base_model: str = "",
    judge: str = "",
    follow: bool = True,
    stage: Any = None,
) -> dict[str, Any]:
    """The quickstart's steps on a running suite; returns what it produced. `stage(name, detail, since)`
    reports each finished step."""
    from tuneforge.api.training import STATE_NAMES
    from tuneforge.cli.train import follow as follow_job

    def done(name: str, detail: str, since: float) -> None:
        if stage is not None:
            stage(name, detail, since)

    def train(title: str, **arguments: Any) -> Any:
        job = client.train.create(**arguments)
        if follow:
            console.print(f"[bold]{title}[/bold]: {job.name.rsplit('/', 1)[-1]}, {job.total_steps} steps")
            result = follow_job(client, job.name, title)
        else:
            result = client.train.wait(job.name, timeout=3600)
        if STATE_NAMES[result.state] != "succeeded":
            raise RuntimeError(
                f"{title} ended {STATE_NAMES[result.state]}: {result.error.reason} {result.error.message}"
            )
        return result

    t = time.perf_counter()
    installed = client.data.install_preset("essay-grading", request_id="quickstart-essay-grading")
    general = client.data.install_preset("general", request_id="quickstart-general")
    counts = ", ".join(
        f"{v.name.split('/')[3]} {v.row_count}"
        for v in [*installed.dataset_versions, *general.dataset_versions]
    )
    done("data", f"presets installed: {counts} rows", t)
    t = time.perf_counter()
    insight = client.data.insight("essay-grading-train").report
    done(
        "data insight",
        f"essays p50 {insight['prompt_characters']['p50']:.0f} chars, answers p50 "
        f"{insight['response_characters']['p50']:.0f} chars, {int(insight['exact_duplicates'])} exact duplicates",
        t,
    )

    t = time.perf_counter()
    if base_model:
        _ensure_model(client, BASE_ID, "Quickstart base model (imported)")
        base = client.models.import_model(base_model, BASE_ID)
        writer = base
        done("base model", f"{base_model} imported as {_short(base.name)} ({len(base.files)} files)", t)
    else:
        import logging

        # Import-time notices of optional torch kernels are noise on a terminal.
        for noisy in ("torchao", "torch.utils._pytree"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
        from services.train.tiny import build_tiny_model, project_texts

        with tempfile.TemporaryDirectory() as tmp:
            folder = build_tiny_model(
                Path(tmp) / "model",
                project_texts(),
                vocab_size=settings.vocab,
                hidden_size=settings.hidden,
                layers=settings.layers,
                max_positions=1024,
            )
            size = sum(p.stat().st_size for p in folder.iterdir())
            _ensure_model(client, BASE_ID, "Quickstart base model (built offline)")
            base = client.models.upload(
                BASE_ID,
                folder,
                description="a Llama with random weights and a tokenizer trained on the project's corpora",
                lineage={
                    "base_model": "local:///quickstart/tiny",
                    "hyperparameters": {
                        "hidden_size": settings.hidden,
                        "layers": settings.layers,
                        "vocab": settings.vocab,
                    },
                },
                request_id=str(uuid.uuid4()),
            )
        params = base.catalog.parameter_count
        done(
            "base model",
            f"{_short(base.name)}: Llama, {params / 1e6:.1f}M parameters, {human_bytes(size)}, tokenizer trained here",
            t,
        )
        t = time.perf_counter()
        pretrain = train(
            "post-pretraining",
            base_model=base.name,
            method="post_pretrain",
            tuning="full",
            training_data={"general-text": 1.0},
            output_model=WRITER_ID,
            hyperparameters={"epochs": settings.pretrain_epochs, "learning_rate": 1e-3, "batch_size": 8},
        )
        writer = client.models.get_version(pretrain.final_model_version)
        done(
            "post-pretrained",
            f"{pretrain.total_steps} steps on general-text → {_short(writer.name)} "
            f"(loss {pretrain.metrics['train_loss']:.2f})",
            t,
        )

    t = time.perf_counter()
    sft = train(
        "fine-tuning (LoRA)",
        base_model=writer.name,
        method="sft",
        tuning="lora",
        training_data={"essay-grading-train": 1.0},
        validation_split=0.1,
        output_model=TUNED_ID,
        lora={"rank": settings.lora_rank},
        hyperparameters={
            "epochs": settings.sft_epochs,
            "learning_rate": settings.sft_learning_rate,
            "batch_size": 8,
            "validation_interval_steps": 10,
            "checkpoint_interval_steps": 10,
            "checkpoint_count": 3,
        },
    )
    done(
        "fine-tuned",
        f"{sft.total_steps} steps on essay-grading-train (10% held for validation) → {_short(sft.final_model_version)}",
        t,
    )

    t = time.perf_counter()
    report = client.train.report(sft.name)
    job_dir = out_dir / sft.name.rsplit("/", 1)[-1]
    files = client.train.download_report(sft.name, job_dir)
    diagnosis = report.diagnosis
    done("training report", f"{diagnosis.verdict}: {diagnosis.summary}", t)

    t = time.perf_counter()
    evaluation = client.evals.create(
        [writer.name, sft.final_model_version],
        "essay-grading-eval",
        metrics=list(METRICS),
        max_new_tokens=settings.max_new_tokens,
        judge={"model_version": judge, "rubric": "a fair score out of 60 and specific advice"}
        if judge
        else None,
    )
    if follow:
        from tuneforge.cli.evals import follow as follow_evaluation

        evaluation = follow_evaluation(client, evaluation.name, "evaluating base and tuned")
    else:
        evaluation = client.evals.wait(evaluation.name, timeout=3600)
    if not evaluation.results:
        raise RuntimeError(f"evaluation failed: {evaluation.error}")
    files += client.evals.download_report(evaluation.name, job_dir / "evaluation")
    results = {_short(r.model_version): dict(r.metrics) for r in evaluation.results}
    before, after = (dict(r.metrics) for r in evaluation.results)
    done(
        "evaluated",
        ", ".join(f"{m} {before[m]:.3g} → {after[m]:.3g}" for m in METRICS[:3]),
        t,
    )

    t = time.perf_counter()
    client.models.set_alias(TUNED_ID, "production", sft.final_model_version)
    target = out_dir / "production"
    client.models.download(f"{TUNED_ID}@production", target)
    done(
        "published", f"{TUNED_ID}@production → {_short(sft.final_model_version)}, downloaded and verified", t
    )
    return {
        "base_model": writer.name,
        "tuned_model": sft.final_model_version,
        "training_job": sft.name,
        "diagnosis": {
            "verdict": diagnosis.verdict,
            "summary": diagnosis.summary,
            "advice": list(diagnosis.advice),
        },
        "evaluation": evaluation.name,
        "metrics": results,
        "report_files": [str(f) for f in files],
        "production": target,
    }


def quickstart(
    ctx: typer.Context,
    data_dir: DataDir = None,
    base_model: Annotated[
        str,
        typer.Option(
            help="a hub id or local Hugging Face folder to fine-tune instead of the small built model"
        ),
    ] = "",
    judge: Annotated[
        str, typer.Option(help="a registered model version to judge the answers (optional)")
    ] = "",
    fast: Annotated[bool, typer.Option(help="a smaller model and shorter training (for CI)")] = False,
    keep_running: Annotated[bool, typer.Option(help="leave the suite running afterwards")] = False,
) -> None:
    """The essay-grading case end to end, offline: data, base model, post-pretraining, LoRA fine-tuning
    with the live loss, the training report, base-vs-tuned evaluation, publishing as `production`."""
    _need_server_packages()
    from services.suite.suite import LocalSuite

    started = time.perf_counter()
    suite = LocalSuite(_data_dir(data_dir))
    stages: list[tuple[str, str, str]] = []

    def stage(name: str, detail: str, since: float) -> None:
        stages.append((name, detail, f"{time.perf_counter() - since:.1f} s"))
        console.print(f"[green]✓[/green] {name}: {detail}")

    try:
        t = time.perf_counter()
        with console.status("starting NATS, S3 and the services …"):
            suite.start()
        stage("local suite", ", ".join(f"{k} {v}" for k, v in sorted(suite.endpoints.items())), t)
        with Client(suite.endpoints, api_key=suite.admin_key, project="quickstart") as client:
            result = run(
                client,
                settings=FAST if fast else FULL,
                out_dir=suite.data_dir / "quickstart",
                base_model=base_model,
                judge=judge,
                follow=not options(ctx).json,
                stage=stage,
            )
        seconds = time.perf_counter() - started
        if options(ctx).json:
            emit_json(
                {
                    "seconds": round(seconds, 1),
                    **{k: str(v) if isinstance(v, Path) else v for k, v in result.items()},
                    "stages": [{"stage": n, "result": r, "time": d} for n, r, d in stages],
                }
            )
            return
        table(f"quickstart finished in {seconds:.1f} s", ["stage", "result", "time"], stages)
        names = list(result["metrics"])
        table(
            "base vs tuned on essay-grading-eval (60 held-out essays)",
            ["metric", *names, "better"],
            [
                (
                    metric,
                    *(f"{result['metrics'][n].get(metric, float('nan')):.3g}" for n in names),
                    "lower" if metric in LOWER_IS_BETTER else "higher",
                )
                for metric in sorted({m for r in result["metrics"].values() for m in r})
            ],
        )
        console.print(
            f"diagnosis: {result['diagnosis']['verdict']}; " + " ".join(result["diagnosis"]["advice"])
        )
        console.print("report images and data:")
        for path in result["report_files"]:
            console.print(f"  {path}")
        console.print(f"production model: {result['production']}  (data kept in {suite.data_dir})")
    finally:
        if keep_running:
            console.print(f"suite left running; Ctrl-C (or kill {os.getpid()}) stops it")
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
        suite.stop()
