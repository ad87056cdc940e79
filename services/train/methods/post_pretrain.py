"""Post-pretraining (continued pretraining) on plain text, TRL's `SFTTrainer` on a text field."""

from __future__ import annotations

from typing import Any

from services.kit.rows import Kind
from services.train.methods.base import Method, TrainerSetup
from services.train.methods.sft import sft_trainer


class PostPretrain(Method):
    name = "post_pretrain"
    kind = Kind.TEXT
    summary = "continued pretraining on plain text"
    packs = True

    def sequence_length(self, tokenizer: Any, row: dict[str, Any]) -> int:
        return len(tokenizer(row["text"], add_special_tokens=True)["input_ids"])

    def truncate(
        self, tokenizer: Any, row: dict[str, Any], limit: int, prompt: str = "none"
    ) -> dict[str, Any]:
        """The text cut to `limit` tokens (two kept for the special tokens)."""
        ids = tokenizer(row["text"], add_special_tokens=False)["input_ids"][: limit - 2]
        return {**row, "text": tokenizer.decode(ids)}

    def build_trainer(self, setup: TrainerSetup) -> Any:
        return sft_trainer(setup, assistant_only=False)
