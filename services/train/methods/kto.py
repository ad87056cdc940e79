"""Kahneman-Tversky optimization (KTO) on unpaired preference data (an answer labelled good or bad),
TRL's `KTOTrainer`, against a frozen reference."""

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
class KtoParameters:
    beta: float = field(
        default=0.1, metadata={"help": "How far the policy may move from the reference (0-10)."}
    )
    desirable_weight: float = field(default=1.0, metadata={"help": "Weight of the answers labelled good."})
    undesirable_weight: float = field(default=1.0, metadata={"help": "Weight of the answers labelled bad."})

    @classmethod
    def from_proto(cls, message: Any, violation: Violation) -> KtoParameters:
        return cls(**proto_values(cls, message))

    def check(self, hp: Any, violation: Violation) -> None:
        if not finite_between(self.beta, 0, 10):
            violation("beta", f"must be between 0 and 10 (0.1 advised; got {self.beta})")
        for name in ("desirable_weight", "undesirable_weight"):
            value = getattr(self, name)
            if not finite_between(value, 0, 100, low_inclusive=False):
                violation(name, f"must be above 0 and at most 100 (got {value})")


class Kto(Method):
    name = "kto"
    kind = Kind.UNPAIRED_PREFERENCE
    summary = "Kahneman-Tversky optimization on answers labelled good or bad"
    parameters = KtoParameters
    uses_reference = True
    trainer_truncates = True

    def check(self, hp: Any, config: Any, violation: Violation, hyperparameter: Violation) -> None:
        super().check(hp, config, violation, hyperparameter)
        if hp.batch_size < 2:
            hyperparameter("batch_size", "kto estimates its KL term across a batch: use 2 or more")

    def sequence_length(self, tokenizer: Any, row: dict[str, Any]) -> int:
        return render_length(tokenizer, row["prompt"] + row["completion"])

    def build_trainer(self, setup: TrainerSetup) -> Any:
        from trl import KTOConfig, KTOTrainer

        c = setup.config
        args = KTOConfig(
            **setup.common,
            beta=c.beta,
            desirable_weight=c.desirable_weight,
            undesirable_weight=c.undesirable_weight,
            max_length=setup.max_length,
        )
        return KTOTrainer(model=setup.model, ref_model=setup.ref_model, args=args, **setup.datasets())
