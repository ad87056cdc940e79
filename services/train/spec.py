"""What a training job says, validated field by field before anything is queued.

`JobSpec` is plain data (JSON in the database, JSON to the runner). Checks here need nothing but
the request; checks against the data and the model live in `jobs.py`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from google.protobuf import json_format

from services.kit.errors import FieldViolation, InvalidArgument
from tuneforge.train.v1 import training_job_pb2

METHODS = {"post_pretrain": "text", "sft": "sft"}  # method -> the dataset kind it trains on
TUNINGS = ("lora", "full")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")


@dataclass
class Hyperparameters:
    epochs: float = 3.0
    learning_rate: float = 3e-4
    batch_size: int = 16
    max_sequence_length: int = 0  # 0: the longest sample, capped by the model
    truncate_overlength: bool = False
    checkpoint_count: int = 2
    checkpoint_interval_steps: int = 0  # 0: once per epoch
    validation_interval_steps: int = 0
    early_stopping_patience: int = 0
    early_stopping_min_delta: float = 0.0
    warmup_ratio: float = 0.0
    scheduler: str = "linear"
    weight_decay: float = 0.0
    gradient_accumulation_steps: int = 1
    seed: int = 0
    packing: bool = False


@dataclass
class Lora:
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=list)  # empty: all-linear


@dataclass
class JobSpec:
    base_model: str
    method: str
    tuning: str
    training_data: list[dict[str, Any]]  # [{"dataset_version", "sampling_rate"}]
    validation_data: str = ""
    validation_split: float = 0.0
    output_model: str = ""
    hyperparameters: Hyperparameters = field(default_factory=Hyperparameters)
    lora: Lora = field(default_factory=Lora)
    auto_evaluation: dict[str, Any] | None = None  # {"dataset_version", "metrics"}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobSpec:
        return cls(
            **{k: v for k, v in data.items() if k not in ("hyperparameters", "lora")},
            hyperparameters=Hyperparameters(**data["hyperparameters"]),
            lora=Lora(**data["lora"]),
        )


def spec_from_proto(job: training_job_pb2.TrainingJob, field_prefix: str = "training_job") -> JobSpec:
    """Read and check the request's fields, filling defaults; raise InvalidArgument naming every bad one."""
    p = field_prefix
    bad: list[FieldViolation] = []

    def violation(name: str, description: str) -> None:
        bad.append(FieldViolation(f"{p}.{name}", description))

    method = job.method or "sft"
    if method not in METHODS:
        violation(
            "method",
            f"{method!r} is not one of {', '.join(METHODS)} (preference and RL methods are not available yet)",
        )
    tuning = job.tuning or "lora"
    if tuning not in TUNINGS:
        violation("tuning", f"{tuning!r} is not one of {', '.join(TUNINGS)}")
    if not job.base_model:
        violation(
            "base_model",
            "name the base model: a model version (projects/…/models/…/versions/N) or local:///path",
        )
    if not job.training_data:
        violation("training_data", "give at least one dataset version with its sampling rate")
    for i, ref in enumerate(job.training_data):
        if not 0.01 <= ref.sampling_rate <= 10:
            violation(
                f"training_data[{i}].sampling_rate", f"must be between 0.01 and 10 (got {ref.sampling_rate})"
            )
    if not 0 <= job.validation_split <= 0.5:
        violation("validation_split", "must be between 0 and 0.5")
    if job.validation_split and job.validation_data:
        violation("validation_split", "give validation_data or validation_split, not both")

    h = job.hyperparameters
    hp = Hyperparameters(
        epochs=h.epochs or 3.0,
        learning_rate=h.learning_rate or (3e-4 if tuning == "lora" else 2e-5),
        batch_size=h.batch_size or 16,
        max_sequence_length=h.max_sequence_length,
        truncate_overlength=h.truncate_overlength,
        checkpoint_count=h.checkpoint_count or 2,
        checkpoint_interval_steps=h.checkpoint_interval_steps,
        validation_interval_steps=h.validation_interval_steps,
        early_stopping_patience=h.early_stopping.patience,
        early_stopping_min_delta=h.early_stopping.min_delta,
        warmup_ratio=h.warmup_ratio,
        scheduler=h.scheduler or "linear",
        weight_decay=h.weight_decay,
        gradient_accumulation_steps=h.gradient_accumulation_steps or 1,
        seed=h.seed,
        packing=h.packing,
    )
    hp_prefix = "hyperparameters"
    if not 0 < hp.epochs <= 100 or not math.isfinite(hp.epochs):
        violation(f"{hp_prefix}.epochs", f"must be above 0 and at most 100 (1-5 advised; got {hp.epochs})")
    if not hp.learning_rate > 0 or not math.isfinite(hp.learning_rate) or hp.learning_rate > 1:
        violation(
            f"{hp_prefix}.learning_rate",
            f"must be above 0 and at most 1 (3e-4 advised for LoRA; got {h.learning_rate})",
        )
    if not 1 <= hp.batch_size <= 4096:
        violation(
            f"{hp_prefix}.batch_size", f"must be between 1 and 4096 (10-20 advised; got {hp.batch_size})"
        )
    if hp.max_sequence_length < 0:
        violation(f"{hp_prefix}.max_sequence_length", "must not be negative (0 = the longest sample)")
    if not 1 <= hp.checkpoint_count <= 100:
        violation(f"{hp_prefix}.checkpoint_count", "must be between 1 and 100")
    if hp.checkpoint_interval_steps < 0:
        violation(f"{hp_prefix}.checkpoint_interval_steps", "must not be negative (50-100 advised)")
    if hp.validation_interval_steps < 0:
        violation(f"{hp_prefix}.validation_interval_steps", "must not be negative (0 = no validation)")
    if hp.validation_interval_steps and not (job.validation_data or job.validation_split):
        violation(
            f"{hp_prefix}.validation_interval_steps", "validation needs validation_data or validation_split"
        )
    if hp.early_stopping_patience < 0:
        violation(f"{hp_prefix}.early_stopping.patience", "must not be negative")
    if hp.early_stopping_patience and not hp.validation_interval_steps:
        violation(
            f"{hp_prefix}.early_stopping.patience",
            "early stopping watches validation loss: set validation_interval_steps",
        )
    if (
        hp.early_stopping_patience
        and hp.checkpoint_interval_steps
        and hp.validation_interval_steps
        and hp.checkpoint_interval_steps % hp.validation_interval_steps
    ):
        violation(
            f"{hp_prefix}.checkpoint_interval_steps",
            f"with early stopping it must be a multiple of validation_interval_steps ({hp.validation_interval_steps}), so the best model is a kept checkpoint",
        )
    if not 0 <= hp.warmup_ratio <= 0.5:
        violation(f"{hp_prefix}.warmup_ratio", "must be between 0 and 0.5")
    if hp.scheduler not in SCHEDULERS:
        violation(f"{hp_prefix}.scheduler", f"{hp.scheduler!r} is not one of {', '.join(SCHEDULERS)}")
    if not 0 <= hp.weight_decay <= 1:
        violation(f"{hp_prefix}.weight_decay", "must be between 0 and 1")
    if not 1 <= hp.gradient_accumulation_steps <= 1024:
        violation(f"{hp_prefix}.gradient_accumulation_steps", "must be between 1 and 1024")

    lora = Lora(
        rank=job.lora.rank or 8,
        alpha=job.lora.alpha or 2 * (job.lora.rank or 8),
        dropout=job.lora.dropout if job.lora.dropout else 0.05,
        target_modules=list(job.lora.target_modules),
    )
    if tuning == "lora":
        if not 1 <= lora.rank <= 1024:
            violation("lora.rank", "must be between 1 and 1024")
        if not 0 <= lora.dropout < 1:
            violation("lora.dropout", "must be at least 0 and below 1")
    if job.auto_evaluation.metrics:
        from services.eval.metrics import check_metrics

        unknown = check_metrics(list(job.auto_evaluation.metrics))
        if unknown:
            violation("auto_evaluation.metrics", f"unknown metric {', '.join(unknown)}")
    if bad:
        raise InvalidArgument.fields(bad)
    return JobSpec(
        base_model=job.base_model,
        method=method,
        tuning=tuning,
        training_data=[
            {"dataset_version": r.dataset_version, "sampling_rate": r.sampling_rate}
            for r in job.training_data
        ],
        validation_data=job.validation_data,
        validation_split=job.validation_split,
        output_model=job.output_model,
        hyperparameters=hp,
        lora=lora,
        auto_evaluation=(
            {
                "dataset_version": job.auto_evaluation.dataset_version,
                "metrics": list(job.auto_evaluation.metrics) or ["bleu4", "rouge_l"],
            }
            if job.auto_evaluation.dataset_version
            else None
        ),
    )


def hyperparameters_proto(hp: Hyperparameters) -> training_job_pb2.Hyperparameters:
    data = {k: v for k, v in asdict(hp).items() if not k.startswith("early_stopping")}
    message = json_format.ParseDict(data, training_job_pb2.Hyperparameters())
    message.early_stopping.patience = hp.early_stopping_patience
    message.early_stopping.min_delta = hp.early_stopping_min_delta
    return message
