"""Reward-model training on preference pairs, TRL's `RewardTrainer`: the base model with a scalar
sequence-classification head learns to score the chosen answer above the rejected one (Bradley-Terry
loss). The output registers as a sequence-classification version that GRPO's `reward_model` takes;
the report carries its pairwise accuracy on the held-out pairs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.kit.rows import Kind
from services.train.methods.base import Method, TrainerSetup, Violation, finite_between, proto_values
from services.train.methods.dpo import pair_length


@dataclass
class RewardModelParameters:
    beta: float = field(
        default=0.0,
        metadata={
            "help": "Reward centring coefficient (TRL's center_rewards_coefficient; 0: none, 0.01 advised)."
        },
    )

    @classmethod
    def from_proto(cls, message: Any, violation: Violation) -> RewardModelParameters:
        return cls(**proto_values(cls, message))

    def check(self, hp: Any, violation: Violation) -> None:
        if not finite_between(self.beta, 0, 1):
            violation("beta", f"the centring coefficient must be between 0 and 1 (got {self.beta})")


class RewardModel(Method):
    name = "reward_model"
    kind = Kind.PREFERENCE
    summary = "a reward model (scalar head) trained on preference pairs"
    parameters = RewardModelParameters
    trainer_truncates = True
    # The model is loaded with a one-output sequence-classification head, not as a causal LM.
    sequence_classification = True

    def sequence_length(self, tokenizer: Any, row: dict[str, Any]) -> int:
        return pair_length(tokenizer, row)

    def build_trainer(self, setup: TrainerSetup) -> Any:
        from trl import RewardConfig, RewardTrainer

        args = RewardConfig(
            **setup.common,
            max_length=setup.max_length,
            center_rewards_coefficient=setup.config.beta or None,
        )
        return RewardTrainer(model=setup.model, args=args, **setup.datasets())
