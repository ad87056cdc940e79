"""Direct preference optimization (DPO) on preference pairs, TRL's `DPOTrainer`, against a frozen
reference (the base model, or the merged parent when continuing an adapter)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.kit.rows import Kind
from services.train.methods.base import (
    Method,
    TrainerSetup,
    Violation,
    finite_between,
    proto_values,
    render_length,
)


@dataclass
class DpoParameters:
    beta: float = field(
        default=0.1,
        metadata={"help": "How far the policy may move from the reference: higher keeps it closer (0-10)."},
    )

    @classmethod
    def from_proto(cls, message: Any, violation: Violation) -> DpoParameters:
        return cls(**proto_values(cls, message))

    def check(self, hp: Any, violation: Violation) -> None:
        if not finite_between(self.beta, 0, 10):
            violation("beta", f"must be between 0 and 10 (0.1 advised; got {self.beta})")


def pair_length(tokenizer: Any, row: dict[str, Any]) -> int:
    """The longer of prompt + chosen and prompt + rejected, in tokens."""
    return max(render_length(tokenizer, row["prompt"] + row[k]) for k in ("chosen", "rejected"))


class Dpo(Method):
    name = "dpo"
    kind = Kind.PREFERENCE
    summary = "direct preference optimization on preference pairs"
    parameters = DpoParameters
    uses_reference = True
    trainer_truncates = True

    def sequence_length(self, tokenizer: Any, row: dict[str, Any]) -> int:
        return pair_length(tokenizer, row)

    def build_trainer(self, setup: TrainerSetup) -> Any:
        from trl import DPOConfig, DPOTrainer

        args = DPOConfig(**setup.common, beta=setup.config.beta, max_length=setup.max_length)
        return DPOTrainer(model=setup.model, ref_model=setup.ref_model, args=args, **setup.datasets())
