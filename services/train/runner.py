"""The training child process: one job, built on transformers + peft + trl.

    python -m services.train.runner JOB_DIR

JOB_DIR holds `spec.json`, `base/` (the base model folder), `train.jsonl`, optionally
`validation.jsonl` and `resume` (a checkpoint path). The runner writes `progress.jsonl` (one JSON
object per line: metrics, saved checkpoints, data facts, the outcome), checkpoints under
`checkpoints/`, and the final model under `final/`. The worker process reads all of it.

What differs between methods (lengths, truncation, the trainer) lives in `services.train.methods`.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    EarlyStoppingCallback,
    TrainerCallback,
)

from services.kit.children import PARENT_VARIABLE, die_with_parent
from services.train import preflight
from services.train.callbacks import Progress, ProgressCallback, Stop
from services.train.checks import planned_steps
from services.train.methods import Method, TrainerSetup
from services.train.spec import JobSpec


def _load_models(spec: JobSpec, job_dir: Path, dtype: Any) -> tuple[Any, Any, Any]:
    """(model, ref_model, peft_config). Incremental training from an adapter continues that
    adapter (lora) or trains its merged model (full); methods with a reference model then compare
    against the merged parent, not the bare base."""
    base = job_dir / "base"
    if spec.training_method.sequence_classification:
        return _reward_model(spec, job_dir, dtype), None, None
    model = _causal_lm(spec, base, dtype)
    parent_adapter = job_dir / "parent_adapter"
    lora_config = None
    if spec.adapter:
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
    if spec.training_method.uses_reference:
        reference = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
        ref_model = PeftModel.from_pretrained(reference, parent_adapter).merge_and_unload()
    return PeftModel.from_pretrained(model, parent_adapter, is_trainable=True), ref_model, None


def _causal_lm(spec: JobSpec, base: Path, dtype: Any) -> Any:
    """The base model, with the fastest attention installed on a GPU; for qlora quantized to 4-bit
    NF4 (double quantization, bf16 compute) and prepared for k-bit training."""
    options: dict[str, Any] = {"dtype": dtype}
    attention = attention_implementation(dtype)
    if attention:
        options["attn_implementation"] = attention
    if spec.tuning != "qlora":
        return AutoModelForCausalLM.from_pretrained(base, **options)
    if not torch.cuda.is_available() or importlib.util.find_spec("bitsandbytes") is None:
        raise Stop(
            "QLORA_UNAVAILABLE",
            "qlora needs a CUDA worker with bitsandbytes (the gpu-worker extra); use lora here",
        )
    from peft import prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig

    options["quantization_config"] = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16,
    )
    options["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    model = AutoModelForCausalLM.from_pretrained(base, **options)
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


def attention_implementation(dtype: Any) -> str | None:
    """FlashAttention-2 on a GPU worker that has it (half precision only); otherwise the library's
    default (SDPA)."""
    half = dtype in (torch.bfloat16, torch.float16)
    if not fast_kernels() or not half:
        return None
    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return None


def kernel_arguments() -> dict[str, Any]:
    """Liger's fused kernels (RMSNorm, RoPE, SwiGLU, fused linear cross-entropy) on a GPU worker
    that has them."""
    if fast_kernels() and torch.cuda.is_available() and importlib.util.find_spec("liger_kernel") is not None:
        return {"use_liger_kernel": True}
    return {}


def fast_kernels() -> bool:
    """FlashAttention-2 and Liger when installed, unless the worker turns them off
    (TUNEFORGE_TRAIN_FAST_KERNELS=0: to compare, or to rule them out)."""
    return os.environ.get("TUNEFORGE_TRAIN_FAST_KERNELS", "1") != "0"


def _reward_model(spec: JobSpec, job_dir: Path, dtype: Any) -> Any:
    """The base (an adapter's merged model when continuing one) with a one-output scoring head."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base, parent_adapter = job_dir / "base", job_dir / "parent_adapter"
    source = base
    if parent_adapter.exists():
        from peft import PeftModel

        source = job_dir / "merged_parent"
        PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(base, dtype=dtype), parent_adapter
        ).merge_and_unload().save_pretrained(source)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1, dtype=dtype)
    if model.config.pad_token_id is None:  # the head scores the last token before padding
        tokenizer = AutoTokenizer.from_pretrained(base)
        model.config.pad_token_id = tokenizer.pad_token_id or tokenizer.eos_token_id
    return model


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


