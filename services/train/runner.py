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

from services.train import report
from services.train.spec import JobSpec


class Progress:
    def __init__(self, path: Path) -> None:
        self.file = path.open("a", buffering=1)

    def write(self, kind: str, **fields: Any) -> None:
        self.file.write(json.dumps({"type": kind, "time": time.time(), **fields}) + "\n")


# Method-specific values worth keeping per step (TRL's log keys).
METHOD_METRICS = (
    "rewards/chosen",
    "rewards/rejected",
    "rewards/margins",
    "rewards/accuracies",
    "kl",
    "nll_loss",
    "log_odds_ratio",
    "reward",
    "reward_std",
)


class Stop(Exception):
    """The job must stop with this reason (written to progress as an error)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ProgressCallback(TrainerCallback):
    """Metrics at every log with the ids of the step's samples, checkpoints once fully written, the
    loss guard, and preemption (a `preempt` file in the job folder: checkpoint now and stop)."""

    def __init__(
        self, progress: Progress, job_dir: Path, ids: list[str] | None, spec: JobSpec, total_steps: int
    ) -> None:
        self.progress = progress
        self.job_dir = job_dir
        self.ids = ids
        self.spec = spec
        self.total_steps = total_steps
        self.last_tokens: tuple[float, float] | None = None
        self.last_eval_loss: float | None = None
        self.orders: list[list[int]] = []
        self.guard = report.LossGuard(
            total_steps,
            trends=spec.method != "grpo" and not spec.hyperparameters.ignore_loss_anomalies,
        )
        self.stop: Stop | None = None
        self.preempted = False
        self.batches_per_epoch = 0

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):  # type: ignore[no-untyped-def]
        # After a resume the loss guard judges the whole run, not just what follows the checkpoint.
        for h in state.log_history:
            if "loss" in h:
                self.guard.add(float(h["loss"]))
        # Record each epoch's sample order as the (seeded, resumable) sampler draws it, so a step's
        # batches can be named. The sampler keeps its class and seed; only its draws are recorded.
        sampler = getattr(getattr(train_dataloader, "batch_sampler", None), "sampler", None)
        if self.ids is None or sampler is None or train_dataloader is None:
            return
        self.batches_per_epoch = len(train_dataloader)
        orders = self.orders
        original = type(sampler)

        def recording_iter(this: Any) -> Any:
            order = list(original.__iter__(this))
            orders.append(order)
            return iter(order)

        sampler.__class__ = type(f"Recording{original.__name__}", (original,), {"__iter__": recording_iter})

    def _sample_ids(self, args: Any, step: int) -> list[str]:
        if not self.ids or not self.orders or not self.batches_per_epoch:
            return []
        accumulation = args.gradient_accumulation_steps
        steps_per_epoch = max(1, math.ceil(self.batches_per_epoch / accumulation))
        within = (step - 1) % steps_per_epoch
        size = args.per_device_train_batch_size
        order = self.orders[-1]
        first, last = within * accumulation * size, (within + 1) * accumulation * size
        return [self.ids[i] for i in order[first:last] if i < len(self.ids)]

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
            loss = float(logs["loss"])
            self.progress.write(
                "metric",
                step=state.global_step,
                epoch=state.epoch or 0.0,
                loss=loss if math.isfinite(loss) else None,
                learning_rate=float(logs.get("learning_rate", 0.0)),
                grad_norm=float(logs.get("grad_norm", 0.0) or 0.0),
                tokens_per_second=tokens_per_second,
                method_metrics={k: float(logs[k]) for k in METHOD_METRICS if k in logs},
                sample_ids=self._sample_ids(args, state.global_step),
            )
            anomaly = self.guard.add(loss)
            if anomaly:
                self.stop = Stop(*anomaly)
                control.should_training_stop = True

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if (self.job_dir / "preempt").exists() and not self.preempted and self.stop is None:
            self.preempted = True
            control.should_save = True
            control.should_training_stop = True

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


def _render(tokenizer: Any, messages: list[dict[str, Any]], generation_prompt: bool = False) -> int:
    return len(
        tokenizer.apply_chat_template(
            messages, tokenize=True, return_dict=True, add_generation_prompt=generation_prompt
        )["input_ids"]
    )


def _length(tokenizer: Any, row: dict[str, Any], method: str) -> int:
    if method == "post_pretrain":
        return len(tokenizer(row["text"], add_special_tokens=True)["input_ids"])
    if method == "sft":
        return _render(tokenizer, row["messages"])
    if method in ("dpo", "orpo"):
        return max(_render(tokenizer, row["prompt"] + row[k]) for k in ("chosen", "rejected"))
    if method == "kto":
        return _render(tokenizer, row["prompt"] + row["completion"])
    return _render(tokenizer, row["prompt"], generation_prompt=True)  # grpo: the prompt


def _truncate(tokenizer: Any, row: dict[str, Any], method: str, limit: int) -> dict[str, Any]:
    """Shorten a row to fit: text is cut; a conversation loses the end of its last answer.
    Preference rows are truncated by the trainer itself (its `max_length`)."""
    if method in ("dpo", "orpo", "kto"):
        return row
    if method == "grpo":
        return {}
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


def _load_models(spec: JobSpec, job_dir: Path, dtype: Any) -> tuple[Any, Any, Any]:
    """(model, ref_model, peft_config). Incremental training from an adapter continues that
    adapter (lora) or trains its merged model (full); preference methods then compare against the
    merged parent, not the bare base."""
    base = job_dir / "base"
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    parent_adapter = job_dir / "parent_adapter"
    lora_config = None
    if spec.tuning == "lora":
        from peft import LoraConfig

        lora_config = LoraConfig(
            task_type="CAUSAL_LM",
            r=spec.lora.rank,
            lora_alpha=spec.lora.alpha,
            lora_dropout=spec.lora.dropout,
            target_modules=spec.lora.target_modules or "all-linear",
        )
    if not parent_adapter.exists():
        return model, None, lora_config
    from peft import PeftModel

    if spec.tuning == "full":
        merged = PeftModel.from_pretrained(model, parent_adapter).merge_and_unload()
        merged.requires_grad_(True)  # peft froze the base weights; full training trains them all
        return merged, None, None
    ref_model = None
    if spec.method in ("dpo", "kto"):
        reference = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
        ref_model = PeftModel.from_pretrained(reference, parent_adapter).merge_and_unload()
    return PeftModel.from_pretrained(model, parent_adapter, is_trainable=True), ref_model, None


def _trainer(
    spec: JobSpec,
    common: dict[str, Any],
    model: Any,
    ref_model: Any,
    peft_config: Any,
    tokenizer: Any,
    train: list[dict[str, Any]],
    validation: list[dict[str, Any]] | None,
    callbacks: list[TrainerCallback],
    max_length: int,
    job_dir: Path,
) -> Any:
    hp, mp = spec.hyperparameters, spec.method_parameters
    datasets = {
        "train_dataset": Dataset.from_list(train),
        "eval_dataset": Dataset.from_list(validation) if validation else None,
        "processing_class": tokenizer,
        "callbacks": callbacks,
        "peft_config": peft_config,
    }
    if spec.method in ("sft", "post_pretrain"):
        template = tokenizer.chat_template or ""
        args = SFTConfig(
            **common,
            max_length=max_length,
            packing=hp.packing,
            assistant_only_loss=spec.method == "sft" and "generation" in template,
            dataset_text_field="text",
        )
        return SFTTrainer(model=model, args=args, **datasets)
    if spec.method == "dpo":
        from trl import DPOConfig, DPOTrainer

        args = DPOConfig(**common, beta=mp.beta, max_length=max_length)
        return DPOTrainer(model=model, ref_model=ref_model, args=args, **datasets)
    if spec.method == "orpo":
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        args = ORPOConfig(**common, beta=mp.beta, max_length=max_length)
        return ORPOTrainer(model=model, args=args, **datasets)
    if spec.method == "kto":
        from trl import KTOConfig, KTOTrainer

        args = KTOConfig(
            **common,
            beta=mp.beta,
            desirable_weight=mp.desirable_weight,
            undesirable_weight=mp.undesirable_weight,
            max_length=max_length,
        )
        return KTOTrainer(model=model, ref_model=ref_model, args=args, **datasets)
    from trl import GRPOConfig, GRPOTrainer

    from services.train import rewards

    reward_funcs: list[Any] = [rewards.make(r) for r in mp.rewards]
    weights = [r["weight"] for r in mp.rewards]
    reward_tokenizers: list[Any] = [None] * len(reward_funcs)
    if mp.reward_model:
        from transformers import AutoModelForSequenceClassification

        folder = job_dir / "reward_model"
        reward_funcs.append(AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1))
        reward_tokenizers.append(AutoTokenizer.from_pretrained(folder))
        weights.append(1.0)
    args = GRPOConfig(
        **common,
        num_generations=mp.num_generations,
        max_completion_length=mp.max_completion_length,
        temperature=mp.temperature,
        beta=mp.beta,
        reward_weights=weights,
    )
    return GRPOTrainer(
        model=model,
        reward_funcs=reward_funcs,
        reward_processing_classes=reward_tokenizers,
        args=args,
        **{k: v for k, v in datasets.items() if k != "eval_dataset"},
    )


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


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
        rows = _read_jsonl(job_dir / "train.jsonl")
        validation = _read_jsonl(job_dir / "validation.jsonl")
        lengths = [_length(tokenizer, r, spec.method) for r in rows]
        max_length = min(hp.max_sequence_length or max(lengths), model_limit)
        if spec.method == "grpo":
            max_length = min(max_length, model_limit - spec.method_parameters.max_completion_length)
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
        samples_per_step = hp.batch_size * hp.gradient_accumulation_steps * world
        if spec.method == "grpo":  # each prompt yields num_generations completions
            samples_per_step //= spec.method_parameters.num_generations
        steps_per_epoch = math.ceil(len(rows) / samples_per_step)
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
        model, ref_model, peft_config = _load_models(spec, job_dir, torch.bfloat16 if bf16 else torch.float32)
        if spec.method == "sft" and "generation" not in (tokenizer.chat_template or ""):
            # Without {% generation %} markers the template cannot mask prompts: train on the last answer.
            def split_last(r: dict[str, Any]) -> dict[str, Any]:
                return {"id": r["id"], "prompt": r["messages"][:-1], "completion": r["messages"][-1:]}

            rows = [split_last(r) for r in rows]
            validation = [split_last(r) for r in validation]
        validating = bool(validation) and hp.validation_interval_steps > 0 and spec.method != "grpo"
        save_steps = hp.checkpoint_interval_steps or steps_per_epoch
        common = dict(
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
            disable_tqdm=True,
        )
        # Sample ids per step need the dataset in the order given (no packing; grpo repeats prompts).
        ids = [r["id"] for r in rows] if not hp.packing and spec.method != "grpo" and world == 1 else None
        callback = ProgressCallback(progress, job_dir, ids, spec, total_steps)
        callbacks: list[TrainerCallback] = [callback]
        if hp.early_stopping_patience:
            callbacks.append(EarlyStoppingCallback(hp.early_stopping_patience, hp.early_stopping_min_delta))
        trainer = _trainer(
            spec,
            common,
            model,
            ref_model,
            peft_config,
            tokenizer,
            [{k: v for k, v in r.items() if k != "id"} for r in rows],
            [{k: v for k, v in r.items() if k != "id"} for r in validation] if validating else None,
            callbacks,
            max_length,
            job_dir,
        )
        if ids is not None and len(trainer.train_dataset) != len(ids):
            callback.ids = None  # the trainer dropped rows (e.g. fully masked): positions no longer map
        resume = (job_dir / "resume").read_text().strip() if (job_dir / "resume").exists() else None
        result = trainer.train(resume_from_checkpoint=resume)
        if callback.stop is not None:
            raise callback.stop
        if callback.preempted:
            progress.write("preempted", step=trainer.state.global_step)
            return 0
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
    except Stop as stop:
        progress.write("error", reason=stop.reason, message=stop.message)
        return 1
    except torch.OutOfMemoryError as exc:
        progress.write(
            "error",
            reason="OUT_OF_MEMORY",
            message=f"out of memory ({exc}); lower batch_size or max_sequence_length, or use lora",
        )
        return 1
    except Exception as exc:
        traceback.print_exc()
        progress.write("error", reason="TRAINING_ERROR", message=f"{type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(run(Path(sys.argv[1])))
