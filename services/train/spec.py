"""What a training job says, validated field by field before anything is queued.

`JobSpec` is plain data (JSON in the database, JSON to the runner). Checks here need nothing but
the request; checks against the data and the model are in `checks.py`, over facts that `facts.py`
gathers from the other services.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from google.protobuf import json_format

from services.kit.errors import FieldViolation, InvalidArgument
from services.train.methods import METHODS, Method
from tuneforge.enums import enum_names
from tuneforge.train.v1 import training_job_pb2

TUNINGS = ("lora", "full", "qlora")
ADAPTER_TUNINGS = ("lora", "qlora")
ACCELERATOR_KINDS = ("cuda", "cpu")
PRIORITIES = ("normal", "idle")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
METHOD_NAMES = enum_names(training_job_pb2.TrainingMethod, "TRAINING_METHOD_")
TUNING_NAMES = enum_names(training_job_pb2.TuningMode, "TUNING_MODE_")
PRIORITY_NAMES = enum_names(training_job_pb2.JobPriority, "JOB_PRIORITY_")


@dataclass
class Hyperparameters:
    epochs: float = 3.0
    learning_rate: float = 3e-4
    batch_size: int = 16
    max_sequence_length: int = 0  # 0: the longest sample, capped by the model
    truncate_overlength: bool = False
    prompt_truncation: str = "none"  # none, left or middle (sft, with truncate_overlength)
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
class Lora:
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=list)  # empty: all-linear


@dataclass
class Resources:
    """What a job runs on (`Resources` in the proto); one process per accelerator."""

    accelerators_per_node: int = 1
    nodes: int = 1
    accelerator_kind: str = ""  # empty: any (cuda for qlora)
    accelerator_memory_bytes: int = 0

    @property
    def processes(self) -> int:
        return self.accelerators_per_node * self.nodes

    def describe(self) -> str:
        """`4 cuda devices`, `2 nodes of 4 cuda devices`, `1 device with 80 GiB`."""
        kind = f"{self.accelerator_kind} " if self.accelerator_kind else ""
        count = self.accelerators_per_node
        text = f"{count} {kind}device{'s' if count != 1 else ''}"
        if self.accelerator_memory_bytes:
            text += f" of {self.accelerator_memory_bytes / 2**30:.0f} GiB"
        return f"{self.nodes} nodes of {text}" if self.nodes > 1 else text


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
    # The method's own parameters: an instance of `METHODS[method].parameters`.
    method_parameters: Any = None
    replay_share: float = 0.0
    # Only the pre-flight check runs (`tuneforge train check`): no training, nothing registered.
    check_only: bool = False
    # Filled when the job is validated: the registered version it continues (incremental training),
    # whether that is a LoRA adapter, and the adapter's own base model.
    parent: dict[str, Any] | None = None
    # The base model's vocabulary size (from its config, at validation): the diagnosis compares the
    # loss with ln(vocabulary), the loss of a model that predicts every token uniformly.
    vocab_size: int = 0
    resources: Resources = field(default_factory=Resources)

    def __post_init__(self) -> None:
        if self.method_parameters is None:
            self.method_parameters = self.training_method.parameters()

    @property
    def training_method(self) -> Method:
        return METHODS[self.method]

    @property
    def adapter(self) -> bool:
        """Whether the job trains a LoRA adapter (lora, or qlora on a 4-bit base)."""
        return self.tuning in ADAPTER_TUNINGS

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["method_parameters"] = self.training_method.config_to_json(self.method_parameters)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobSpec:
        method = METHODS[data["method"]]
        return cls(
            **{
                k: v
                for k, v in data.items()
                if k not in ("hyperparameters", "lora", "method_parameters", "resources")
            },
            hyperparameters=Hyperparameters(**data["hyperparameters"]),
            lora=Lora(**data["lora"]),
            resources=Resources(**data.get("resources", {})),
            method_parameters=method.config_from_json(data.get("method_parameters", {})),
        )


class Violations:
    """Collects every bad field of a request under a prefix (`training_job`)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.found: list[FieldViolation] = []

    def __call__(self, name: str, description: str) -> None:
        self.found.append(FieldViolation(f"{self.prefix}.{name}", description))

    def under(self, group: str) -> Any:
        return lambda name, description: self(f"{group}.{name}", description)

    def raise_any(self) -> None:
        if self.found:
            raise InvalidArgument.fields(self.found)


