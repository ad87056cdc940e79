"""`tuneforge quickstart`: the essay-grading case (作文批改) end to end on one machine, offline.

The seed's walk-through, for real: bring the local suite up; install the essay-grading preset and
the general corpus and look into the data; build a small base model offline (a byte-level BPE
tokenizer trained on the project's own corpora and a Llama of a few million parameters) and
register it; post-pretrain it on the general corpus so it can write; fine-tune it with LoRA on the
essays with validation, showing the live loss; read the training report and its diagnosis; evaluate
base against tuned on the preset's held-out essays (BLEU-4, ROUGE-L, score accuracy and error,
optionally a judge); point the alias `production` at the tuned version; deploy it behind the
OpenAI-compatible API and grade a few essays through the official `openai` client; print a summary,
the call statistics and where the report images are.

`--base-model` takes a hub id or a local Hugging Face folder instead (imported into the registry,
safetensors only, no post-pretraining: a real model can already write); the worker uses a GPU when
the machine has one. `--fast` trains a smaller model for fewer steps (for CI).
"""

from __future__ import annotations

import os
import signal
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
# The built base's context: Qianfan's essay samples (2.5–4.2k-token prompts) fit with room for the
# grade. Llama's positions are rotary, so this costs nothing until a row is long (bench/long_context.py).
BASE_CONTEXT = 8192
# Everything the quickstart makes lives in this project: `tuneforge --project quickstart models list`.
PROJECT = "quickstart"
TUNED_ID = "quickstart-essay"
DEPLOYMENT_ID = "essay-grader"
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


def _value(result: Any, metric: str) -> str:
    """A result's metric, or how many answers it could not score (a model that writes no score)."""
    if metric in result.metrics:
        return f"{result.metrics[metric]:.3g}"
    return f"unscored ({result.unscored[metric]}/{result.samples})"


def _short(name: str) -> str:
    return name.split("/models/")[-1].replace("/versions/", "/") if "/models/" in name else name


