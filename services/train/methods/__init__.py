"""The training methods, one module each: `post_pretrain`, `sft`, `dpo`, `orpo`, `kto`, `grpo`,
`reward_model`.

    method = METHODS["dpo"]           # its data kind, parameters, checks, trainer

Adding a method is a module here (a `Method` subclass), an entry below and its value in the proto's
`TrainingMethod` enum.
"""

from __future__ import annotations

from services.train.methods.base import Method, TrainerSetup
from services.train.methods.dpo import Dpo
from services.train.methods.grpo import Grpo
from services.train.methods.kto import Kto
from services.train.methods.orpo import Orpo
from services.train.methods.post_pretrain import PostPretrain
from services.train.methods.reward_model import RewardModel
from services.train.methods.sft import Sft

METHODS: dict[str, Method] = {
    m.name: m for m in (PostPretrain(), Sft(), Dpo(), Orpo(), Kto(), Grpo(), RewardModel())
}

__all__ = ["METHODS", "Method", "TrainerSetup"]
