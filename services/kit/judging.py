"""The judge (裁判员): prompts for single-answer grading and pairwise comparison, and parsing of
the verdicts, as MT-Bench does it. One judge for the platform: evaluations score answers with it
(the eval service), augmentation filters and ranks generated rows with it (the data service).

A score is `Score: N` (1-10) or `[[N]]`; a pairwise verdict is `[[A]]`, `[[B]]` or `[[C]]` (tie).
An output without one is a parse failure: counted, never silently dropped. Pairwise comparison
runs in both orders; a sample is a win or a loss only when both orders agree, a tie otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_RUBRIC = "A good answer is correct, complete, follows the requested format, and is concise."
_SCORE = re.compile(
    r"(?:score|评分|得分)\s*(?:[:：]\s*)?(?:\[\[?\s*)?(10|[1-9])\b|\[\[\s*(10|[1-9])\s*\]\]", re.IGNORECASE
)
_VERDICT = re.compile(r"\[\[\s*([ABC])\s*\]\]")


def single_prompt(question: str, reference: str, answer: str, rubric: str) -> str:
    return (
        "Please act as an impartial judge and rate the answer to the question below on a scale of 1 to 10.\n"
        f"Rubric: {rubric or DEFAULT_RUBRIC}\n"
        f"[Question]\n{question}\n[Reference answer]\n{reference or '(none)'}\n[Answer]\n{answer}\n"
        "Reply with one line `Score: N` (N from 1 to 10), then one line with your reason."
    )


def pairwise_prompt(question: str, reference: str, first: str, second: str, rubric: str) -> str:
    return (
        "Please act as an impartial judge and decide which of two answers to the question is better.\n"
        f"Rubric: {rubric or DEFAULT_RUBRIC}\n"
        f"[Question]\n{question}\n[Reference answer]\n{reference or '(none)'}\n"
        f"[Answer A]\n{first}\n[Answer B]\n{second}\n"
        'Reply with "[[A]]" if A is better, "[[B]]" if B is better, or "[[C]]" for a tie, then your reason.'
    )


def parse_score(output: str) -> int | None:
    match = _SCORE.search(output)
    if not match:
        return None
    return int(match.group(1) or match.group(2))


def parse_verdict(output: str) -> str | None:
    match = _VERDICT.search(output)
    return match.group(1) if match else None


@dataclass(frozen=True)
class Pairwise:
    wins: int
    ties: int
    losses: int
    parse_failures: int

    @property
    def adjusted_win_rate(self) -> float:
        judged = self.wins + self.ties + self.losses
        return (self.wins + 0.5 * self.ties) / judged if judged else 0.0


def aggregate_pairwise(model_second: list[str], model_first: list[str]) -> Pairwise:
    """Outputs where the model was answer B (baseline A), and where it was answer A (swapped)."""
    wins = ties = losses = failures = 0
    for b_order, a_order in zip(model_second, model_first, strict=True):
        first, second = parse_verdict(b_order), parse_verdict(a_order)
        if first is None or second is None:
            failures += 1
            continue
        model_wins_1, model_wins_2 = first == "B", second == "A"
        base_wins_1, base_wins_2 = first == "A", second == "B"
        if model_wins_1 and model_wins_2:
            wins += 1
        elif base_wins_1 and base_wins_2:
            losses += 1
        else:
            ties += 1
    return Pairwise(wins, ties, losses, failures)