def _choice(
    bad: Violations,
    field_name: str,
    enum_value: int,
    names: dict[int, str],
    legacy_field: str,
    legacy: str,
    allowed: Any,
    default: str,
) -> str:
    """The value of a field given as an enum, or as the deprecated string field; a conflict is refused."""
    from_enum = names.get(enum_value, "") if enum_value else ""
    if enum_value and not from_enum:
        bad(field_name, f"{enum_value} is not one of {', '.join(names.values())}")
    if legacy and legacy not in allowed:
        bad(legacy_field, f"{legacy!r} is not one of {', '.join(allowed)}")
    if from_enum and legacy and from_enum != legacy:
        bad(field_name, f"says {from_enum} but the deprecated `{legacy_field}` says {legacy}")
    return from_enum or legacy or default


def spec_from_proto(job: training_job_pb2.TrainingJob, field_prefix: str = "training_job") -> JobSpec:
    """Read and check the request's fields, filling defaults; raise InvalidArgument naming every bad one."""
    bad = Violations(field_prefix)
    method_name = _choice(
        bad, "training_method", job.training_method, METHOD_NAMES, "method", job.method, METHODS, "sft"
    )
    tuning = _choice(bad, "tuning_mode", job.tuning_mode, TUNING_NAMES, "tuning", job.tuning, TUNINGS, "lora")
    priority = _choice(
        bad, "job_priority", job.job_priority, PRIORITY_NAMES, "priority", job.priority, PRIORITIES, "normal"
    )
    _check_data_fields(job, bad)
    hp = _hyperparameters(job, tuning, bad.under("hyperparameters"))
    _check_validation(job, hp, bad)
    lora = Lora(
        rank=job.lora.rank or 8,
        alpha=job.lora.alpha or 2 * (job.lora.rank or 8),
        dropout=job.lora.dropout if job.lora.HasField("dropout") else 0.05,
        target_modules=list(job.lora.target_modules),
    )
    if tuning in ADAPTER_TUNINGS:
        if not 1 <= lora.rank <= 1024:
            bad("lora.rank", "must be between 1 and 1024")
        if not 0 <= lora.dropout < 1:
            bad("lora.dropout", "must be at least 0 and below 1")
        if not 1 <= lora.alpha <= 16384:
            bad("lora.alpha", f"must be between 1 and 16384 (2 × rank advised; got {lora.alpha})")
        if len(lora.target_modules) > 64:
            bad("lora.target_modules", f"names {len(lora.target_modules)} modules; at most 64")
        for i, module in enumerate(lora.target_modules[:64]):
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]{0,99}", module):
                bad(f"lora.target_modules[{i}]", "is not a module name (letters, digits, _ . -)")
    if not 0 <= job.replay_share <= 0.9 or not math.isfinite(job.replay_share):
        bad("replay_share", f"must be between 0 and 0.9 (got {job.replay_share})")
    resources = _resources(job, tuning, hp, bad)
    method = METHODS.get(method_name)
    parameters = None
    if method is not None:
        parameters = method.config_from_proto(job.method_parameters, bad.under("method_parameters"))
        method.check(hp, parameters, bad.under("method_parameters"), bad.under("hyperparameters"))
        if method.sequence_classification and tuning != "full":
            bad(
                "tuning_mode",
                f"{method.name} trains full weights (the scoring head with the model): set tuning_mode full",
            )
        if not method.validates and (job.validation_data or job.validation_split):
            bad("validation_data", f"{method.name} has no validation loss; evaluate the result instead")
    bad.raise_any()
    return JobSpec(
        base_model=job.base_model,
        method=method_name,
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
        check_only=job.check_only,
        resources=resources,
    )


