"""Labels of annotation tasks (智能标注), as plain values: reading a model's label from its reply,
checking a reviewer's, deciding what an item's reviews say, the agreement between the model and
people and among people, and the rows a finished task makes.

A value is a dict with one key, by the task's kind: `{"score": 4}`, `{"label": "spam"}`,
`{"answer": "..."}`, `{"choice": "A"}`; `{}` is no value.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.data.augment_templates import prompt_messages, row_answer, row_fields
from services.kit.agreement import cohen_kappa, fleiss_kappa, percent_agreement
from services.kit.judging import parse_verdict
from services.kit.rows import Kind, Row

KINDS = ("score", "label", "correction", "choice")
VALUE_KEY = {"score": "score", "label": "label", "correction": "answer", "choice": "choice"}
SOURCE_KINDS: dict[str, tuple[Kind, ...]] = {
    "score": tuple(Kind),
    "label": tuple(Kind),
    "correction": (Kind.SFT, Kind.EVAL, Kind.PROMPT_ONLY),
    "choice": (Kind.PREFERENCE,),
}
MAX_ANSWER_CHARS = 32_000
REJECT = "REJECT"
_SCORE = re.compile(r"(?:score|评分|得分|分数)\s*[:：]?\s*(-?\d{1,4})\b", re.IGNORECASE)
_INTEGER = re.compile(r"-?\d{1,4}")
_LABEL = re.compile(r"(?:label|标签|类别)\s*[:：]\s*(.+)", re.IGNORECASE)


@dataclass(frozen=True)
class TaskShape:
    """What a task's labels look like."""

    kind: str
    labels: tuple[str, ...] = ()
    score_min: int = 1
    score_max: int = 5

    def output_kind(self, source: Kind) -> Kind:
        return {"correction": Kind.SFT, "choice": Kind.PREFERENCE}.get(self.kind, source)


class LabelError(ValueError):
    """A value that is not a label of this task (the message says why)."""


def parse_model_label(shape: TaskShape, reply: str) -> dict[str, Any]:
    """The label in a model's reply, or LabelError naming what is wrong."""
    text = reply.strip()
    if not text:
        raise LabelError("the reply is empty")
    if shape.kind == "score":
        match = _SCORE.search(text) or _INTEGER.search(text)
        if match is None:
            raise LabelError("the reply holds no score")
        score = int(match.group(1) if match.re is _SCORE else match.group(0))
        if not shape.score_min <= score <= shape.score_max:
            raise LabelError(f"score {score} is outside {shape.score_min}-{shape.score_max}")
        return {"score": score}
    if shape.kind == "label":
        match = _LABEL.search(text)
        said = (match.group(1) if match else text.splitlines()[0]).strip().strip("`'\".。").casefold()
        found = [label for label in shape.labels if label.casefold() == said]
        if not found:  # a label named anywhere in the first line, when exactly one is
            found = [label for label in shape.labels if label.casefold() in said]
        if len(found) != 1:
            raise LabelError(f"the reply names no single label of {', '.join(shape.labels)}")
        return {"label": found[0]}
    if shape.kind == "choice":
        verdict = parse_verdict(text)
        if verdict not in ("A", "B"):
            raise LabelError('the reply has no "[[A]]" or "[[B]]"')
        return {"choice": verdict}
    return {"answer": text[:MAX_ANSWER_CHARS]}


def check_value(shape: TaskShape, value: dict[str, Any]) -> dict[str, Any]:
    """A reviewer's value of this task's kind, or LabelError."""
    key = VALUE_KEY[shape.kind]
    if set(value) != {key}:
        raise LabelError(f"a {shape.kind} task takes value.{key}")
    raw = value[key]
    if shape.kind == "score":
        if not shape.score_min <= raw <= shape.score_max:
            raise LabelError(f"score {raw} is outside {shape.score_min}-{shape.score_max}")
    elif shape.kind == "label":
        if raw not in shape.labels:
            raise LabelError(f"{raw[:60]!r} is not one of the task's labels ({', '.join(shape.labels)})")
    elif shape.kind == "choice":
        if raw not in ("A", "B"):
            raise LabelError("choose A or B")
    elif not raw.strip() or len(raw) > MAX_ANSWER_CHARS:
        raise LabelError(f"the answer must have 1-{MAX_ANSWER_CHARS} characters")
    return {key: raw}


