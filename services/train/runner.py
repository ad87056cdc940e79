"""The training child process: one job, built on transformers + peft + trl.

    python -m services.train.runner JOB_DIR

JOB_DIR holds `spec.json`, `base/` (the base model folder), `train.jsonl`, optionally
`validation.jsonl` and `resume` (a checkpoint path). The runner writes `progress.jsonl` (one JSON
object per line: metrics, saved checkpoints, data facts, the outcome), checkpoints under
`checkpoints/`, and the final model under `final/`. The worker process reads all of it.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    EarlyStoppingCallback,
    TrainerCallback,
)
from trl import SFTConfig, SFTTrainer

from services.train.spec import JobSpec


class Progress:
    def __init__(self, path: Path) -> None:
        self.file = path.open("a", buffering=1)

    def write(self, kind: str, **fields: Any) -> None:
        self.file.write(json.dumps({"type": kind, "time": time.time(), **fields}) + "\n")


class ProgressCallback(TrainerCallback):
    """Metrics at every log, and each checkpoint once it is fully written."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.last_tokens: tuple[float, float] | None = None
        self.last_eval_loss: float | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
        logs = logs or {}
        if "eval_loss" in logs:
            self.last_eval_loss = float(logs["eval_loss"])
            self.progress.write(
                "metric",
                step=state.global_step,
                epoch=state.epoch or 0.0,
                validation_loss=self.last_eval_loss,
            )
        if "loss" in logs:
            tokens_per_second = 0.0
            now = time.perf_counter()
            if "num_tokens" in logs:
                tokens = float(logs["num_tokens"])
                if self.last_tokens is not None and now > self.last_tokens[1]:
                    tokens_per_second = (tokens - self.last_tokens[0]) / (now - self.last_tokens[1])
                self.last_tokens = (tokens, now)
            self.progress.write(
                "metric",
                step=state.global_step,
                epoch=state.epoch or 0.0,
                loss=float(logs["loss"]),
                learning_rate=float(logs.get("learning_rate", 0.0)),
                grad_norm=float(logs.get("grad_norm", 0.0) or 0.0),
                tokens_per_second=tokens_per_second,
            )
            if not math.isfinite(float(logs["loss"])):
                raise FloatingPointError("the training loss became NaN or infinite")

    def on_save(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        self.progress.write(
            "checkpoint",
            step=state.global_step,
            epoch=state.epoch or 0.0,
            path=str(path),
            validation_loss=self.last_eval_loss,
            best=state.best_model_checkpoint == str(path),
        )


def _length(tokenizer: Any, row: dict[str, Any], method: str) -> int:
    if method == "post_pretrain":
        return len(tokenizer(row["text"], add_special_tokens=True)["input_ids"])
    return len(tokenizer.apply_chat_template(row["messages"], tokenize=True, return_dict=True)["input_ids"])


def _truncate(tokenizer: Any, row: dict[str, Any], method: str, limit: int) -> dict[str, Any]:
    """Shorten a row to fit: text is cut; a conversation loses the end of its last answer."""
    if method == "post_pretrain":
        ids = tokenizer(row["text"], add_special_tokens=False)["input_ids"][: limit - 2]
        return {**row, "text": tokenizer.decode(ids)}
    messages = [dict(m) for m in row["messages"]]
    answer = messages[-1]["content"]
    while (
        answer
        and _length(
            tokenizer, {"messages": [*messages[:-1], {"role": "assistant", "content": answer}]}, method
        )
        > limit
    ):
        answer = answer[: max(0, int(len(answer) * 0.9) - 1)]
    if not answer:
        return {}
    messages[-1]["content"] = answer
    return {**row, "messages": messages}


def run(job_dir: Path) -> int:
    progress = Progress(job_dir / "progress.jsonl")
    try:
        spec = JobSpec.from_json(json.loads((job_dir / "spec.json").read_text()))
        hp = spec.hyperparameters
        base = job_dir / "base"
        tokenizer = AutoTokenizer.from_pretrained(base)  # never trust_remote_code
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        config = AutoConfig.from_pretrained(base)
        model_limit = int(getattr(config, "max_position_embeddings", 0) or 1 << 20)
        rows = [json.loads(line) for line in (job_dir / "train.jsonl").read_text().splitlines() if line]
        validation = []
        if (job_dir / "validation.jsonl").exists():
            validation = [
                json.loads(line) for line in (job_dir / "validation.jsonl").read_text().splitlines() if line
            ]
        lengths = [_length(tokenizer, r, spec.method) for r in rows]
        max_length = min(hp.max_sequence_length or max(lengths), model_limit)
        overlength = sum(1 for n in lengths if n > max_length)
        if hp.truncate_overlength:
            rows = [
                _truncate(tokenizer, r, spec.method, max_length) if n > max_length else r
                for r, n in zip(rows, lengths, strict=True)
            ]
            rows = [r for r in rows if r]
        else:
            rows = [r for r, n in zip(rows, lengths, strict=True) if n <= max_length]
        validation = [r for r in validation if _length(tokenizer, r, spec.method) <= max_length]
        if not rows:
            progress.write(
                "error",
                reason="NO_SAMPLES_FIT",
                message=f"every training sample is longer than max_sequence_length {max_length}",
            )
            return 1
        use_cuda = torch.cuda.is_available()
        bf16 = use_cuda and torch.cuda.is_bf16_supported()
        world = max(1, torch.cuda.device_count()) if use_cuda else 1
        steps_per_epoch = math.ceil(len(rows) / (hp.batch_size * hp.gradient_accumulation_steps * world))
        total_steps = math.ceil(steps_per_epoch * hp.epochs)
        progress.write(
            "data",
            train_rows=len(rows),
            validation_rows=len(validation),
            overlength=overlength,
            max_length=max_length,
            total_steps=total_steps,
            device="cuda" if use_cuda else "cpu",
        )
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16 if bf16 else torch.float32)
        peft_config = None
        if spec.tuning == "lora":
            from peft import LoraConfig

            peft_config = LoraConfig(
                task_type="CAUSAL_LM",
                r=spec.lora.rank,
                lora_alpha=spec.lora.alpha,
                lora_dropout=spec.lora.dropout,
                target_modules=spec.lora.target_modules or "all-linear",
            )
        template = tokenizer.chat_template or ""
        assistant_only = spec.method == "sft" and "generation" in template
        if spec.method == "sft" and not assistant_only:
            # Without {% generation %} markers the template cannot mask prompts: train on the last answer.
            def split_last(r: dict[str, Any]) -> dict[str, Any]:
                return {"id": r["id"], "prompt": r["messages"][:-1], "completion": r["messages"][-1:]}

            rows = [split_last(r) for r in rows]
            validation = [split_last(r) for r in validation]
        validating = bool(validation) and hp.validation_interval_steps > 0
        save_steps = hp.checkpoint_interval_steps or steps_per_epoch
        args = SFTConfig(
            output_dir=str(job_dir / "checkpoints"),
            num_train_epochs=hp.epochs,
            per_device_train_batch_size=hp.batch_size,
            per_device_eval_batch_size=hp.batch_size,
            gradient_accumulation_steps=hp.gradient_accumulation_steps,
            learning_rate=hp.learning_rate,
            lr_scheduler_type=hp.scheduler,
            warmup_steps=round(hp.warmup_ratio * total_steps),
            weight_decay=hp.weight_decay,
            seed=hp.seed,
            data_seed=hp.seed,
            logging_steps=1,
            save_strategy="steps",
            save_steps=save_steps,
            # The worker uploads each checkpoint, then prunes the local copies it does not keep: the
            # trainer must not delete a folder while it is being uploaded.
            save_total_limit=None,
            eval_strategy="steps" if validating else "no",
            eval_steps=hp.validation_interval_steps or None,
            metric_for_best_model="eval_loss" if validating else None,
            greater_is_better=False if validating else None,
            load_best_model_at_end=bool(hp.early_stopping_patience),
            bf16=bf16,
            gradient_checkpointing=False,
            dataloader_pin_memory=use_cuda,
            report_to=[],
            max_length=max_length,
            packing=hp.packing,
            assistant_only_loss=assistant_only,
            dataset_text_field="text",
            disable_tqdm=True,
        )
        callbacks: list[TrainerCallback] = [ProgressCallback(progress)]
        if hp.early_stopping_patience:
            callbacks.append(EarlyStoppingCallback(hp.early_stopping_patience, hp.early_stopping_min_delta))
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list([{k: v for k, v in r.items() if k != "id"} for r in rows]),
            eval_dataset=Dataset.from_list([{k: v for k, v in r.items() if k != "id"} for r in validation])
            if validating
            else None,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=callbacks,
        )
        resume = (job_dir / "resume").read_text().strip() if (job_dir / "resume").exists() else None
        result = trainer.train(resume_from_checkpoint=resume)
        final = job_dir / "final"
        trainer.save_model(str(final))
        tokenizer.save_pretrained(str(final))
        (final / "training_args.bin").unlink(missing_ok=True)
        best_loss = trainer.state.best_metric if validating else None
        runtime = float(result.metrics.get("train_runtime", 0.0))
        tokens = next(
            (float(h["num_tokens"]) for h in reversed(trainer.state.log_history) if "num_tokens" in h), 0.0
        )
        progress.write(
            "done",
            step=trainer.state.global_step,
            train_loss=float(result.training_loss),
            train_runtime=runtime,
            tokens=tokens,
            tokens_per_second=tokens / runtime if runtime else 0.0,
            best_validation_loss=best_loss,
            best_checkpoint=trainer.state.best_model_checkpoint,
            stopped_early=trainer.state.global_step < total_steps,
        )
        return 0
    except torch.OutOfMemoryError as exc:
        progress.write(
            "error",
            reason="OUT_OF_MEMORY",
            message=f"out of memory ({exc}); lower batch_size or max_sequence_length, or use lora",
        )
        return 1
    except FloatingPointError as exc:
        progress.write(
            "error", reason="LOSS_NAN", message=f"{exc}; lower the learning rate or check the data"
        )
        return 1
    except Exception as exc:
        traceback.print_exc()
        progress.write("error", reason="TRAINING_ERROR", message=f"{type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(run(Path(sys.argv[1])))