@dataclass
class Data:
    """The rows that fit, and what fitting them took."""

    train: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    max_length: int
    overlength: int


def fit_rows(spec: JobSpec, tokenizer: Any, model_limit: int, job_dir: Path) -> Data:
    """Rows measured as the chat template lays them out; over-long ones truncated or dropped."""
    method, hp = spec.training_method, spec.hyperparameters
    rows = _read_jsonl(job_dir / "train.jsonl")
    validation = _read_jsonl(job_dir / "validation.jsonl")
    lengths = [method.sequence_length(tokenizer, r) for r in rows]
    max_length = min(hp.max_sequence_length or max(lengths, default=1), model_limit)
    max_completion = getattr(spec.method_parameters, "max_completion_length", 0)
    if max_completion:  # room for the generated completion
        max_length = min(max_length, model_limit - max_completion)
    overlength = sum(1 for n in lengths if n > max_length)
    if hp.truncate_overlength:
        rows = [
            method.truncate(tokenizer, r, max_length, hp.prompt_truncation) if n > max_length else r
            for r, n in zip(rows, lengths, strict=True)
        ]
        rows = [r for r in rows if r]
    else:
        rows = [r for r, n in zip(rows, lengths, strict=True) if n <= max_length]
    validation = [r for r in validation if method.sequence_length(tokenizer, r) <= max_length]
    return Data(rows, validation, max_length, overlength)