class Steps:
    """The quickstart's steps on a running suite; `stage(name, detail, since)` reports each one."""

    def __init__(self, client: Client, settings: Settings, out_dir: Path, follow: bool, stage: Any) -> None:
        self.client = client
        self.settings = settings
        self.out_dir = out_dir
        self.follow = follow
        self.stage = stage

    def done(self, name: str, detail: str, since: float) -> None:
        if self.stage is not None:
            self.stage(name, detail, since)

    def train(self, title: str, **arguments: Any) -> Any:
        from tuneforge.api.training import STATE_NAMES
        from tuneforge.cli.train import follow as follow_job

        job = self.client.train.create(**arguments)
        if self.follow:
            console.print(f"[bold]{title}[/bold]: {job.name.rsplit('/', 1)[-1]}, {job.total_steps} steps")
            result = follow_job(self.client, job.name, title)
        else:
            result = self.client.train.wait(job.name, timeout=3600)
        if STATE_NAMES[result.state] != "succeeded":
            raise RuntimeError(
                f"{title} ended {STATE_NAMES[result.state]}: {result.error.reason} {result.error.message}"
            )
        return result

    def data(self) -> None:
        t = time.perf_counter()
        installed = self.client.data.install_preset("essay-grading", request_id="quickstart-essay-grading")
        general = self.client.data.install_preset("general", request_id="quickstart-general")
        counts = ", ".join(
            f"{v.name.split('/')[3]} {v.row_count}"
            for v in [*installed.dataset_versions, *general.dataset_versions]
        )
        self.done("data", f"presets installed: {counts} rows", t)
        t = time.perf_counter()
        insight = self.client.data.insight("essay-grading-train").report
        self.done(
            "data insight",
            f"essays p50 {insight['prompt_characters']['p50']:.0f} chars, answers p50 "
            f"{insight['response_characters']['p50']:.0f} chars, {int(insight['exact_duplicates'])} exact duplicates",
            t,
        )

    def imported_base(self, base_model: str) -> Any:
        t = time.perf_counter()
        _ensure_model(self.client, BASE_ID, "Quickstart base model (imported)")
        base = self.client.models.import_model(base_model, BASE_ID)
        self.done("base model", f"{base_model} imported as {_short(base.name)} ({len(base.files)} files)", t)
        return base

    def built_base(self) -> Any:
        """A small Llama built offline (tokenizer trained on the project's corpora), registered."""
        import logging

        # Import-time notices of optional torch kernels are noise on a terminal.
        for noisy in ("torchao", "torch.utils._pytree"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
        from services.data.presets import project_texts
        from services.train.tiny import build_tiny_model

        t = time.perf_counter()
        settings = self.settings
        with tempfile.TemporaryDirectory() as tmp:
            folder = build_tiny_model(
                Path(tmp) / "model",
                project_texts(),
                vocab_size=settings.vocab,
                hidden_size=settings.hidden,
                layers=settings.layers,
                max_positions=BASE_CONTEXT,
            )
            size = sum(p.stat().st_size for p in folder.iterdir())
            _ensure_model(self.client, BASE_ID, "Quickstart base model (built offline)")
            base = self.client.models.upload(
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
        self.done(
            "base model",
            f"{_short(base.name)}: Llama, {params / 1e6:.1f}M parameters, {human_bytes(size)}, tokenizer trained here",
            t,
        )
        return base

    def post_pretrain(self, base: Any) -> Any:
        t = time.perf_counter()
        pretrain = self.train(
            "post-pretraining",
            base_model=base.name,
            method="post_pretrain",
            tuning="full",
            training_data={"general-text": 1.0},
            output_model=WRITER_ID,
            hyperparameters={"epochs": self.settings.pretrain_epochs, "learning_rate": 1e-3, "batch_size": 8},
        )
        writer = self.client.models.get_version(pretrain.final_model_version)
        self.done(
            "post-pretrained",
            f"{pretrain.total_steps} steps on general-text → {_short(writer.name)} "
            f"(loss {pretrain.metrics['train_loss']:.2f})",
            t,
        )
        return writer

    def fine_tune(self, writer: Any) -> Any:
        t = time.perf_counter()
        sft = self.train(
            "fine-tuning (LoRA)",
            base_model=writer.name,
            method="sft",
            tuning="lora",
            training_data={"essay-grading-train": 1.0},
            validation_split=0.1,
            output_model=TUNED_ID,
            lora={"rank": self.settings.lora_rank},
            hyperparameters={
                "epochs": self.settings.sft_epochs,
                "learning_rate": self.settings.sft_learning_rate,
                "batch_size": 8,
                "validation_interval_steps": 10,
                "checkpoint_interval_steps": 10,
                "checkpoint_count": 3,
            },
        )
        self.done(
            "fine-tuned",
            f"{sft.total_steps} steps on essay-grading-train (10% held for validation) → {_short(sft.final_model_version)}",
            t,
        )
        return sft

    def report(self, sft: Any) -> tuple[Any, Path, list[Path]]:
        t = time.perf_counter()
        report = self.client.train.report(sft.name)
        job_dir = self.out_dir / sft.name.rsplit("/", 1)[-1]
        files = self.client.train.download_report(sft.name, job_dir)
        self.done("training report", f"{report.diagnosis.verdict}: {report.diagnosis.summary}", t)
        return report.diagnosis, job_dir, files

    def evaluate(self, writer: Any, sft: Any, judge: str, job_dir: Path) -> tuple[Any, list[Path]]:
        t = time.perf_counter()
        evaluation = self.client.evals.create(
            [writer.name, sft.final_model_version],
            "essay-grading-eval",
            metrics=list(METRICS),
            max_new_tokens=self.settings.max_new_tokens,
            judge={"model_version": judge, "rubric": "a fair score out of 60 and specific advice"}
            if judge
            else None,
        )
        if self.follow:
            from tuneforge.cli.evals import follow as follow_evaluation

            evaluation = follow_evaluation(self.client, evaluation.name, "evaluating base and tuned")
        else:
            evaluation = self.client.evals.wait(evaluation.name, timeout=3600)
        if not evaluation.results:
            raise RuntimeError(f"evaluation failed: {evaluation.error}")
        files = self.client.evals.download_report(evaluation.name, job_dir / "evaluation")
        before, after = evaluation.results
        self.done(
            "evaluated", ", ".join(f"{m} {_value(before, m)} → {_value(after, m)}" for m in METRICS[:3]), t
        )
        return evaluation, files

    def publish(self, sft: Any) -> Path:
        t = time.perf_counter()
        self.client.models.set_alias(TUNED_ID, "production", sft.final_model_version)
        target = self.out_dir / "production"
        self.client.models.download(f"{TUNED_ID}@production", target)
        self.done(
            "published",
            f"{TUNED_ID}@production → {_short(sft.final_model_version)}, downloaded and verified",
            t,
        )
        return target

    def serve(self) -> dict[str, Any]:
        """Deploy `production` behind the OpenAI-compatible API, grade a few held-out essays through
        the official `openai` client (one streamed), and read the call statistics back."""
        import openai

        from tuneforge.api.serving import DEPLOYMENT_STATES
        from tuneforge.errors import TuneForgeError

        t = time.perf_counter()
        production = f"{TUNED_ID}@production"
        try:
            self.client.serve.get(DEPLOYMENT_ID)
            self.client.serve.update(DEPLOYMENT_ID, model_version=production)
        except TuneForgeError as error:
            if error.code != "NOT_FOUND":
                raise
            self.client.serve.create(
                DEPLOYMENT_ID, production, max_tokens=self.settings.max_new_tokens, temperature=0.0
            )
        deployment = self.client.serve.wait(DEPLOYMENT_ID, timeout=600)
        if DEPLOYMENT_STATES[deployment.state] != "ready":
            raise RuntimeError(
                f"deployment {DEPLOYMENT_ID} is {DEPLOYMENT_STATES[deployment.state]}: {deployment.state_reason}"
            )
        oc = openai.OpenAI(
            base_url=self.client.serve.openai_base_url,
            api_key=self.client.connection.api_key,
            project=self.client.project,
        )
        answers = []
        for i, row in enumerate(list(self.client.data.rows("essay-grading-eval"))[:3]):
            messages = [{"role": m["role"], "content": m["content"]} for m in row["prompt"]]
            if i == 2:
                stream = oc.chat.completions.create(model=DEPLOYMENT_ID, messages=messages, stream=True)
                answer = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            else:
                answer = (
                    oc.chat.completions.create(model=DEPLOYMENT_ID, messages=messages)
                    .choices[0]
                    .message.content
                )
            answers.append(
                {"essay": messages[-1]["content"][:40], "answer": answer, "reference": row["reference"]}
            )
        total = self.client.serve.stats(DEPLOYMENT_ID).total
        stats = {
            "requests": total.requests,
            "errors": dict(total.errors),
            "completion_tokens": total.completion_tokens,
            "latency_ms_p50": round(total.latency_ms_p50, 1),
            "time_to_first_token_ms_p50": round(total.time_to_first_token_ms_p50, 1),
        }
        self.done(
            "served",
            f"{DEPLOYMENT_ID} serves {_short(deployment.serving_version)} at {self.client.serve.openai_base_url}; "
            f"{total.requests} calls, p50 {stats['latency_ms_p50']} ms",
            t,
        )
        return {
            "deployment": deployment.name,
            "openai_base_url": self.client.serve.openai_base_url,
            "answers": answers,
            "stats": stats,
        }


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
    steps = Steps(client, settings, out_dir, follow, stage)
    steps.data()
    writer = steps.imported_base(base_model) if base_model else steps.post_pretrain(steps.built_base())
    sft = steps.fine_tune(writer)
    diagnosis, job_dir, files = steps.report(sft)
    evaluation, evaluation_files = steps.evaluate(writer, sft, judge, job_dir)
    target = steps.publish(sft)
    serving = steps.serve()
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
        "metrics": {_short(r.model_version): dict(r.metrics) for r in evaluation.results},
        # Answers each metric could not score (no score in the answer), by model.
        "unscored": {_short(r.model_version): dict(r.unscored) for r in evaluation.results},
        "report_files": [str(f) for f in files + evaluation_files],
        "production": target,
        "serving": serving,
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
    from services.suite.suite import LocalSuite, SuiteRunning, running_endpoints

    started = time.perf_counter()
    suite = LocalSuite(_data_dir(data_dir))
    stages: list[tuple[str, str, str]] = []

    def stage(name: str, detail: str, since: float) -> None:
        stages.append((name, detail, f"{time.perf_counter() - since:.1f} s"))
        console.print(f"[green]✓[/green] {name}: {detail}")

    # SIGTERM stops the suite as Ctrl-C does (the default would leave no time to stop it); Ctrl-C
    # works even when the parent ignored SIGINT (a shell's background job).
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    attached = False
    try:
        t = time.perf_counter()
        try:
            with console.status("starting NATS, S3 and the services …"):
                suite.start()
            endpoints, key = suite.endpoints, suite.admin_key
        except SuiteRunning as running:
            # A suite (`tuneforge up`) already runs on this folder: use it, and leave it running.
            attached = True
            endpoints, key = running_endpoints(suite.data_dir), suite.admin_key
            console.print(f"using the suite already running on {suite.data_dir} (pid {running.pid})")
        stage("local suite", ", ".join(f"{k} {v}" for k, v in sorted(endpoints.items())), t)
        with Client(endpoints, api_key=key, project=PROJECT) as client:
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
                    "project": PROJECT,
                    **{k: str(v) if isinstance(v, Path) else v for k, v in result.items()},
                    "stages": [{"stage": n, "result": r, "time": d} for n, r, d in stages],
                }
            )
            return
        _print_summary(result, stages, seconds, suite.data_dir, endpoints.get("console", ""))
    except KeyboardInterrupt:
        keep_running = False
        console.print("interrupted; stopping …")
        raise typer.Exit(130) from None
    finally:
        if keep_running and not attached:
            console.print(f"suite left running; Ctrl-C (or kill {os.getpid()}) stops it")
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
        suite.stop()


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _print_summary(
    result: dict[str, Any], stages: list[tuple[str, str, str]], seconds: float, data_dir: Path, console_url: str
) -> None:
    table(f"quickstart finished in {seconds:.1f} s", ["stage", "result", "time"], stages)
    names = list(result["metrics"])
    table(
        "base vs tuned on essay-grading-eval (60 held-out essays)",
        ["metric", *names, "better"],
        [
            (
                metric,
                *(
                    f"{result['metrics'][n][metric]:.3g}"
                    if metric in result["metrics"][n]
                    else f"unscored ({result['unscored'][n].get(metric, 0)})"
                    for n in names
                ),
                "lower" if metric in LOWER_IS_BETTER else "higher",
            )
            for metric in sorted(
                {m for r in (*result["metrics"].values(), *result["unscored"].values()) for m in r}
            )
        ],
    )
    console.print(f"diagnosis: {result['diagnosis']['verdict']}; " + " ".join(result["diagnosis"]["advice"]))
    console.print("report images and data:")
    for path in result["report_files"]:
        console.print(f"  {path}")
    console.print(f"production model: {result['production']}  (data kept in {data_dir})")
    if console_url:
        console.print(
            f"console: {console_url}  (project `{PROJECT}`, API key in {data_dir / 'admin.key'}; "
            "`tuneforge quickstart --keep-running` keeps it up)",
            markup=False,
        )
    console.print(
        f"everything above is in project `{PROJECT}`: `tuneforge --project {PROJECT} models list` "
        f"(or export TUNEFORGE_PROJECT={PROJECT}); a plain `tuneforge models list` shows project `default`",
        markup=False,
    )
    serving = result["serving"]
    table(
        f"{DEPLOYMENT_ID} through the openai client ({serving['openai_base_url']})",
        ["essay", "answer", "reference"],
        [(a["essay"] + "…", a["answer"], a["reference"]) for a in serving["answers"]],
    )
    console.print(
        "call statistics: "
        + ", ".join(f"{k} {v}" for k, v in serving["stats"].items())
        + f"  (tuneforge serve stats {DEPLOYMENT_ID}; tuneforge chat {DEPLOYMENT_ID})"
    )
