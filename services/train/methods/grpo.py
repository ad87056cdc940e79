"""Group relative policy optimization (GRPO) on prompts, TRL's `GRPOTrainer`: for each prompt it
samples `num_generations` completions, scores them with rule rewards (`services.train.rewards`)
and/or a registered reward model, and moves the policy towards the better ones. No validation loss:
the report follows the mean reward."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from services.kit import graders
from services.kit.rows import Kind
from services.train.methods.base import Method, TrainerSetup, Violation, finite_between, render_length

REWARD_TYPES = ("regex", "exact_answer", "word_count", "json_fields", "grader")
# TRL 1.x's losses this platform offers (TRL's default first) and its other settings' values.
LOSS_TYPES = ("dapo", "grpo", "dr_grpo", "bnpo", "cispo")
IMPORTANCE_LEVELS = ("token", "sequence")
SCALINGS = ("group", "batch", "none")
EPSILON = 0.2


def _rewards(message: Any, violation: Violation) -> list[dict[str, Any]]:
    out = []
    for i, reward in enumerate(message.rewards):
        where = f"rewards[{i}]"
        if reward.type not in REWARD_TYPES:
            violation(f"{where}.type", f"{reward.type!r} is not one of {', '.join(REWARD_TYPES)}")
            continue
        if reward.type == "regex":
            if not reward.pattern:
                violation(f"{where}.pattern", "a regex reward needs a pattern")
            else:
                try:
                    re.compile(reward.pattern)
                except re.error as error:
                    violation(f"{where}.pattern", f"is not a valid regular expression: {error}")
        grader = _grader(reward, where, violation)
        if reward.type == "json_fields" and not reward.required_fields:
            violation(f"{where}.required_fields", "name the fields the JSON object must hold")
        if reward.target_words < 0:
            violation(f"{where}.target_words", "must not be negative (0: the reference's length)")
        if reward.weight < 0 or not math.isfinite(reward.weight):
            violation(f"{where}.weight", "must not be negative")
        out.append(
            {
                "type": reward.type,
                "pattern": reward.pattern,
                "required_fields": list(reward.required_fields),
                "target_words": reward.target_words,
                "weight": reward.weight or 1.0,
                **(
                    {"grader": json.dumps(grader, ensure_ascii=False), "endpoint": reward.endpoint}
                    if grader
                    else {}
                ),
            }
        )
    return out


def _grader(reward: Any, where: str, violation: Violation) -> dict[str, Any] | None:
    """The checked OpenAI grader of a `grader` reward (None for the rule rewards, or when refused)."""
    if reward.type != "grader":
        if reward.grader or reward.endpoint:
            violation(f"{where}.grader", "only a reward of type grader takes a grader")
        return None
    if not reward.grader:
        violation(f"{where}.grader", "a grader reward needs the grader's JSON")
        return None
    try:
        grader = graders.check(reward.grader, f"{where}.grader")
    except graders.GraderError as exc:
        violation(exc.field, exc.message)
        return None
    if graders.asks_judge(grader) and not re.match(r"^https?://[^\s/]+", reward.endpoint):
        violation(f"{where}.endpoint", "a score_model grader needs the http(s) URL of its judge's API (…/v1)")
    return grader


@dataclass
class GrpoParameters:
    beta: float = field(
        default=0.0, metadata={"help": "Weight of the KL penalty against the reference (0: none)."}
    )
    num_generations: int = field(
        default=4, metadata={"help": "Completions sampled per prompt; must divide batch_size x accumulation."}
    )
    max_completion_length: int = field(default=64, metadata={"help": "Longest completion, in tokens."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of the completions."})
    rewards: list[dict[str, Any]] = field(
        default_factory=list, metadata={"help": "Rule rewards and their weights."}
    )
    reward_model: str = field(
        default="", metadata={"help": "A registered version with a sequence-classification head."}
    )
    loss_type: str = field(
        default="dapo",
        metadata={
            "help": "dapo (TRL's default: tokens normalised over the batch), grpo, dr_grpo, bnpo, cispo."
        },
    )
    importance_sampling_level: str = field(
        default="token", metadata={"help": "token, or sequence (GSPO: one ratio per completion)."}
    )
    mask_truncated_completions: bool = field(
        default=False, metadata={"help": "Leave completions cut at max_completion_length out of the loss."}
    )
    epsilon_high: float = field(
        default=EPSILON,
        metadata={"help": "Upper clipping bound (DAPO clip-higher: 0.28; CISPO's epsilon max)."},
    )
    scale_rewards: str = field(
        default="group", metadata={"help": "Advantage scaling: group, batch, or none (Dr. GRPO)."}
    )

    @classmethod
    def from_proto(cls, message: Any, violation: Violation) -> GrpoParameters:
        return cls(
            beta=message.beta or 0.0,
            num_generations=message.num_generations or 4,
            max_completion_length=message.max_completion_length or 64,
            temperature=message.temperature or 1.0,
            rewards=_rewards(message, violation),
            reward_model=message.reward_model,
            loss_type=message.loss_type or "dapo",
            importance_sampling_level=message.importance_sampling_level or "token",
            mask_truncated_completions=message.mask_truncated_completions,
            epsilon_high=message.epsilon_high or EPSILON,
            scale_rewards=message.scale_rewards or "group",
        )

    def check(self, hp: Any, violation: Violation) -> None:
        if not finite_between(self.beta, 0, 10):
            violation("beta", f"must be between 0 and 10 (got {self.beta})")
        per_step = hp.batch_size * hp.gradient_accumulation_steps
        if not 2 <= self.num_generations <= 64:
            violation("num_generations", f"must be between 2 and 64 (got {self.num_generations})")
        elif per_step % self.num_generations:
            violation(
                "num_generations",
                f"must divide batch_size x gradient_accumulation_steps ({per_step}): each batch holds whole groups of completions",
            )
        if not 1 <= self.max_completion_length <= 8192:
            violation("max_completion_length", "must be between 1 and 8192")
        if not finite_between(self.temperature, 0, 5, low_inclusive=False):
            violation("temperature", "must be above 0 and at most 5")
        if not self.rewards and not self.reward_model:
            violation("rewards", "grpo needs a reward: give rule rewards, a reward_model, or both")
        for name, allowed in (
            ("loss_type", LOSS_TYPES),
            ("importance_sampling_level", IMPORTANCE_LEVELS),
            ("scale_rewards", SCALINGS),
        ):
            if getattr(self, name) not in allowed:
                violation(name, f"{getattr(self, name)!r} is not one of {', '.join(allowed)}")
        if self.loss_type == "cispo" and self.importance_sampling_level == "sequence":
            violation("importance_sampling_level", "cispo clips token-level weights: use token")
        if not finite_between(self.epsilon_high, EPSILON, 10):
            violation("epsilon_high", f"must be at least the lower bound {EPSILON} and at most 10")

    def needs_references(self) -> list[str]:
        """The rewards that compare with each row's reference."""
        return [
            r["type"]
            for r in self.rewards
            if r["type"] == "exact_answer" or (r["type"] == "word_count" and not r["target_words"])
        ]


