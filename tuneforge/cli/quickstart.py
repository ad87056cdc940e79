"""`tuneforge quickstart`: the platform end to end on one machine, offline.

Today it brings the local suite up, installs the essay-grading preset (作文批改) and looks into its
data, builds a small model folder (Llama layout, random weights, safetensors), registers it as a
version with lineage, points `production` at it, downloads it back verifying every file, and prints
a summary. Later stages (training, evaluation) join here.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Annotated

import typer

from tuneforge.cli.output import console, emit_json, human_bytes, options, table
from tuneforge.cli.suite import DataDir, _data_dir, _need_server_packages
from tuneforge.client import Client

MODEL_ID = "quickstart-base"
TINY_ID = "quickstart-tiny"


def build_model_folder(
    folder: Path, *, hidden: int = 64, layers: int = 2, vocab: int = 512, seed: int = 0
) -> Path:
    """A Llama-shaped model folder with random weights in safetensors: what a hub download looks like."""
    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    intermediate = hidden * 4

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    tensors = {
        "model.embed_tokens.weight": weight(vocab, hidden),
        "model.norm.weight": np.ones(hidden, np.float32),
    }
    for i in range(layers):
        prefix = f"model.layers.{i}"
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            tensors[f"{prefix}.self_attn.{name}.weight"] = weight(hidden, hidden)
        tensors[f"{prefix}.mlp.gate_proj.weight"] = weight(intermediate, hidden)
        tensors[f"{prefix}.mlp.up_proj.weight"] = weight(intermediate, hidden)
        tensors[f"{prefix}.mlp.down_proj.weight"] = weight(hidden, intermediate)
        tensors[f"{prefix}.input_layernorm.weight"] = np.ones(hidden, np.float32)
        tensors[f"{prefix}.post_attention_layernorm.weight"] = np.ones(hidden, np.float32)
    tensors["lm_head.weight"] = weight(vocab, hidden)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "vocab_size": vocab,
        "max_position_embeddings": 512,
        "torch_dtype": "float32",
        "tie_word_embeddings": False,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    (folder / "generation_config.json").write_text(json.dumps({"max_new_tokens": 64}))
    return folder


def quickstart(
    ctx: typer.Context,
    data_dir: DataDir = None,
    keep_running: Annotated[bool, typer.Option(help="leave the suite running afterwards")] = False,
) -> None:
    """Run the platform end to end on this machine, offline: suite up, data, registry, training, evaluation."""
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
            t = time.perf_counter()
            installed = client.data.install_preset("essay-grading", request_id="quickstart-essay-grading")
            counts = ", ".join(
                f"{v.name.split('/')[3]} {v.row_count} rows" for v in installed.dataset_versions
            )
            stage("essay-grading preset", counts, t)
            t = time.perf_counter()
            report = client.data.insight("essay-grading-train").report
            stage(
                "data insight",
                f"prompt p50 {report['prompt_characters']['p50']:.0f} chars, response p50 "
                f"{report['response_characters']['p50']:.0f} chars, {int(report['exact_duplicates'])} exact duplicates",
                t,
            )
            t = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                folder = build_model_folder(Path(tmp) / "model")
                stage(
                    "base model built",
                    f"Llama layout, random weights, {human_bytes(sum(p.stat().st_size for p in folder.iterdir()))}",
                    t,
                )

                t = time.perf_counter()
                existing = {
                    m.name.rsplit("/", 1)[-1] for m in client.models.list(filter=f'model_id = "{MODEL_ID}"')
                }
                if MODEL_ID not in existing:
                    client.models.create(
                        MODEL_ID,
                        display_name="Quickstart base model",
                        tags={"family": "llama", "origin": "quickstart"},
                    )
                version = client.models.upload(
                    MODEL_ID,
                    folder,
                    description="random-weight Llama built offline by the quickstart",
                    lineage={
                        "base_model": "local:///quickstart/model",
                        "hyperparameters": {"hidden_size": 64, "layers": 2},
                    },
                    request_id=str(uuid.uuid4()),
                )
                stage("registered", f"{version.name} ({len(version.files)} files, sha256 each)", t)

                t = time.perf_counter()
                client.models.set_alias(MODEL_ID, "production", version.name)
                out = Path(tmp) / "download"
                client.models.download(f"{MODEL_ID}@production", out)
                same = all(
                    (out / f.path).read_bytes() == (folder / f.path).read_bytes() for f in version.files
                )
                if not same:
                    raise typer.Exit(1)
                stage(
                    "production alias",
                    f"{MODEL_ID}@production → v{version.name.rsplit('/', 1)[-1]}, downloaded and verified",
                    t,
                )

            t = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                from services.train.tiny import build_tiny_model, project_texts

                tiny = build_tiny_model(Path(tmp) / "tiny", project_texts())
                if TINY_ID not in {
                    m.name.rsplit("/", 1)[-1] for m in client.models.list(filter=f'model_id = "{TINY_ID}"')
                }:
                    client.models.create(
                        TINY_ID, display_name="Quickstart tiny model (tokenizer + random weights)"
                    )
                tiny_version = client.models.upload(TINY_ID, tiny, request_id=str(uuid.uuid4()))
            job = client.train.create(
                base_model=tiny_version.name,
                training_data={"essay-grading-train": 1.0},
                tuning="full",
                output_model="quickstart-essay",
                hyperparameters={"epochs": 3, "learning_rate": 1e-3, "batch_size": 8},
            )
            with console.status(f"training {job.name.rsplit('/', 1)[-1]} ({job.total_steps} steps) …"):
                job = client.train.wait(job.name, timeout=1800)
            if not job.final_model_version:
                raise RuntimeError(f"training failed: {job.error}")
            stage(
                "fine-tuned",
                f"{job.name.rsplit('/', 1)[-1]}: {job.total_steps} steps on essay-grading-train → "
                f"{job.final_model_version.split('/models/')[-1].replace('/versions/', '/')}",
                t,
            )
            t = time.perf_counter()
            evaluation = client.evals.create(
                [tiny_version.name, job.final_model_version],
                "essay-grading-eval",
                metrics=["score_accuracy", "score_mae", "rouge_l", "bleu4"],
                max_new_tokens=48,
            )
            with console.status("evaluating base vs fine-tuned on essay-grading-eval …"):
                evaluation = client.evals.wait(evaluation.name, timeout=1800)
            if not evaluation.results:
                raise RuntimeError(f"evaluation failed: {evaluation.error}")
            base, tuned = evaluation.results
            stage(
                "evaluated",
                ", ".join(
                    f"{m} {base.metrics[m]:.3g} → {tuned.metrics[m]:.3g}"
                    for m in ("score_accuracy", "score_mae", "rouge_l")
                ),
                t,
            )
            if options(ctx).json:
                emit_json(
                    {
                        "seconds": round(time.perf_counter() - started, 1),
                        "model_version": version.name,
                        "stages": [{"stage": n, "result": r, "time": d} for n, r, d in stages],
                    }
                )
            else:
                table(
                    f"quickstart finished in {time.perf_counter() - started:.1f} s",
                    ["stage", "result", "time"],
                    stages,
                )
                versions = list(client.models.list_versions(MODEL_ID))
                console.print(f"{MODEL_ID} now has {len(versions)} version(s); data kept in {suite.data_dir}")
    finally:
        if keep_running:
            console.print(f"suite left running; Ctrl-C (or kill {os.getpid()}) stops it")
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
        suite.stop()
