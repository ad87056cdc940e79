"""Odds-ratio preference optimization (ORPO) on preference pairs: SFT and preference in one loss, no
reference model. TRL 1.x keeps it in `trl.experimental.orpo`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.kit.rows import Kind
from services.train.methods.base import Method, TrainerSetup, Violation, finite_between, proto_values
from services.train.methods.dpo import pair_length


@dataclass
class OrpoParameters:
    beta: float = field(
        default=0.1,
        metadata={"help": "ORPO's lambda: the weight of the odds-ratio term against the SFT loss."},
    )

    @classmethod
    def from_proto(cls, message: Any, violation: Violation) -> OrpoParameters:
        return cls(**proto_values(cls, message))

    def check(self, hp: Any, violation: Violation) -> None:
        if not finite_between(self.beta, 0, 10):
            violation("beta", f"must be between 0 and 10 (0.1 advised; got {self.beta})")


class Orpo(Method):
    name = "orpo"
    kind = Kind.PREFERENCE
    summary = "odds-ratio preference optimization on preference pairs"
    parameters = OrpoParameters
    trainer_truncates = True

    def sequence_length(self, tokenizer: Any, row: dict[str, Any]) -> int:
        return pair_length(tokenizer, row)

    def build_trainer(self, setup: TrainerSetup) -> Any:
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        args = ORPOConfig(**setup.common, beta=setup.config.beta, max_length=setup.max_length)
        return ORPOTrainer(model=setup.model, args=args, **setup.datasets())