def trainer_arguments(
    spec: JobSpec, job_dir: Path, *, total_steps: int, steps_per_epoch: int, validating: bool
) -> dict[str, Any]:
    """TRL's arguments every method shares."""
    hp = spec.hyperparameters
    use_cuda = torch.cuda.is_available()
    world = world_size()
    per_process = max(1, hp.batch_size // world)  # the creation check makes it divide evenly
    return dict(
        output_dir=str(job_dir / "checkpoints"),
        num_train_epochs=hp.epochs,
        per_device_train_batch_size=per_process,
        per_device_eval_batch_size=per_process,
        use_cpu=not use_cuda,
        ddp_backend="gloo" if world > 1 and not use_cuda else None,
        ddp_find_unused_parameters=False if world > 1 else None,
        **distributed_arguments(spec, world),
        **kernel_arguments(),
        gradient_accumulation_steps=hp.gradient_accumulation_steps,
        learning_rate=hp.learning_rate,
        lr_scheduler_type=hp.scheduler,
        warmup_steps=round(hp.warmup_ratio * total_steps),
        weight_decay=hp.weight_decay,
        seed=hp.seed,
        data_seed=hp.seed,
        logging_steps=1,
        save_strategy="steps",
        save_steps=hp.checkpoint_interval_steps or steps_per_epoch,
        # The worker uploads each checkpoint, then prunes the local copies it does not keep: the
        # trainer must not delete a folder while it is being uploaded.
        save_total_limit=None,
        eval_strategy="steps" if validating else "no",
        eval_steps=hp.validation_interval_steps or None,
        metric_for_best_model="eval_loss" if validating else None,
        greater_is_better=False if validating else None,
        load_best_model_at_end=bool(hp.early_stopping_patience),
        bf16=use_cuda and torch.cuda.is_bf16_supported(),
        gradient_checkpointing=False,
        dataloader_pin_memory=use_cuda,
        report_to=[],
        disable_tqdm=True,
    )


def world_size() -> int:
    """The job's process count (torchrun's WORLD_SIZE; 1 for a plain process)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def distributed_arguments(spec: JobSpec, world: int) -> dict[str, Any]:
    """Several processes: DDP (each holds the model) for adapters; FSDP2 full sharding for full
    tuning on CUDA, so the weights, gradients and optimizer state are split across the devices.
    (accelerate runs FSDP on accelerators only: full tuning on several CPU processes is DDP.)"""
    if world == 1 or spec.adapter or not torch.cuda.is_available():
        return {}
    # Each process keeps its own shard of the weights and optimizer state in a checkpoint (no
    # gather at every save); the final model is gathered once into one safetensors file (`finish`).
    return {"fsdp": True, "fsdp_config": {"state_dict_type": "SHARDED_STATE_DICT"}}


def preflight_rows(spec: JobSpec, tokenizer: Any, config: Any, job_dir: Path) -> int:
    """The pre-flight checks on the rows, before they are measured (`services/train/preflight.py`):
    vocabulary and chat template. Raises Stop(PREFLIGHT_FAILED) naming every finding; returns the
    number of rows checked."""
    rows = preflight.sample_rows(_read_jsonl(job_dir / "train.jsonl"))
    findings = [
        *preflight.vocabulary(tokenizer, config, rows),
        *preflight.templates(spec.training_method.kind, tokenizer, rows),
    ]
    if findings:
        raise Stop("PREFLIGHT_FAILED", preflight.describe(findings))
    return len(rows)


def preflight_memory(
    spec: JobSpec, config: Any, max_length: int, base: Path, *, use_cuda: bool, bf16: bool
) -> dict[str, Any]:
    """The memory estimate against the device, before the model is loaded (parameters counted from
    the base folder's safetensors headers)."""
    found, need, have, _ = preflight.memory(
        config, spec, max_length, cuda=use_cuda, dtype_bytes=2 if bf16 else 4, folder=base
    )
    if found:
        raise Stop("PREFLIGHT_FAILED", preflight.describe(found))
    return {"memory_estimate_bytes": need.total, "device_memory_bytes": have}


def preflight_done(
    spec: JobSpec,
    model: Any,
    tokenizer: Any,
    rows: list[dict[str, Any]],
    progress: Progress,
    checked: dict[str, Any],
) -> bool:
    """The check that needs the weights (packing, when on); True when the job was only a check."""
    if spec.hyperparameters.packing:
        found = preflight.packing(model, tokenizer, rows)
        if found:
            raise Stop("PREFLIGHT_FAILED", preflight.describe(found))
    if spec.check_only:
        progress.write("checked", **checked)
    return spec.check_only


def report_data(progress: Progress, data: Data, total_steps: int, *, processes: int, dtype: Any) -> None:
    """What the job trains on and with: rows, steps, device, processes, kernels."""
    use_cuda = torch.cuda.is_available()
    progress.write(
        "data",
        train_rows=len(data.train),
        validation_rows=len(data.validation),
        overlength=data.overlength,
        max_length=data.max_length,
        total_steps=total_steps,
        device="cuda" if use_cuda else "cpu",
        processes=processes,
        kernels={"attention": attention_implementation(dtype) or "sdpa", "liger": bool(kernel_arguments())},
    )


def train(spec: JobSpec, job_dir: Path, progress: Progress) -> int:
    method: Method = spec.training_method
    hp = spec.hyperparameters
    base = job_dir / "base"
    tokenizer = AutoTokenizer.from_pretrained(base)  # never trust_remote_code
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    config = AutoConfig.from_pretrained(base)
    checked = {"rows_checked": preflight_rows(spec, tokenizer, config, job_dir)}
    model_limit = int(getattr(config, "max_position_embeddings", 0) or 1 << 20)
    data = fit_rows(spec, tokenizer, model_limit, job_dir)
    if not data.train:
        progress.write(
            "error",
            reason="NO_SAMPLES_FIT",
            message=f"every training sample is longer than max_sequence_length {data.max_length}",
        )
        return 1
    use_cuda = torch.cuda.is_available()
    bf16 = use_cuda and torch.cuda.is_bf16_supported()
    dtype = torch.bfloat16 if bf16 else torch.float32
    world = world_size()
    # `batch_size` is the step's whole batch, shared by the processes: the plan is the same on any count.
    total_steps = planned_steps(spec, len(data.train))
    steps_per_epoch = math.ceil(
        len(data.train) / max(1, method.samples_per_step(hp, spec.method_parameters, 1))
    )
    report_data(progress, data, total_steps, processes=world, dtype=dtype)
    checked |= preflight_memory(spec, config, data.max_length, base, use_cuda=use_cuda, bf16=bf16)
    model, ref_model, peft_config = _load_models(spec, job_dir, dtype)
    if preflight_done(spec, model, tokenizer, data.train, progress, checked):
        return 0
    rows = method.trainer_rows(tokenizer, data.train, spec.method_parameters)
    validation = method.trainer_rows(tokenizer, data.validation, spec.method_parameters)
    if data.train and not rows:
        raise ValueError("no training row has a token to learn from (every answer has weight 0)")
    validating = bool(validation) and hp.validation_interval_steps > 0 and method.validates
    common = trainer_arguments(
        spec, job_dir, total_steps=total_steps, steps_per_epoch=steps_per_epoch, validating=validating
    )
    # Sample ids per step need the dataset in the order given (no packing; GRPO repeats prompts).
    ids = [r["id"] for r in rows] if not hp.packing and not method.follows_reward else None
    callback = ProgressCallback(progress, job_dir, ids, spec, total_steps)
    callbacks: list[TrainerCallback] = [callback]
    if hp.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(hp.early_stopping_patience, hp.early_stopping_min_delta))

    def without_ids(part: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "id"} for r in part]

    trainer = method.build_trainer(
        TrainerSetup(
            common=common,
            model=model,
            ref_model=ref_model,
            peft_config=peft_config,
            tokenizer=tokenizer,
            train=without_ids(rows),
            validation=without_ids(validation) if validating else None,
            callbacks=callbacks,
            max_length=data.max_length,
            job_dir=job_dir,
            config=spec.method_parameters,
            packing=hp.packing,
        )
    )
    if ids is not None and len(trainer.train_dataset) != len(ids):
        callback.ids = None  # the trainer dropped rows (e.g. fully masked): positions no longer map
    return finish(
        trainer, callback, progress, job_dir, tokenizer, validating=validating, total_steps=total_steps
    )


