"""Supervised fine-tuning (SFT) on conversations, TRL's `SFTTrainer`.

With `{% generation %}` markers in the chat template the loss covers every assistant turn
(`assistant_only_loss`); without them the last answer is trained as the completion of the rest.
"""

from __future__ import annotations

from typing import Any

from services.kit.rows import Kind
from services.train.methods.base import Method, TrainerSetup, render_length


def has_generation_markers(tokenizer: Any) -> bool:
    return "generation" in (tokenizer.chat_template or "")


def sft_trainer(setup: TrainerSetup, *, assistant_only: bool) -> Any:
    """TRL's SFTTrainer for conversations or (post-pretraining) plain text."""
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        **setup.common,
        max_length=setup.max_length,
        packing=setup.packing,
        assistant_only_loss=assistant_only,
        dataset_text_field="text",
    )
    return SFTTrainer(model=setup.model, args=args, **setup.datasets())


class Sft(Method):
    name = "sft"
    kind = Kind.SFT
    summary = "supervised fine-tuning on conversations"
    packs = True

    def sequence_length(self, tokenizer: Any, row: dict[str, Any]) -> int:
        return render_length(tokenizer, row["messages"])

    def truncate(self, tokenizer: Any, row: dict[str, Any], limit: int) -> dict[str, Any]:
        """The conversation with the end of its last answer cut until it fits; {} if nothing fits."""
        messages = [dict(m) for m in row["messages"]]
        answer = messages[-1]["content"]
        while (
            answer
            and render_length(tokenizer, [*messages[:-1], {"role": "assistant", "content": answer}]) > limit
        ):
            answer = answer[: max(0, int(len(answer) * 0.9) - 1)]
        if not answer:
            return {}
        messages[-1]["content"] = answer
        return {**row, "messages": messages}

    def trainer_rows(self, tokenizer: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if has_generation_markers(tokenizer):
            return rows
        # Without generation markers the template cannot mask prompts: train on the last answer.
        return [{"id": r["id"], "prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in rows]

    def build_trainer(self, setup: TrainerSetup) -> Any:
        return sft_trainer(setup, assistant_only=has_generation_markers(setup.tokenizer))
