"""Cleaning pipelines (数据清洗): named operations run in order over canonical rows.

Every operation is deterministic (same rows and parameters, same result) and reports how many rows
it removed or changed, with examples. Text-changing operations touch every text field of a row
(message contents, text, reference) and leave ids, roles and labels alone.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import regex
from datasketch import MinHash, MinHashLSH

from services.data import flags
from services.kit import pii
from services.kit.rows import Kind, Row, content_key, text_fields

MAX_EXAMPLES = 5
REGEX_ROW_SECONDS = 1.0  # a user pattern on one row
REGEX_STEP_SECONDS = 120.0  # ... and on all rows of one step


@dataclass
class StepReport:
    operation: str
    rows_in: int
    rows_removed: int = 0
    rows_changed: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)

    def example(self, item: dict[str, Any]) -> None:
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(item)


@dataclass(frozen=True)
class Operation:
    """One step: `name` and its parameters (see the `CleaningOperation` messages)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


# -- text rewriting over every text field of a row -------------------------------------------------


def _map_texts(row: Row, kind: Kind, fn: Callable[[str], str]) -> Row:
    if kind == Kind.TEXT:
        return {**row, "text": fn(row["text"])}
    out = dict(row)
    for key in ("messages", "prompt", "chosen", "rejected", "completion"):
        if key in row and row[key] is not None:
            out[key] = [{**m, "content": fn(m["content"])} for m in row[key]]
    if row.get("reference"):
        out["reference"] = fn(row["reference"])
    if row.get("references"):
        out["references"] = [fn(r) for r in row["references"]]
    return out


def _rewrite(rows: list[Row], kind: Kind, report: StepReport, fn: Callable[[str], str]) -> list[Row]:
    out = []
    for row in rows:
        new = _map_texts(row, kind, fn)
        if new != row:
            report.rows_changed += 1
            before = next(
                (
                    t
                    for (_, t), (_, u) in zip(text_fields(row, kind), text_fields(new, kind), strict=True)
                    if t != u
                ),
                "",
            )
            report.example({"id": row["id"], "before": before[:200], "after": fn(before)[:200]})
        out.append(new)
    return out


# Zero-width and other invisible format characters, the BOM, and C0/C1 controls except \t \n \r.
_INVISIBLE = re.compile(
    r"[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\u00ad\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
)


# NFKC would turn Chinese full-width punctuation (，。！？：；（）) into ASCII; Chinese text keeps it.
_CJK_PUNCTUATION = re.compile(
    r"([\uff01\uff08\uff09\uff0c\uff1a\uff1b\uff1f\u3001\u3002\u300a-\u300f\u3010\u3011\u201c\u201d\u2018\u2019])"
)


def normalize_unicode(text: str) -> str:
    """NFKC (full-width letters and digits, ligatures, compatibility forms), keeping Chinese
    punctuation, then without invisible and control characters."""
    parts = _CJK_PUNCTUATION.split(text)
    normalized = "".join(
        part if i % 2 else unicodedata.normalize("NFKC", part) for i, part in enumerate(parts)
    )
    return _INVISIBLE.sub("", normalized)


_SPACES = re.compile(r"[ \t\u3000]+")
_BLANKS = re.compile(r"\n{3,}")


def normalize_whitespace(text: str) -> str:
    lines = [
        _SPACES.sub(" ", line).strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    ]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


# -- operations ----------------------------------------------------------------------------------


def exact_dedup(rows: list[Row], kind: Kind, report: StepReport) -> list[Row]:
    seen: dict[str, str] = {}
    out = []
    for row in rows:
        key = content_key(row, kind)
        if key in seen:
            report.rows_removed += 1
            report.example({"id": row["id"], "duplicate_of": seen[key]})
            continue
        seen[key] = row["id"]
        out.append(row)
    return out


def shingles(text: str, size: int) -> set[bytes]:
    """Character shingles: they work for Chinese (no spaces) and for English alike."""
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) <= size:
        return {text.encode()}
    return {text[i : i + size].encode() for i in range(len(text) - size + 1)}


def minhashes(texts: list[str], *, shingle_size: int, num_perm: int, seed: int = 1) -> Iterator[MinHash]:
    """MinHashes of texts' character shingles (datasketch's generator shares one permutation set)."""
    return MinHash.generator((list(shingles(t, shingle_size)) for t in texts), num_perm=num_perm, seed=seed)


def near_duplicate_of(
    texts: list[str], *, threshold: float = 0.8, shingle_size: int = 5, num_perm: int = 128
) -> list[int | None]:
    """For each text, the index of an earlier text it nearly duplicates (MinHash LSH), else None."""
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    result: list[int | None] = []
    for i, m in enumerate(minhashes(texts, shingle_size=shingle_size, num_perm=num_perm)):
        matches = lsh.query(m)
        if matches:
            result.append(min(matches))
            continue
        lsh.insert(i, m)
        result.append(None)
    return result


DEDUP_FIELDS = ("row", "prompt", "response")


def row_text(row: Row, kind: Kind, part: str = "row") -> str:
    """The row's text, or only its prompt or response side (text rows have one text)."""
    return "\n".join(text for role, text in text_fields(row, kind) if part == "row" or role in (part, "text"))


