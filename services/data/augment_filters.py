"""Filters on the rows an augmentation run generates: format checks on each generated text (a
pattern, JSON with a schema or required fields, length), the judge's score, and exact and near
duplicates of the source rows and of each other. A dropped row keeps its reason for the rejects file.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import regex

from services.data.cleaning import REGEX_ROW_SECONDS, near_duplicate_of, normalize_whitespace, row_text
from services.kit.errors import FieldViolation, InvalidArgument
from services.kit.rows import Kind, Row

MAX_PATTERN_CHARS = 2000
MAX_SCHEMA_CHARS = 100_000
# A pattern gets this long per row; past it the row is dropped as `REGEX_TIMEOUT`.
PATTERN_SECONDS = REGEX_ROW_SECONDS


@dataclass(frozen=True)
class Filters:
    judge_min_score: float | None = None
    judge_rubric: str = ""
    pattern: str = ""
    json_schema: dict[str, Any] | None = None
    required_fields: tuple[str, ...] = ()
    min_characters: int = 0
    max_characters: int = 0
    exact_dedup: bool = True
    near_dedup_threshold: float = 0.0

    @property
    def wants_json(self) -> bool:
        return self.json_schema is not None or bool(self.required_fields)

    def as_dict(self) -> dict[str, Any]:
        return {
            "judge_min_score": self.judge_min_score,
            "judge_rubric": self.judge_rubric,
            "regex": self.pattern,
            "json_schema": self.json_schema,
            "required_fields": list(self.required_fields),
            "min_characters": self.min_characters,
            "max_characters": self.max_characters,
            "exact_dedup": self.exact_dedup,
            "near_dedup_threshold": self.near_dedup_threshold,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Filters:
        return cls(
            judge_min_score=data["judge_min_score"],
            judge_rubric=data["judge_rubric"],
            pattern=data["regex"],
            json_schema=data["json_schema"],
            required_fields=tuple(data["required_fields"]),
            min_characters=data["min_characters"],
            max_characters=data["max_characters"],
            exact_dedup=data["exact_dedup"],
            near_dedup_threshold=data["near_dedup_threshold"],
        )


def check_filters(values: dict[str, Any], where: str) -> Filters:
    """Filters from the request's values, every problem named by its field (`where.regex`, ...)."""
    problems: list[FieldViolation] = []

    def bad(name: str, message: str) -> None:
        problems.append(FieldViolation(f"{where}.{name}", message))

    score = values.get("judge_min_score")
    if score is not None and not 1 <= score <= 10:
        bad("judge_min_score", f"must be between 1 and 10, the judge's scale (got {score})")
    pattern = values.get("regex", "")
    if len(pattern) > MAX_PATTERN_CHARS:
        bad("regex", f"longer than {MAX_PATTERN_CHARS} characters")
    elif pattern:
        try:
            regex.compile(pattern)
        except regex.error as error:
            bad("regex", f"does not compile: {error}")
    schema = None
    text = values.get("json_schema", "")
    if len(text) > MAX_SCHEMA_CHARS:
        bad("json_schema", f"longer than {MAX_SCHEMA_CHARS} characters")
    elif text:
        import jsonschema

        try:
            schema = json.loads(text)
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except ValueError as error:
            bad("json_schema", f"is not JSON: {error}")
        except jsonschema.SchemaError as error:
            bad("json_schema", f"is not a valid JSON Schema: {error.message[:200]}")
    required = tuple(values.get("required_fields") or ())
    if any(not f or len(f) > 200 for f in required) or len(required) > 100:
        bad("required_fields", "each field is 1-200 characters, at most 100 fields")
    low, high = values.get("min_characters", 0), values.get("max_characters", 0)
    if low < 0 or high < 0:
        bad("min_characters" if low < 0 else "max_characters", "must not be negative")
    elif high and low > high:
        bad("max_characters", f"is below min_characters ({high} < {low})")
    near = values.get("near_dedup_threshold", 0.0)
    if near and not 0.5 <= near <= 1:
        bad("near_dedup_threshold", f"must be between 0.5 and 1, or 0 for off (got {near})")
    if problems:
        raise InvalidArgument.fields(problems)
    exact = values.get("exact_dedup")
    return Filters(
        judge_min_score=score,
        judge_rubric=values.get("judge_rubric", ""),
        pattern=pattern,
        json_schema=schema,
        required_fields=required,
        min_characters=low,
        max_characters=high,
        exact_dedup=True if exact is None else exact,
        near_dedup_threshold=near,
    )


