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

# method -> the dataset kind it trains on
METHODS = {
    "post_pretrain": "text",
    "sft": "sft",
    "dpo": "preference",
    "orpo": "preference",
    "kto": "unpaired_preference",
    "grpo": "prompt_only",
}
PREFERENCE_METHODS = ("dpo", "orpo", "kto")
REWARD_TYPES = ("regex", "exact_answer", "word_count", "json_fields")
PRIORITIES = ("normal", "idle")
METHOD_PARAMETERS = {
    "dpo": {"beta"},
    "orpo": {"beta"},
    "kto": {"beta", "desirable_weight", "undesirable_weight"},
    "grpo": {"beta", "num_generations", "max_completion_length", "rewards", "reward_model", "temperature"},
}
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
    ignore_loss_anomalies: bool = False


@dataclass
class MethodParameters:
    beta: float = 0.1
    desirable_weight: float = 1.0
    undesirable_weight: float = 1.0
    num_generations: int = 4
    max_completion_length: int = 64
    rewards: list[dict[str, Any]] = field(default_factory=list)
    reward_model: str = ""
    temperature: float = 1.0


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
    priority: str = "normal"
    method_parameters: MethodParameters = field(default_factory=MethodParameters)
    replay_share: float = 0.0
    # Filled when the job is validated: the registered version it continues (incremental training),
    # whether that is a LoRA adapter, and the adapter's own base model.
    parent: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobSpec:
        return cls(
            **{k: v for k, v in data.items() if k not in ("hyperparameters", "lora", "method_parameters")},
            hyperparameters=Hyperparameters(**data["hyperparameters"]),
            lora=Lora(**data["lora"]),
            method_parameters=MethodParameters(**data.get("method_parameters", {})),
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
            f"{method!r} is not one of {', '.join(METHODS)}",
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
        ignore_loss_anomalies=h.ignore_loss_anomalies,
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
    priority = job.priority or "normal"
    if priority not in PRIORITIES:
        violation("priority", f"{priority!r} is not one of {', '.join(PRIORITIES)}")
    if not 0 <= job.replay_share <= 0.9 or not math.isfinite(job.replay_share):
        violation("replay_share", f"must be between 0 and 0.9 (got {job.replay_share})")
    parameters = _method_parameters(job, method, hp, violation)
    if method == "grpo" and (job.validation_data or job.validation_split):
        violation("validation_data", "grpo has no validation loss; evaluate the result instead")
    if method == "grpo" and hp.packing:
        violation(f"{hp_prefix}.packing", "packing applies to post_pretrain and sft only")
    if method in PREFERENCE_METHODS and hp.packing:
        violation(f"{hp_prefix}.packing", "packing applies to post_pretrain and sft only")
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
        priority=priority,
        method_parameters=parameters,
        replay_share=job.replay_share,
    )


def _method_parameters(
    job: training_job_pb2.TrainingJob, method: str, hp: Hyperparameters, violation: Any
) -> MethodParameters:
    """Check the method's own parameters; refuse those of another method (they would be ignored)."""
    m = job.method_parameters
    p = "method_parameters"
    allowed = METHOD_PARAMETERS.get(method, set())
    for given, _ in m.ListFields():
        if given.name not in allowed:
            violation(f"{p}.{given.name}", f"is not a parameter of {method}")
    params = MethodParameters(
        beta=m.beta or (0.0 if method == "grpo" else 0.1),
        desirable_weight=m.desirable_weight or 1.0,
        undesirable_weight=m.undesirable_weight or 1.0,
        num_generations=m.num_generations or 4,
        max_completion_length=m.max_completion_length or 64,
        reward_model=m.reward_model,
        temperature=m.temperature or 1.0,
    )
    if not 0 <= params.beta <= 10 or not math.isfinite(params.beta):
        violation(f"{p}.beta", f"must be between 0 and 10 (0.1 advised; got {m.beta})")
    for name in ("desirable_weight", "undesirable_weight"):
        value = getattr(params, name)
        if not 0 < value <= 100 or not math.isfinite(value):
            violation(f"{p}.{name}", f"must be above 0 and at most 100 (got {value})")
    if method == "kto" and hp.batch_size < 2:
        violation("hyperparameters.batch_size", "kto estimates its KL term across a batch: use 2 or more")
    if method != "grpo":
        return params
    if not 2 <= params.num_generations <= 64:
        violation(f"{p}.num_generations", f"must be between 2 and 64 (got {params.num_generations})")
    elif (hp.batch_size * hp.gradient_accumulation_steps) % params.num_generations:
        violation(
            f"{p}.num_generations",
            f"must divide batch_size x gradient_accumulation_steps "
            f"({hp.batch_size * hp.gradient_accumulation_steps}): each batch holds whole groups of completions",
        )
    if not 1 <= params.max_completion_length <= 8192:
        violation(f"{p}.max_completion_length", "must be between 1 and 8192")
    if not 0 < params.temperature <= 5 or not math.isfinite(params.temperature):
        violation(f"{p}.temperature", "must be above 0 and at most 5")
    if not m.rewards and not m.reward_model:
        violation(f"{p}.rewards", "grpo needs a reward: give rule rewards, a reward_model, or both")
    for i, reward in enumerate(m.rewards):
        where = f"{p}.rewards[{i}]"
        if reward.type not in REWARD_TYPES:
            violation(f"{where}.type", f"{reward.type!r} is not one of {', '.join(REWARD_TYPES)}")
            continue
        if reward.type == "regex":
            if not reward.pattern:
                violation(f"{where}.pattern", "a regex reward needs a pattern")
            else:
                import re

                try:
                    re.compile(reward.pattern)
                except re.error as error:
                    violation(f"{where}.pattern", f"is not a valid regular expression: {error}")
        if reward.type == "json_fields" and not reward.required_fields:
            violation(f"{where}.required_fields", "name the fields the JSON object must hold")
        if reward.target_words < 0:
            violation(f"{where}.target_words", "must not be negative (0: the reference's length)")
        if reward.weight < 0 or not math.isfinite(reward.weight):
            violation(f"{where}.weight", "must not be negative")
        params.rewards.append(
            {
                "type": reward.type,
                "pattern": reward.pattern,
                "required_fields": list(reward.required_fields),
                "target_words": reward.target_words,
                "weight": reward.weight or 1.0,
            }
        )
    return params


def method_parameters_proto(method: str, params: MethodParameters) -> training_job_pb2.MethodParameters:
    """The parameters the method uses (with their defaults filled in)."""
    allowed = METHOD_PARAMETERS.get(method, set())
    data = {k: v for k, v in asdict(params).items() if k in allowed}
    return json_format.ParseDict(data, training_job_pb2.MethodParameters())


def hyperparameters_proto(hp: Hyperparameters) -> training_job_pb2.Hyperparameters:
    data = {k: v for k, v in asdict(hp).items() if not k.startswith("early_stopping")}
    message = json_format.ParseDict(data, training_job_pb2.Hyperparameters())
    message.early_stopping.patience = hp.early_stopping_patience
    message.early_stopping.min_delta = hp.early_stopping_min_delta
    return message
