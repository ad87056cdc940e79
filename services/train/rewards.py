"""Rule rewards for GRPO, as TRL reward functions (`prompts, completions, **columns -> floats`).

Each takes the job's reward spec (`type`, `pattern`, `required_fields`, `target_words`); the
`reference` column of prompt-only data reaches them as a keyword argument.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z0-9]+(?:['’-][A-Za-z0-9]+)*")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_ANSWER = re.compile(r"(?:答案|answer)\s*[:：是为]?\s*(.+)", re.IGNORECASE)


def text_of(completion: Any) -> str:
    """A completion is a string (standard data) or a list of messages (conversational data)."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content", "") for m in completion if m.get("role", "assistant") == "assistant")


def count_words(text: str) -> int:
    """Words as a writing task counts them: each CJK character is one, each Latin word is one."""
    return len(_CJK.findall(text)) + len(_LATIN_WORD.findall(_CJK.sub(" ", text)))


def extract_answer(text: str) -> str:
    """The text after 答案/answer when present (first line), else the last number, else the text."""
    match = _ANSWER.search(text)
    if match:
        return match.group(1).strip().splitlines()[0].strip().rstrip("。.")
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else text.strip()


def _same_answer(answer: str, reference: str) -> bool:
    reference = extract_answer(reference)
    try:
        return abs(float(answer) - float(reference)) < 1e-9
    except ValueError:
        return answer.strip().lower() == reference.strip().lower()


def make(spec: dict[str, Any]) -> Callable[..., list[float]]:
    kind = spec["type"]

    if kind == "regex":
        pattern = re.compile(spec["pattern"])

        def regex(prompts: list[Any], completions: list[Any], **_: Any) -> list[float]:
            return [1.0 if pattern.search(text_of(c)) else 0.0 for c in completions]

        reward: Callable[..., list[float]] = regex
    elif kind == "exact_answer":

        def exact_answer(
            prompts: list[Any], completions: list[Any], reference: list[str], **_: Any
        ) -> list[float]:
            return [
                1.0 if _same_answer(extract_answer(text_of(c)), r) else 0.0
                for c, r in zip(completions, reference, strict=True)
            ]

        reward = exact_answer
    elif kind == "word_count":
        target = int(spec.get("target_words") or 0)

        def word_count(
            prompts: list[Any], completions: list[Any], reference: list[str] | None = None, **_: Any
        ) -> list[float]:
            out = []
            for i, c in enumerate(completions):
                goal = target or count_words((reference or [""])[i])
                words = count_words(text_of(c))
                out.append(max(0.0, 1.0 - abs(words - goal) / max(goal, 1)))
            return out

        reward = word_count
    elif kind == "grader":
        reward = _grader_reward(spec)
        kind = f"grader:{json.loads(spec['grader']).get('name', 'grader')}"
    elif kind == "json_fields":
        required = list(spec["required_fields"])

        def json_fields(prompts: list[Any], completions: list[Any], **_: Any) -> list[float]:
            out = []
            for c in completions:
                text = text_of(c).strip()
                start, end = text.find("{"), text.rfind("}")
                try:
                    value = json.loads(text[start : end + 1]) if start >= 0 else None
                except ValueError:
                    value = None
                if not isinstance(value, dict):
                    out.append(0.0)
                    continue
                present = sum(1 for f in required if value.get(f) not in (None, "", [], {}))
                out.append(0.5 + 0.5 * present / len(required))
            return out

        reward = json_fields
    else:
        raise ValueError(f"unknown reward type {kind!r}")
    reward.__name__ = kind  # TRL logs each reward under its function's name
    return reward


def _grader_reward(spec: dict[str, Any]) -> Callable[..., list[float]]:
    """An OpenAI grader as a reward: its score of each completion, 0 where it cannot score."""
    import os

    from services.kit import graders

    grader = graders.check(spec["grader"])
    judge = (
        graders.openai_judge(spec["endpoint"], os.environ.get("TUNEFORGE_TRAIN_JUDGE_API_KEY", ""))
        if spec.get("endpoint")
        else None
    )

    def grade(
        prompts: list[Any],
        completions: list[Any],
        reference: list[str] | None = None,
        fields: list[str] | None = None,
        **_: Any,
    ) -> list[float]:
        samples = []
        for i, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
            ref = (reference or [""] * len(prompts))[i] or ""
            user = (
                next((m["content"] for m in reversed(prompt) if m["role"] == "user"), "")
                if isinstance(prompt, list)
                else prompt
            )
            item = {
                "prompt": user,
                "reference": ref,
                "references": [ref],
                **json.loads((fields or ["{}"] * len(prompts))[i] or "{}"),
            }
            samples.append(graders.Sample(text_of(completion), item))
        return [0.0 if s is None else float(s) for s in graders.grade(grader, samples, judge=judge).scores]

    return grade
