"""Reading a score out of an answer (for `score_mae` and `score_accuracy`), in linear time.

The default rule prefers the final score, as graders write it:

1. An answer holding a JSON object: the first field named like a final score (最终得分, 总分, 总得分,
   最终分数, final_score, total_score, final score, total, overall), anywhere in the object; else the
   *last* field named like a score (得分, 分数, 评分, score), so that `{"内容": {"得分": "14分"}, …,
   "最终得分": 36}` reads 36 and `{"得分": {"内容": 14, "表达": 12}, "得分": 36}` its last score. A
   value is a number or a string that starts with one (`"36分"`).
2. Plain text: the first number after 最终得分 / 总分 / final score / total score; else the first after
   得分 / 分数 / 评分 / score; else the first number of the answer.
3. No number, a number of more than 15 digits or one that is not finite: no score. Such answers are
   counted as unscored in the results, never scored as 0.

A rule can be given per evaluation instead: a regular expression (its first group, or the whole
match, is the score; run with a time budget) or a JSON path (`最终得分`, `scores.total`,
`items[2].score`) into the answer's first JSON object. Only the first MAX_SCAN characters of an
answer are read.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

MAX_SCAN = 20_000
MAX_DIGITS = 15
REGEX_SECONDS = 0.2

# Every pattern is linear: fixed keywords, one unambiguous whitespace run, bounded digits.
_NUMBER_TEXT = r"-?\d{1,15}(?:\.\d{1,15})?(?![\d.]|[eE][+-]?\d)"
_FINAL = re.compile(
    r"(?:最终得分|最终分数|总得分|总分|final[ _]?score|total[ _]?score)[\"'”]?\s*(?:[:：=]\s*)?[\"“]?("
    + _NUMBER_TEXT
    + ")",
    re.IGNORECASE,
)
_SCORE = re.compile(
    r"(?:得分|分数|评分|score)[\"'”]?\s*(?:[:：=]\s*)?[\"“]?(" + _NUMBER_TEXT + ")", re.IGNORECASE
)
_NUMBER = re.compile(r"(?<![\d.])(?<!\d[eE])(?<!\d[eE][+-])" + _NUMBER_TEXT)
_LEADING = re.compile(r"\s*(" + _NUMBER_TEXT + ")")
FINAL_KEYS = re.compile(
    r"^(?:最终得分|最终分数|总得分|总分|final[ _]?score|total[ _]?score|total|overall)$", re.I
)
SCORE_KEYS = re.compile(r"(?:得分|分数|评分|score)", re.I)


@dataclass(frozen=True)
class ScoreRule:
    """How an evaluation reads scores; both empty: the default rule."""

    regex: str = ""
    json_path: str = ""

    def describe(self) -> str:
        if self.regex:
            return f"the first match of /{self.regex}/"
        if self.json_path:
            return f"the JSON field {self.json_path}"
        return "the final score (最终得分/总分/final score, else the last score field of a JSON answer, else the first number after 得分/score)"


DEFAULT = ScoreRule()


def number(value: Any) -> float | None:
    """A finite score from a JSON value: a number, or a string that starts with one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        match = _LEADING.match(value[:100])
        if not match:
            return None
        result = float(match.group(1))
    else:
        return None
    return result if math.isfinite(result) and abs(result) < 10**MAX_DIGITS else None


def first_json_object(text: str) -> Any:
    """The JSON between the first `{` and the last `}` (what graders print), or None."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        return json.loads(text[start : end + 1])
    except (json.JSONDecodeError, RecursionError):
        return None


def _fields(value: Any, depth: int = 0) -> list[tuple[str, Any]]:
    """(key, value) of every field, depth first in document order (nesting capped at 32)."""
    out: list[tuple[str, Any]] = []
    if depth > 32:
        return out
    if isinstance(value, dict):
        for key, item in value.items():
            out.append((str(key), item))
            out.extend(_fields(item, depth + 1))
    elif isinstance(value, list):
        for item in value:
            out.extend(_fields(item, depth + 1))
    return out


def _from_json(value: Any) -> float | None:
    fields = _fields(value)
    for key, item in fields:
        if FINAL_KEYS.match(key.strip()) and number(item) is not None:
            return number(item)
    scores = [number(item) for key, item in fields if SCORE_KEYS.search(key)]
    scores = [s for s in scores if s is not None]
    return scores[-1] if scores else None


def _path(value: Any, path: str) -> Any:
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            index = int(part[1:-1])
            value = value[index] if isinstance(value, list) and index < len(value) else None
        else:
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            return None
    return value


def _from_text(text: str) -> float | None:
    for pattern in (_FINAL, _SCORE):
        match = pattern.search(text)
        if match:
            return number(match.group(1))
    match = _NUMBER.search(text)
    return number(match.group()) if match else None


def score_of(text: str, rule: ScoreRule = DEFAULT) -> float | None:
    """The score an answer gives, by `rule`; None when it gives none."""
    text = text[:MAX_SCAN]
    if rule.regex:
        import regex

        try:
            match = regex.search(rule.regex, text, timeout=REGEX_SECONDS)
        except TimeoutError:
            return None
        if not match:
            return None
        return number(match.group(1) if match.re.groups else match.group())
    if rule.json_path:
        found = first_json_object(text)
        return number(_path(found, rule.json_path)) if found is not None else None
    if "{" in text:
        found = first_json_object(text)
        if found is not None:
            score = _from_json(found)
            if score is not None:
                return score
    return _from_text(text)


def check_rule(rule: ScoreRule) -> str:
    """Why the rule is unusable ("" when it is fine)."""
    if rule.regex and rule.json_path:
        return "give a regex or a json_path, not both"
    if rule.regex:
        import regex

        if len(rule.regex) > 500:
            return "the regex is over 500 characters"
        try:
            compiled = regex.compile(rule.regex)
        except regex.error as exc:
            return f"not a valid regular expression: {exc}"
        if compiled.groups > 1:
            return "the regex may have one group (the score)"
    if rule.json_path and (
        len(rule.json_path) > 200 or not re.fullmatch(r"[^.\[\]]+(?:\.[^.\[\]]+|\[\d+\])*", rule.json_path)
    ):
        return "a JSON path is field names joined by '.', with [n] for list items, e.g. scores.total"
    return ""
