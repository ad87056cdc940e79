"""Data that ingests but should be looked at: each finding is a warning on the version (and in its
insight) with a stable reason, a sentence, a count and example row ids. Nothing here refuses data.

- `SINGLE_LABEL`: KTO data whose rows all carry the same label (KTO learns from the contrast).
- `PLACEHOLDERS`: template placeholders left in the text (`{{name}}`, `${name}`), with the names and
  how many rows hold each; the `fill_placeholders` cleaning operation substitutes values.
- `LONG_DOCUMENT`: a text document far longer than any context (often a file with one document
  per line read as one document).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from services.kit.rows import Kind, Row, text_fields

# Names of 1-64 word characters (any script), dots and dashes; `{{ name }}` and `${name}`.
PLACEHOLDER = re.compile(r"\{\{\s*([^\W\d][\w.\-]{0,63})\s*\}\}|\$\{([^\W\d][\w.\-]{0,63})\}")
LONG_DOCUMENT_CHARACTERS = 100_000
EXAMPLES = 5


def placeholders(text: str) -> list[str]:
    return [a or b for a, b in PLACEHOLDER.findall(text)]


def warning(reason: str, message: str, ids: list[str], **extra: Any) -> dict[str, Any]:
    return {"reason": reason, "message": message, "count": len(ids), "row_ids": ids[:EXAMPLES], **extra}


def _single_label(rows: list[Row]) -> dict[str, Any] | None:
    labels = {bool(r["label"]) for r in rows}
    if len(rows) < 2 or len(labels) != 1:
        return None
    label = labels.pop()
    word = "desirable (true)" if label else "undesirable (false)"
    other = "undesirable (false)" if label else "desirable (true)"
    return warning(
        "SINGLE_LABEL",
        f"all {len(rows)} rows are labelled {word}: KTO learns from the contrast between desirable and "
        f"undesirable answers, so add {other} examples (or train with sft on the desirable ones)",
        [],
        label=label,
    )


def _placeholders(rows: list[Row], kind: Kind) -> dict[str, Any] | None:
    names: Counter[str] = Counter()
    ids = []
    for row in rows:
        found = {name for _, text in text_fields(row, kind) if "{" in text for name in placeholders(text)}
        if found:
            ids.append(row["id"])
            names.update(found)
    if not ids:
        return None
    listed = ", ".join(f"{{{{{n}}}}} ({c})" for n, c in names.most_common(10))
    return warning(
        "PLACEHOLDERS",
        f"{len(ids)} rows hold template placeholders that were never filled: {listed}; fill them with the "
        "fill_placeholders cleaning operation or fix the source",
        ids,
        names=dict(names.most_common(50)),
    )


def _long_documents(rows: list[Row]) -> dict[str, Any] | None:
    long = [r for r in rows if len(r["text"]) > LONG_DOCUMENT_CHARACTERS]
    if not long:
        return None
    longest = max(len(r["text"]) for r in long)
    hint = (
        "; if the file holds one document per line, upload it with the text split `line`"
        if any("\n" in r["text"] for r in long)
        else ""
    )
    return warning(
        "LONG_DOCUMENT",
        f"{len(long)} documents are over {LONG_DOCUMENT_CHARACTERS:,} characters (the longest "
        f"{longest:,}), far longer than a model's context: training keeps only the start of each{hint}",
        [r["id"] for r in long],
    )


def scan(rows: list[Row], kind: Kind) -> list[dict[str, Any]]:
    """Every warning the rows deserve, in a stable order."""
    found = [_placeholders(rows, kind)]
    if kind == Kind.UNPAIRED_PREFERENCE:
        found.append(_single_label(rows))
    if kind == Kind.TEXT:
        found.append(_long_documents(rows))
    return [w for w in found if w is not None]
