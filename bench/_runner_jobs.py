"""Job folders for the platform's training child (`services.train.runner`), run alone as a worker
would start it: one process, or torchrun with several. Shared by the training benchmarks."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def arithmetic_rows(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """SFT conversations of a few dozen tokens each."""
    rnd = random.Random(seed)
    rows = []
    for i in range(count):
        a, b = rnd.randint(10, 999), rnd.randint(10, 999)
        rows.append(
            {
                "id": f"r{i}",
                "messages": [
                    {"role": "user", "content": f"请计算 {a} + {b}，并说明每一步的进位。"},
                    {"role": "assistant", "content": f"先算个位，再算十位和百位，{a} + {b} = {a + b}。"},
                ],
            }
        )
    return rows


def job_folder(
    folder: Path, base: Path, rows: list[dict[str, Any]], *, tuning: str = "lora", **hyperparameters: Any
) -> Path:
    """A job folder as the worker prepares one: the spec, the base model (linked) and the rows."""
    from services.train.spec import Hyperparameters, JobSpec, Lora

    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "base").exists():
        (folder / "base").symlink_to(base.resolve())
    (folder / "train.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    spec = JobSpec(
        base_model="local:///bench",
        method="sft",
        tuning=tuning,
        training_data=[],
        hyperparameters=Hyperparameters(
            **{"epochs": 1, "checkpoint_interval_steps": 10_000, **hyperparameters}
        ),
        lora=Lora(dropout=0.0),
    )
    (folder / "spec.json").write_text(json.dumps(spec.to_json()))
    return folder


def run(folder: Path, processes: int = 1, threads: int | None = None, **env: str) -> dict[str, Any]:
    """Run the job in `processes` processes of `threads` threads each; its `done` report."""
    progress = folder / "progress.jsonl"
    progress.unlink(missing_ok=True)
    runner = ["-m", "services.train.runner", str(folder)]
    argv = [sys.executable, *runner]
    if processes > 1:
        argv = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={processes}",
            *runner,
        ]
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false", **env}
    if threads:
        environment["OMP_NUM_THREADS"] = str(threads)
    # One device per process, as the worker narrows it (never DataParallel over every GPU).
    environment.setdefault("CUDA_VISIBLE_DEVICES", ",".join(str(i) for i in range(processes)))
    log = folder / "runner.log"
    with log.open("w") as out:
        subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=environment, check=False)
    events = [json.loads(line) for line in progress.read_text().splitlines()]
    done = next((e for e in events if e["type"] == "done"), None)
    if done is None:
        error = next((e for e in events if e["type"] == "error"), None)
        raise RuntimeError(f"the job did not finish: {error or log.read_text()[-2000:]}")
    return done


def qwen_shaped_model(folder: Path, layers: int = 24) -> Path:
    """A Qwen2-0.5B-shaped Llama (hidden 896, 14 heads, 2 KV heads, ~494M parameters at 24 layers)
    with random bf16 weights and the project's tiny tokenizer, saved as a Hugging Face folder."""
    if (folder / "config.json").exists():
        return folder
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from services.data.presets import project_texts
    from services.train.tiny import build_tiny_model

    tokenizer_dir = build_tiny_model(
        folder.parent / f"{folder.name}-tokenizer", project_texts(), vocab_size=8000
    )
    config = LlamaConfig(
        vocab_size=151_936,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=layers,
        num_attention_heads=14,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).to(dtype=torch.bfloat16).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(folder)
    return folder


def long_rows(count: int, words: int = 300, seed: int = 0) -> list[dict[str, Any]]:
    """SFT conversations of several hundred tokens (GPU benchmarks)."""
    rnd = random.Random(seed)
    vocabulary = ["模型", "数据", "训练", "评估", "学习率", "批次", "损失", "样本", "微调", "部署"]
    return [
        {
            "id": f"r{i}",
            "messages": [
                {"role": "user", "content": "".join(rnd.choice(vocabulary) for _ in range(words // 4))},
                {"role": "assistant", "content": "".join(rnd.choice(vocabulary) for _ in range(words))},
            ],
        }
        for i in range(count)
    ]
