"""Supervised fine-tuning (SFT) on conversations, TRL's `SFTTrainer`.

With `{% generation %}` markers in the chat template the loss covers every assistant turn
(`assistant_only_loss`); without them the last answer is trained as the completion of the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.kit.rows import Kind
from services.train.methods import masks
from services.train.methods.base import Method, TrainerSetup, Violation, proto_values, render_length


def has_generation_markers(tokenizer: Any) -> bool:
    return "generation" in (tokenizer.chat_template or "")


@dataclass
class SftParameters:
    mask_reasoning: bool = field(
        default=False,
        metadata={
            "help": "Keep <think>…</think> reasoning in the answers but leave it out of the loss "
            "(default: reasoning is trained like the rest of the answer)."
        },
    )

    @classmethod
    def from_proto(cls, message: Any, violation: Violation) -> SftParameters:
        return cls(**proto_values(cls, message))

    def check(self, hp: Any, violation: Violation) -> None:
        return None


def sft_trainer(setup: TrainerSetup, *, assistant_only: bool) -> Any:
    """TRL's SFTTrainer for conversations or (post-pretraining) plain text. Packing is TRL's
    best-fit-decreasing with padding-free position ids: packed rows never attend to each other."""
    from trl import SFTConfig, SFTTrainer

    pretokenized = bool(setup.train) and "input_ids" in setup.train[0]
    args = SFTConfig(
        **setup.common,
        max_length=setup.max_length,
        packing=setup.packing,
        packing_strategy="bfd",
        padding_free=setup.packing,
        assistant_only_loss=assistant_only and not pretokenized,
        dataset_text_field="text",
    )
    return SFTTrainer(model=setup.model, args=args, **setup.datasets())


class Sft(Method):
    name = "sft"
    kind = Kind.SFT
    summary = "supervised fine-tuning on conversations"
    parameters = SftParameters
    packs = True

    def sequence_length(self, tokenizer: Any, row: dict[str, Any]) -> int:
        return render_length(tokenizer, row["messages"], tools=row.get("tools"))

    def truncate(
        self, tokenizer: Any, row: dict[str, Any], limit: int, prompt: str = "none"
    ) -> dict[str, Any]:
        """The conversation cut until it fits: with `prompt` `left` or `middle` the last user turn is
        cut first (to leave a quarter of `limit` for the answer), then the end of the last answer.
        {} when nothing fits."""
        messages = [dict(m) for m in row["messages"]]
        tools = row.get("tools")
        if prompt != "none":
            messages = _cut_prompt(tokenizer, messages, limit - limit // 4, prompt, tools)
            if not messages:
                return {}
        answer = messages[-1]["content"]
        while (
            answer
            and render_length(tokenizer, [*messages[:-1], {**messages[-1], "content": answer}], tools=tools)
            > limit
        ):
            answer = answer[: max(0, int(len(answer) * 0.9) - 1)]
        if not answer:
            return {}
        messages[-1]["content"] = answer
        return {**row, "messages": messages}

    def trainer_rows(
        self, tokenizer: Any, rows: list[dict[str, Any]], config: Any = None
    ) -> list[dict[str, Any]]:
        mask_reasoning = bool(config and config.mask_reasoning)
        if masks.needs_masks(rows, mask_reasoning):
            # Turns with weight 0 or masked reasoning: the rows go to TRL tokenized, with their mask.
            markers = has_generation_markers(tokenizer)
            out = []
            for r in rows:
                encoded = masks.masked_row(tokenizer, r, mask_reasoning=mask_reasoning, markers=markers)
                if encoded:
                    out.append({"id": r["id"], **encoded})
            return out
        rows = [_unweighted(r) for r in rows]
        # TRL renders a row's `tools` (JSON text) through the chat template; every row carries the
        # column when one does, since a dataset's columns come from its first row.
        with_tools = any(r.get("tools") for r in rows)
        if has_generation_markers(tokenizer):
            return [{**r, "tools": r.get("tools")} for r in rows] if with_tools else rows
        # Without generation markers the template cannot mask prompts: train on the last answer.
        return [
            {
                "id": r["id"],
                "prompt": r["messages"][:-1],
                "completion": r["messages"][-1:],
                **({"tools": r.get("tools")} if with_tools else {}),
            }
            for r in rows
        ]

    def build_trainer(self, setup: TrainerSetup) -> Any:
        return sft_trainer(setup, assistant_only=has_generation_markers(setup.tokenizer))


def _unweighted(row: dict[str, Any]) -> dict[str, Any]:
    """The row without per-turn weights (all 1 here), which chat templates do not know."""
    if not any("weight" in m for m in row["messages"]):
        return row
    return {**row, "messages": masks.unweighted(row["messages"])}


def _cut_prompt(
    tokenizer: Any, messages: list[dict[str, Any]], budget: int, how: str, tools: str | None
) -> list[dict[str, Any]]:
    """The messages with the last user turn cut (`left`: its end kept; `middle`: its start and end,
    joined by " … ") until the prompt takes at most `budget` tokens; [] if it cannot."""
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    prompt = messages[: last_user + 1]
    text = prompt[-1]["content"]
    while render_length(tokenizer, prompt, generation_prompt=True, tools=tools) > budget:
        keep = int(len(text) * 0.9) - 1
        if keep <= 0:
            return []
        text = text[-keep:] if how == "left" else text[: keep // 2] + text[len(text) - (keep - keep // 2) :]
        content = text if how == "left" else text[: keep // 2] + " … " + text[keep // 2 :]
        prompt[-1] = {**prompt[-1], "content": content}
    return [*prompt, *messages[last_user + 1 :]]