@dataclass
class Generated:
    """A row an operation made: the canonical row, where it came from, and the text the format
    filters and the judge look at (the answer it wrote, else the prompt it wrote)."""

    row: Row
    source_id: str
    text: str
    prompt: str = ""
    reference: str = ""
    score: float | None = None
    judge_reply: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Rejected:
    generated: Generated
    reason: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        g = self.generated
        return {
            "source_id": g.source_id,
            "reason": self.reason,
            "detail": self.detail,
            "row": g.row,
            **({"score": g.score} if g.score is not None else {}),
            **({"judge_reply": g.judge_reply} if g.judge_reply else {}),
        }


def format_problem(text: str, filters: Filters) -> tuple[str, str] | None:
    """Why `text` fails the format checks (reason, detail), or None."""
    if not text.strip():
        return "EMPTY", "the generated text is empty"
    if filters.min_characters and len(text) < filters.min_characters:
        return "TOO_SHORT", f"{len(text)} characters < {filters.min_characters}"
    if filters.max_characters and len(text) > filters.max_characters:
        return "TOO_LONG", f"{len(text)} characters > {filters.max_characters}"
    if filters.pattern:
        started = time.monotonic()
        try:
            hit = regex.compile(filters.pattern).search(text, timeout=PATTERN_SECONDS)
        except TimeoutError:
            return "REGEX_TIMEOUT", f"the pattern took over {time.monotonic() - started:.1f} s on this text"
        if hit is None:
            return "REGEX", f"does not match {filters.pattern[:80]!r}"
    if filters.wants_json:
        try:
            value = json.loads(strip_fence(text))
        except ValueError as error:
            return "NOT_JSON", f"not JSON: {error}"
        if filters.required_fields:
            missing = [f for f in filters.required_fields if not isinstance(value, dict) or f not in value]
            if missing:
                return "MISSING_FIELDS", f"no field {', '.join(missing[:5])}"
        if filters.json_schema is not None:
            import jsonschema

            error = jsonschema.exceptions.best_match(
                jsonschema.validators.validator_for(filters.json_schema)(filters.json_schema).iter_errors(
                    value
                )
            )
            if error is not None:
                where = "/".join(str(p) for p in error.absolute_path) or "(root)"
                return "JSON_SCHEMA", f"{where}: {error.message[:200]}"
    return None


def strip_fence(text: str) -> str:
    """The JSON inside a Markdown code fence (```json … ```), which models often add; else `text`."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```") and stripped.count("```") == 2:
        body = stripped[3:-3]
        return body.split("\n", 1)[1] if "\n" in body and not body.startswith("{") else body
    return stripped


def dedup(
    generated: list[Generated], kind: Kind, sources: list[Row], source_kind: Kind, filters: Filters
) -> tuple[list[Generated], list[Rejected]]:
    """Drop generated rows that duplicate a source row or an earlier generated row: exactly (after
    whitespace is normalized) and, with a threshold, nearly (MinHash LSH over character shingles)."""
    kept: list[Generated] = []
    dropped: list[Rejected] = []
    source_texts = [normalize_whitespace(row_text(r, source_kind)) for r in sources]
    texts = [normalize_whitespace(row_text(g.row, kind)) for g in generated]
    if filters.exact_dedup:
        seen = {t: f"source row {r['id']}" for t, r in zip(source_texts, sources, strict=True)}
        survivors = []
        for g, text in zip(generated, texts, strict=True):
            if text in seen:
                dropped.append(Rejected(g, "EXACT_DUPLICATE", f"the same as {seen[text]}"))
            else:
                seen[text] = f"generated row {g.row['id']}"
                survivors.append((g, text))
    else:
        survivors = list(zip(generated, texts, strict=True))
    if filters.near_dedup_threshold:
        everything = source_texts + [t for _, t in survivors]
        labels = [f"source row {r['id']}" for r in sources] + [
            f"generated row {g.row['id']}" for g, _ in survivors
        ]
        duplicates = near_duplicate_of(everything, threshold=filters.near_dedup_threshold)
        for offset, (g, _) in enumerate(survivors):
            original = duplicates[len(sources) + offset]
            if original is None:
                kept.append(g)
            else:
                dropped.append(Rejected(g, "NEAR_DUPLICATE", f"nearly the same as {labels[original]}"))
    else:
        kept = [g for g, _ in survivors]
    return kept, dropped