def _resources(
    job: training_job_pb2.TrainingJob, tuning: str, hp: Hyperparameters, bad: Violations
) -> Resources:
    """The job's resources with defaults; qlora needs CUDA (bitsandbytes' 4-bit kernels)."""
    r = job.resources
    resources = Resources(
        accelerators_per_node=r.accelerators_per_node or 1,
        nodes=r.nodes or 1,
        accelerator_kind=r.accelerator_kind or ("cuda" if tuning == "qlora" else ""),
        accelerator_memory_bytes=r.accelerator_memory_bytes,
    )
    if not 1 <= resources.accelerators_per_node <= 64:
        bad("resources.accelerators_per_node", f"must be between 1 and 64 (got {r.accelerators_per_node})")
    if not 1 <= resources.nodes <= 256:
        bad("resources.nodes", f"must be between 1 and 256 (got {r.nodes})")
    if resources.accelerator_kind not in ("", *ACCELERATOR_KINDS):
        bad(
            "resources.accelerator_kind",
            f"{resources.accelerator_kind[:40]!r} is not one of {', '.join(ACCELERATOR_KINDS)} (or empty: any)",
        )
    elif tuning == "qlora" and resources.accelerator_kind != "cuda":
        bad(
            "resources.accelerator_kind",
            "qlora runs on cuda only (bitsandbytes' 4-bit NF4 kernels); use lora on "
            f"{resources.accelerator_kind}",
        )
    if resources.accelerator_memory_bytes < 0:
        bad("resources.accelerator_memory_bytes", "must not be negative (0: any)")
    processes = resources.accelerators_per_node * resources.nodes
    counts_valid = 1 <= resources.accelerators_per_node <= 64 and 1 <= resources.nodes <= 256
    if counts_valid and processes > 1 and hp.batch_size % processes:
        bad(
            "hyperparameters.batch_size",
            f"is shared by the job's {processes} processes (resources): {hp.batch_size} does not "
            f"divide evenly; use a multiple of {processes}",
        )
    return resources


def _check_data_fields(job: training_job_pb2.TrainingJob, bad: Violations) -> None:
    if not job.base_model:
        bad(
            "base_model",
            "name the base model: a model version (projects/…/models/…/versions/N) or local:///path",
        )
    if not job.training_data:
        bad("training_data", "give at least one dataset version with its sampling rate")
    for i, ref in enumerate(job.training_data):
        if not 0.01 <= ref.sampling_rate <= 10:
            bad(f"training_data[{i}].sampling_rate", f"must be between 0.01 and 10 (got {ref.sampling_rate})")
    if not 0 <= job.validation_split <= 0.5:
        bad("validation_split", "must be between 0 and 0.5")
    if job.validation_split and job.validation_data:
        bad("validation_split", "give validation_data or validation_split, not both")


PROMPT_TRUNCATIONS = ("none", "left", "middle")