def near_dedup(
    rows: list[Row],
    kind: Kind,
    report: StepReport,
    threshold: float = 0.8,
    shingle_size: int = 5,
    num_perm: int = 128,
    field: str = "row",
) -> list[Row]:
    duplicates = near_duplicate_of(
        [row_text(r, kind, field) for r in rows],
        threshold=threshold,
        shingle_size=shingle_size,
        num_perm=num_perm,
    )
    out = []
    for row, original in zip(rows, duplicates, strict=True):
        if original is None:
            out.append(row)
        else:
            report.rows_removed += 1
            report.example({"id": row["id"], "near_duplicate_of": rows[original]["id"]})
    return out


def length_filter(
    rows: list[Row],
    kind: Kind,
    report: StepReport,
    min_characters: int = 0,
    max_characters: int = 0,
    min_response_characters: int = 0,
) -> list[Row]:
    out = []
    for row in rows:
        total = sum(len(t) for _, t in text_fields(row, kind))
        response = sum(len(t) for f, t in text_fields(row, kind) if f == "response")
        reason = None
        if min_characters and total < min_characters:
            reason = f"{total} characters < {min_characters}"
        elif max_characters and total > max_characters:
            reason = f"{total} characters > {max_characters}"
        elif min_response_characters and kind != Kind.TEXT and response < min_response_characters:
            reason = f"response {response} characters < {min_response_characters}"
        if reason:
            report.rows_removed += 1
            report.example({"id": row["id"], "reason": reason})
        else:
            out.append(row)
    return out


def drop_empty(rows: list[Row], kind: Kind, report: StepReport) -> list[Row]:
    out = []
    for row in rows:
        empty = [
            f
            for f, t in text_fields(row, kind)
            if not t.strip() and not (f == "response" and kind == Kind.PROMPT_ONLY)
        ]
        if empty:
            report.rows_removed += 1
            report.example({"id": row["id"], "empty": empty[0]})
        else:
            out.append(row)
    return out


def mask_pii(rows: list[Row], kind: Kind, report: StepReport, kinds: list[str] | None = None) -> list[Row]:
    selected = tuple(kinds) if kinds else pii.KINDS
    return _rewrite(rows, kind, report, lambda text: pii.mask(text, selected)[0])


class StepFailed(Exception):
    """A step that cannot finish on these rows (a user's pattern past its time budget)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def regex_filter(
    rows: list[Row], kind: Kind, report: StepReport, pattern: str = "", keep_matching: bool = False
) -> list[Row]:
    """Users' patterns run on the `regex` engine with a time budget per row and per step, so a
    pattern that backtracks catastrophically (`(a|aa)+$`) fails the step, naming the row, in bounded time."""
    compiled = regex.compile(pattern)
    deadline = time.monotonic() + REGEX_STEP_SECONDS
    out = []
    for row in rows:
        budget = min(REGEX_ROW_SECONDS, deadline - time.monotonic())
        try:
            if budget <= 0:
                raise TimeoutError
            hit = compiled.search(row_text(row, kind), timeout=budget) is not None
        except TimeoutError:
            raise StepFailed(
                "REGEX_TIMEOUT",
                f"regex_filter: the pattern {pattern[:80]!r} took over "
                f"{REGEX_ROW_SECONDS if budget >= REGEX_ROW_SECONDS else REGEX_STEP_SECONDS:g} s "
                f"at row {str(row['id'])[:40]!r}; it backtracks too much: simplify it "
                "(no nested quantifiers such as (a+)+ or alternatives that overlap such as (a|aa)+)",
            ) from None
        if hit == keep_matching:
            out.append(row)
        else:
            report.rows_removed += 1
            report.example({"id": row["id"], "matched": hit})
    return out


def keyword_filter(
    rows: list[Row], kind: Kind, report: StepReport, keywords: list[str] | None = None
) -> list[Row]:
    lowered = [k.lower() for k in keywords or [] if k]
    out = []
    for row in rows:
        text = row_text(row, kind).lower()
        found = next((k for k in lowered if k in text), None)
        if found:
            report.rows_removed += 1
            report.example({"id": row["id"], "keyword": found})
        else:
            out.append(row)
    return out


def fill_placeholders(rows: list[Row], kind: Kind, report: StepReport, values: dict[str, str]) -> list[Row]:
    """`{{name}}` and `${name}` replaced by `values[name]`; other placeholders left as they are."""

    def fill(text: str) -> str:
        if "{" not in text:
            return text
        return flags.PLACEHOLDER.sub(lambda m: values.get(m.group(1) or m.group(2), m.group()), text)

    return _rewrite(rows, kind, report, fill)


OPERATIONS: dict[str, Callable[..., list[Row]]] = {
    "exact_dedup": exact_dedup,
    "near_dedup": near_dedup,
    "length_filter": length_filter,
    "drop_empty": drop_empty,
    "normalize_unicode": lambda rows, kind, report: _rewrite(rows, kind, report, normalize_unicode),
    "normalize_whitespace": lambda rows, kind, report: _rewrite(rows, kind, report, normalize_whitespace),
    "mask_pii": mask_pii,
    "regex_filter": regex_filter,
    "keyword_filter": keyword_filter,
    "fill_placeholders": fill_placeholders,
}


def run_pipeline(
    rows: list[Row], kind: Kind, operations: list[Operation]
) -> tuple[list[Row], list[StepReport]]:
    """Apply `operations` in order; return the remaining rows and one report per step."""
    reports = []
    for operation in operations:
        report = StepReport(operation.name, rows_in=len(rows))
        rows = OPERATIONS[operation.name](rows, kind, report, **operation.params)
        reports.append(report)
    return rows, reports
