"""Which tokens of a conversation an SFT step learns from, when that is finer than "every assistant
turn": assistant turns with `weight: 0` (OpenAI's fine-tuning files) and, when asked, the reasoning
(`<think>…</think>`) inside an answer are kept in the text but left out of the loss.

A row is rendered by the tokenizer's chat template as in training and tokenized with character
offsets; the trained tokens come from the template's `{% generation %}` markers (one run of
tokens per assistant turn, in order) or, without markers, from everything after the prompt of the
last answer. A token any of whose characters falls in a left-out span is left out. The result
is TRL's pre-tokenized shape, `input_ids` and `assistant_masks`, from which it builds the labels.
"""

from __future__ import annotations

import json
import re
from typing import Any

THINK = re.compile(r"<think>.*?</think>\s*", re.DOTALL)


class MaskError(ValueError):
    """A row whose trained tokens cannot be told apart (the message names the row and why)."""


def unweighted(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages without OpenAI's per-turn `weight`, which chat templates do not know."""
    return [{k: v for k, v in m.items() if k != "weight"} for m in messages]


def needs_masks(rows: list[dict[str, Any]], mask_reasoning: bool) -> bool:
    """Whether any row has a turn out of the loss: a zero weight, or reasoning when it is masked."""
    for row in rows:
        for m in row["messages"]:
            if m["role"] != "assistant":
                continue
            if m.get("weight") == 0 or (mask_reasoning and "<think>" in (m.get("content") or "")):
                return True
    return False


def _runs(mask: list[int]) -> list[tuple[int, int]]:
    """(start, end) of each run of ones."""
    runs, start = [], None
    for i, bit in enumerate([*mask, 0]):
        if bit and start is None:
            start = i
        elif not bit and start is not None:
            runs.append((start, i))
            start = None
    return runs


def masked_row(tokenizer: Any, row: dict[str, Any], *, mask_reasoning: bool, markers: bool) -> dict[str, Any]:
    """`input_ids` and `assistant_masks` of one row ({} when no token is left to learn from)."""
    messages = unweighted(row["messages"])
    tools = json.loads(row["tools"]) if row.get("tools") else None
    text = tokenizer.apply_chat_template(messages, tools=tools, tokenize=False)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    assistant = [i for i, m in enumerate(row["messages"]) if m["role"] == "assistant"]
    if markers:
        rendered = tokenizer.apply_chat_template(
            messages, tools=tools, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        if list(rendered["input_ids"]) != list(ids):
            raise MaskError(f"row {row['id']}: the chat template's tokens differ from its text's tokens")
        mask = list(rendered["assistant_masks"])
        runs = _runs(mask)
        if len(runs) != len(assistant):
            raise MaskError(
                f"row {row['id']}: the chat template marks {len(runs)} assistant spans for "
                f"{len(assistant)} assistant turns, so per-turn weights cannot be applied"
            )
        for (start, end), index in zip(runs, assistant, strict=True):
            if row["messages"][index].get("weight") == 0:
                mask[start:end] = [0] * (end - start)
    else:
        last = row["messages"][-1]
        prompt = tokenizer.apply_chat_template(
            messages[:-1], tools=tools, tokenize=False, add_generation_prompt=True
        )
        if not text.startswith(prompt):
            raise MaskError(f"row {row['id']}: the chat template renders the prompt differently alone")
        trained = 0 if last.get("weight") == 0 else 1
        mask = [trained if start >= len(prompt) else 0 for start, _ in offsets]
    if mask_reasoning:
        for match in THINK.finditer(text):
            for i, (start, end) in enumerate(offsets):
                if start < match.end() and end > match.start():
                    mask[i] = 0
    if 1 not in mask:
        return {}
    return {"input_ids": list(ids), "assistant_masks": mask}