class Grpo(Method):
    name = "grpo"
    kind = Kind.PROMPT_ONLY
    summary = "group relative policy optimization on prompts with rewards"
    parameters = GrpoParameters
    validates = False
    follows_reward = True

    def samples_per_step(self, hp: Any, config: Any, world: int) -> int:
        # Each prompt yields num_generations completions.
        return super().samples_per_step(hp, config, world) // config.num_generations

    def sequence_length(self, tokenizer: Any, row: dict[str, Any]) -> int:
        return render_length(tokenizer, row["prompt"], generation_prompt=True)

    def trainer_rows(
        self, tokenizer: Any, rows: list[dict[str, Any]], config: Any = None
    ) -> list[dict[str, Any]]:
        # Graders read the rows' extra fields: every row carries the column when one does.
        if any(r.get("fields") for r in rows):
            return [{**r, "fields": r.get("fields") or "{}"} for r in rows]
        return rows

    def build_trainer(self, setup: TrainerSetup) -> Any:
        from trl import GRPOConfig, GRPOTrainer

        from services.train import rewards

        c = setup.config
        reward_funcs: list[Any] = [rewards.make(r) for r in c.rewards]
        weights = [r["weight"] for r in c.rewards]
        reward_tokenizers: list[Any] = [None] * len(reward_funcs)
        if c.reward_model:
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            folder = setup.job_dir / "reward_model"
            reward_funcs.append(AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1))
            reward_tokenizers.append(AutoTokenizer.from_pretrained(folder))
            weights.append(1.0)
        args = GRPOConfig(
            **setup.common,
            num_generations=c.num_generations,
            max_completion_length=c.max_completion_length,
            temperature=c.temperature,
            beta=c.beta,
            reward_weights=weights,
            **trl_loss_settings(c),
        )
        return GRPOTrainer(
            model=setup.model,
            reward_funcs=reward_funcs,
            reward_processing_classes=reward_tokenizers,
            args=args,
            **setup.datasets(validation=False),
        )


def trl_loss_settings(c: GrpoParameters) -> dict[str, Any]:
    """The loss settings as TRL's GRPOConfig takes them."""
    return {
        "loss_type": c.loss_type,
        "importance_sampling_level": c.importance_sampling_level,
        "mask_truncated_completions": c.mask_truncated_completions,
        "epsilon": EPSILON,
        # None: TRL's own default (the lower bound), so a job that does not set it is TRL's.
        "epsilon_high": None if c.epsilon_high == EPSILON else c.epsilon_high,
        "scale_rewards": {"none": False}.get(c.scale_rewards, c.scale_rewards),
    }