def _hyperparameters(job: training_job_pb2.TrainingJob, tuning: str, bad: Any) -> Hyperparameters:
    """The hyperparameters with their defaults, each range checked (the seed deck's advice quoted)."""
    h = job.hyperparameters
    hp = Hyperparameters(
        epochs=h.epochs or 3.0,
        learning_rate=h.learning_rate or (3e-4 if tuning in ADAPTER_TUNINGS else 2e-5),
        batch_size=h.batch_size or 16,
        max_sequence_length=h.max_sequence_length,
        truncate_overlength=h.truncate_overlength,
        prompt_truncation=h.prompt_truncation or "none",
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
    if not 0 < hp.epochs <= 100 or not math.isfinite(hp.epochs):
        bad("epochs", f"must be above 0 and at most 100 (1-5 advised; got {hp.epochs})")
    if not hp.learning_rate > 0 or not math.isfinite(hp.learning_rate) or hp.learning_rate > 1:
        bad("learning_rate", f"must be above 0 and at most 1 (3e-4 advised for LoRA; got {h.learning_rate})")
    if not 1 <= hp.batch_size <= 4096:
        bad("batch_size", f"must be between 1 and 4096 (10-20 advised; got {hp.batch_size})")
    if hp.max_sequence_length < 0:
        bad("max_sequence_length", "must not be negative (0 = the longest sample)")
    if hp.prompt_truncation not in PROMPT_TRUNCATIONS:
        bad(
            "prompt_truncation", f"choose {', '.join(PROMPT_TRUNCATIONS)} (got {hp.prompt_truncation[:40]!r})"
        )
    elif hp.prompt_truncation != "none" and not hp.truncate_overlength:
        bad("prompt_truncation", "needs truncate_overlength: prompts are cut only when rows are truncated")
    if not 1 <= hp.checkpoint_count <= 100:
        bad("checkpoint_count", "must be between 1 and 100")
    if hp.checkpoint_interval_steps < 0:
        bad("checkpoint_interval_steps", "must not be negative (50-100 advised)")
    if hp.validation_interval_steps < 0:
        bad("validation_interval_steps", "must not be negative (0 = no validation)")
    if not 0 <= hp.warmup_ratio <= 0.5:
        bad("warmup_ratio", "must be between 0 and 0.5")
    if hp.scheduler not in SCHEDULERS:
        bad("scheduler", f"{hp.scheduler!r} is not one of {', '.join(SCHEDULERS)}")
    if not 0 <= hp.weight_decay <= 1:
        bad("weight_decay", "must be between 0 and 1")
    if not 1 <= hp.gradient_accumulation_steps <= 1024:
        bad("gradient_accumulation_steps", "must be between 1 and 1024")
    if not 0 <= hp.seed < 2**32:
        bad("seed", f"must be between 0 and 4294967295 (got {hp.seed})")
    return hp


def _check_validation(job: training_job_pb2.TrainingJob, hp: Hyperparameters, bad: Violations) -> None:
    """Validation, early stopping and checkpoint intervals fit together."""
    h = "hyperparameters"
    if hp.validation_interval_steps and not (job.validation_data or job.validation_split):
        bad(f"{h}.validation_interval_steps", "validation needs validation_data or validation_split")
    if hp.early_stopping_patience < 0:
        bad(f"{h}.early_stopping.patience", "must not be negative")
    if hp.early_stopping_patience and not hp.validation_interval_steps:
        bad(
            f"{h}.early_stopping.patience",
            "early stopping watches validation loss: set validation_interval_steps",
        )
    if (
        hp.early_stopping_patience
        and hp.checkpoint_interval_steps
        and hp.validation_interval_steps
        and hp.checkpoint_interval_steps % hp.validation_interval_steps
    ):
        bad(
            f"{h}.checkpoint_interval_steps",
            f"with early stopping it must be a multiple of validation_interval_steps ({hp.validation_interval_steps}), so the best model is a kept checkpoint",
        )


def method_parameters_proto(spec: JobSpec) -> training_job_pb2.MethodParameters:
    """The parameters the method uses (with their defaults filled in)."""
    data = spec.training_method.config_to_json(spec.method_parameters)
    return json_format.ParseDict(data, training_job_pb2.MethodParameters())


def hyperparameters_proto(hp: Hyperparameters) -> training_job_pb2.Hyperparameters:
    data = {k: v for k, v in asdict(hp).items() if not k.startswith("early_stopping")}
    message = json_format.ParseDict(data, training_job_pb2.Hyperparameters())
    message.early_stopping.patience = hp.early_stopping_patience
    message.early_stopping.min_delta = hp.early_stopping_min_delta
    return message