@dataclass(frozen=True)
class Review:
    annotator: str
    action: str  # accept, edit, reject
    value: dict[str, Any]
    time: datetime


def vote(review: Review) -> str:
    """What a review says, as a comparable category."""
    return (
        REJECT if review.action == "reject" else json.dumps(review.value, sort_keys=True, ensure_ascii=False)
    )


def decide(reviews: Sequence[Review]) -> tuple[str, dict[str, Any]]:
    """(status, final value) of an item: `unreviewed`, or the majority's `kept` value or `rejected`;
    a tie goes to the latest review."""
    if not reviews:
        return "unreviewed", {}
    counts = Counter(vote(r) for r in reviews)
    top = max(counts.values())
    latest = max((r for r in reviews if counts[vote(r)] == top), key=lambda r: r.time)
    if vote(latest) == REJECT:
        return "rejected", {}
    return "kept", dict(latest.value)


@dataclass(frozen=True)
class Agreement:
    reviewed_items: int
    reviews_by_action: dict[str, int]
    model_reviews: int
    model_agreement: float
    model_kappa: float
    multi_reviewed_items: int
    reviewer_agreement: float
    reviewer_kappa: float
    model_score_mae: float


def agreement(kind: str, items: Sequence[tuple[dict[str, Any], Sequence[Review]]]) -> Agreement:
    """Over `(model value, reviews)` per item: how often people gave the model's label (Cohen's kappa
    for categories), and how often people agreed with each other (Fleiss' kappa)."""
    actions: Counter[str] = Counter()
    pairs: list[tuple[str, str]] = []
    score_gaps: list[float] = []
    multi: list[list[str]] = []
    for model_value, reviews in items:
        actions.update(r.action for r in reviews)
        if len(reviews) >= 2:
            multi.append([vote(r) for r in reviews])
        if not model_value:
            continue
        model_vote = json.dumps(model_value, sort_keys=True, ensure_ascii=False)
        for review in reviews:
            pairs.append((model_vote, vote(review)))
            if kind == "score" and review.action != "reject":
                score_gaps.append(abs(review.value["score"] - model_value["score"]))
    agree = sum(a == b for a, b in pairs)
    return Agreement(
        reviewed_items=sum(1 for _, reviews in items if reviews),
        reviews_by_action=dict(actions),
        model_reviews=len(pairs),
        model_agreement=agree / len(pairs) if pairs else 0.0,
        model_kappa=cohen_kappa(pairs) if kind != "correction" else 0.0,
        multi_reviewed_items=len(multi),
        reviewer_agreement=percent_agreement(multi),
        reviewer_kappa=fleiss_kappa(multi),
        model_score_mae=sum(score_gaps) / len(score_gaps) if score_gaps else 0.0,
    )


def item_values(
    row: Row, kind: Kind, shape: TaskShape, candidates: Sequence[str], instructions: str
) -> dict[str, str]:
    """The fields a pre-labelling template is filled with for one item."""
    values = row_fields(row, kind)
    values["instructions"] = instructions
    values["answer"] = values.get("answer") or "(none)"
    values["labels"] = ", ".join(shape.labels)
    values["score_min"], values["score_max"] = str(shape.score_min), str(shape.score_max)
    if candidates:
        values["answer_a"], values["answer_b"] = candidates[0], candidates[1]
    return values


def output_row(
    row: Row, kind: Kind, shape: TaskShape, value: dict[str, Any], candidates: Sequence[str]
) -> Row:
    """The row a kept item becomes in the finished version."""
    if shape.kind == "correction":
        out: Row = {
            "id": row["id"],
            "messages": [*prompt_messages(row, kind), {"role": "assistant", "content": value["answer"]}],
        }
        if kind == Kind.SFT and row.get("tools"):
            out["tools"] = row["tools"]
        return out
    if shape.kind == "choice":
        chosen = candidates[0] if value["choice"] == "A" else candidates[1]
        rejected = candidates[1] if value["choice"] == "A" else candidates[0]
        return {
            "id": row["id"],
            "prompt": row["prompt"],
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
        }
    return row


def choice_candidates(row: Row, kind: Kind, flip: bool) -> list[str]:
    """A preference row's two answers as A and B (in shuffled order when `flip`)."""
    pair = [row_answer(row, kind), row["rejected"][-1]["content"]]
    return pair[::-1] if flip else pair
