"""What every training method is: its data kind, its parameters (a dataclass whose fields carry
help and whose `check` names every bad field), how long a row is and how it is shortened, how many
samples a step takes, and `build_trainer()` over TRL.

A method module imports TRL only inside `build_trainer`, so the control plane (no torch) can check
a job against the same definitions the worker trains with.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from services.kit.rows import Kind

# (field path under `method_parameters`, description) → recorded as a violation.
Violation = Callable[[str, str], None]


@dataclass
class NoParameters:
    """A method without parameters of its own."""

    @classmethod
    def from_proto(cls, message: Any, violation: Violation) -> NoParameters:
        return cls()

    def check(self, hp: Any, violation: Violation) -> None:
        return None


def proto_values(config: type, message: Any, **defaults: Any) -> dict[str, Any]:
    """The config's fields from the `MethodParameters` bag, with proto3's zero meaning "the default"."""
    values = {}
    for f in fields(config):
        given = getattr(message, f.name)
        default = defaults.get(f.name, f.default if f.default is not MISSING else None)
        values[f.name] = given if given else default
    return values


def finite_between(value: float, low: float, high: float, *, low_inclusive: bool = True) -> bool:
    return math.isfinite(value) and (value >= low if low_inclusive else value > low) and value <= high


@dataclass
class TrainerSetup:
    """What `build_trainer` gets: TRL's common arguments, models, tokenizer, rows, callbacks."""

    common: dict[str, Any]
    model: Any
    ref_model: Any
    peft_config: Any
    tokenizer: Any
    train: list[dict[str, Any]]
    validation: list[dict[str, Any]] | None
    callbacks: list[Any]
    max_length: int
    job_dir: Path
    config: Any
    packing: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def datasets(self, *, validation: bool = True) -> dict[str, Any]:
        from datasets import Dataset

        out = {
            "train_dataset": Dataset.from_list(self.train),
            "processing_class": self.tokenizer,
            "callbacks": self.callbacks,
            "peft_config": self.peft_config,
        }
        if validation:
            out["eval_dataset"] = Dataset.from_list(self.validation) if self.validation else None
        return out


def render_length(
    tokenizer: Any, messages: list[dict[str, Any]], generation_prompt: bool = False, tools: str | None = None
) -> int:
    """Tokens of `messages` (with the row's `tools`, JSON text) as the chat template lays them out."""
    return len(
        tokenizer.apply_chat_template(
            messages,
            tools=json.loads(tools) if tools else None,
            tokenize=True,
            return_dict=True,
            add_generation_prompt=generation_prompt,
        )["input_ids"]
    )


class Method:
    """A training method. Subclasses set the class attributes and override what differs."""

    name: ClassVar[str]
    kind: ClassVar[Kind]
    summary: ClassVar[str]
    parameters: ClassVar[type] = NoParameters
    # Whether rows may be packed into one sequence (post_pretrain, sft).
    packs: ClassVar[bool] = False
    # Whether the method has a validation loss (GRPO does not).
    validates: ClassVar[bool] = True
    # Whether the report follows the mean reward instead of a loss (GRPO).
    follows_reward: ClassVar[bool] = False
    # Whether training compares with a frozen reference model (DPO, KTO).
    uses_reference: ClassVar[bool] = False
    # Whether the trainer shortens over-long rows itself (preference methods: its `max_length`).
    trainer_truncates: ClassVar[bool] = False
    # Whether the model gets a one-output sequence-classification head (reward models).
    sequence_classification: ClassVar[bool] = False

    def config_from_proto(self, message: Any, violation: Violation) -> Any:
        """Read this method's parameters from the `MethodParameters` bag; refuse another method's."""
        own = {f.name for f in fields(self.parameters)}
        for given, _ in message.ListFields():
            if given.name not in own:
                violation(given.name, f"is not a parameter of {self.name}")
        return self.parameters.from_proto(message, violation)

    def config_from_json(self, data: dict[str, Any]) -> Any:
        """The stored parameters (jobs stored before one config per method kept every field)."""
        own = {f.name for f in fields(self.parameters)}
        return self.parameters(**{k: v for k, v in (data or {}).items() if k in own})

    @staticmethod
    def config_to_json(config: Any) -> dict[str, Any]:
        return asdict(config)

    def check(self, hp: Any, config: Any, violation: Violation, hyperparameter: Violation) -> None:
        """Checks across the method's parameters and the hyperparameters (fields named)."""
        config.check(hp, violation)
        if hp.packing and not self.packs:
            hyperparameter("packing", "packing applies to post_pretrain and sft only")
        if hp.prompt_truncation != "none" and self.name != "sft":
            hyperparameter("prompt_truncation", f"applies to sft only; {self.name} rows are not cut this way")

    def samples_per_step(self, hp: Any, config: Any, world: int) -> int:
        """Training rows one optimizer step consumes across `world` processes."""
        return hp.batch_size * hp.gradient_accumulation_steps * world

    def planned_steps(self, hp: Any, config: Any, rows: int, world: int = 1) -> int:
        """Optimizer steps to train `rows` rows for `hp.epochs` epochs on `world` processes."""
        per_step = max(1, self.samples_per_step(hp, config, world))
        return math.ceil(math.ceil(rows / per_step) * hp.epochs)

    # -- the worker side (transformers, trl) ---------------------------------------------------

    def sequence_length(self, tokenizer: Any, row: dict[str, Any]) -> int:
        raise NotImplementedError

    def truncate(
        self, tokenizer: Any, row: dict[str, Any], limit: int, prompt: str = "none"
    ) -> dict[str, Any]:
        """The row shortened to fit `limit` tokens (`prompt`: how a long prompt is cut), or {}."""
        return row if self.trainer_truncates else {}

    def trainer_rows(
        self, tokenizer: Any, rows: list[dict[str, Any]], config: Any = None
    ) -> list[dict[str, Any]]:
        """The rows in the shape the trainer takes (`config`: the method's parameters)."""
        return rows

    def build_trainer(self, setup: TrainerSetup) -> Any:
        raise NotImplementedError