def finish(
    trainer: Any,
    callback: ProgressCallback,
    progress: Progress,
    job_dir: Path,
    tokenizer: Any,
    *,
    validating: bool,
    total_steps: int,
) -> int:
    """Train (resuming when asked), then save the final model and report the outcome."""
    resume = (job_dir / "resume").read_text().strip() if (job_dir / "resume").exists() else None
    result = trainer.train(resume_from_checkpoint=resume)
    if callback.stop is not None:
        raise callback.stop
    if callback.preempted:
        progress.write("preempted", step=trainer.state.global_step)
        return 0
    final = job_dir / "final"
    plugin = getattr(trainer.accelerator.state, "fsdp_plugin", None)
    if plugin is not None:  # the final model is one file, gathered from the shards
        plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(str(final))  # only the first process writes
    if rank() == 0:
        tokenizer.save_pretrained(str(final))
        (final / "training_args.bin").unlink(missing_ok=True)
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
        peak_memory_bytes=peak_memory_bytes(),
        best_validation_loss=trainer.state.best_metric if validating else None,
        best_checkpoint=trainer.state.best_model_checkpoint,
        stopped_early=trainer.state.global_step < total_steps,
    )
    return 0


def peak_memory_bytes() -> int:
    """This process's peak: CUDA memory allocated on its device, or its resident memory on CPU."""
    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated())
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run(job_dir: Path, forward: Callable[[dict[str, Any]], None] | None = None) -> int:
    """Train the job in `job_dir`; `forward` also receives each report (a Ray worker sends them to
    its driver). Returns the exit code: 0, 1 after a reported error, PEER_LOST."""
    # Only the first process reports; the others report only an error of their own (a line each,
    # appended whole), so a failure on any process is told, not just seen as a crash.
    progress = Progress(job_dir / "progress.jsonl", only_errors=rank() != 0, forward=forward)
    try:
        spec = JobSpec.from_json(json.loads((job_dir / "spec.json").read_text()))
        return train(spec, job_dir, progress)
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
        if world_size() > 1 and peer_lost(exc):
            # Another process of the job died (killed, out of memory): nothing to report; the
            # worker restarts the job's processes from the newest checkpoint.
            print("a process of the job was lost; leaving the restart to the worker", file=sys.stderr)
            return PEER_LOST
        progress.write("error", reason="TRAINING_ERROR", message=f"{type(exc).__name__}: {exc}")
        return 1


PEER_LOST = 75
# What the collective backends say when the other end of a connection is gone.
_PEER_GONE = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "NCCL communicator")


def peer_lost(exc: BaseException) -> bool:
    """Whether `exc` comes from a collective whose peer process died (not from this process's work)."""
    import torch.distributed as dist

    return isinstance(exc, dist.DistError) or any(marker in str(exc) for marker in _PEER_GONE)


if __name__ == "__main__":
    if "TORCHELASTIC_RUN_ID" in os.environ:  # a torchrun process: its parent is torchrun, which
        os.environ.pop(PARENT_VARIABLE, None)  # itself dies with the worker
    die_with_parent()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(run(Path(sys.argv[1])))
