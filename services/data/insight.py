"""Insight into a dataset version (数据洞察): sizes, lengths, duplicates, scripts, labels, PII.

Lengths are measured in characters, and in tokens when a tokenizer is given (the raw text of each
field, without a chat template). With a tokenizer the report also holds the sequence a trainer sees
(`sequence_tokens`, `prompt_sequence_tokens`, `rows_over_sequence_limit`): each message's tokens plus
MESSAGE_TOKENS for the role markers a chat template adds (an allowance, not the template itself);
a preference pair counts its prompt with the longer answer. The train service checks jobs with it.
Charts are PNG images drawn with matplotlib.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from services.data import flags
from services.data.cleaning import near_duplicate_of, row_text
from services.kit import pii
from services.kit.charts import png, pyplot
from services.kit.rows import Kind, Row, content_key, text_fields

BINS = 20
# Tokens a chat template adds around each message (role markers, line breaks, end of turn).
MESSAGE_TOKENS = 4
REFERENCE_KINDS = (Kind.PROMPT_ONLY, Kind.EVAL)


def sequence_lengths(row: Row, kind: Kind, count: Any) -> tuple[int, int]:
    """(whole sequence, prompt) in tokens as a trainer lays the row out; `count(text)` counts tokens."""

    def turns(messages: list[dict[str, Any]]) -> list[int]:
        return [count(m["content"]) + MESSAGE_TOKENS for m in messages or []]

    if kind == Kind.TEXT:
        return count(row["text"]), 1
    if kind == Kind.SFT:
        lengths = turns(row["messages"])
        return sum(lengths), sum(lengths[:-1])
    prompt = sum(turns(row["prompt"]))
    if kind == Kind.PREFERENCE:
        return prompt + max(sum(turns(row["chosen"])), sum(turns(row["rejected"]))), prompt
    if kind == Kind.UNPAIRED_PREFERENCE:
        return prompt + sum(turns(row["completion"])), prompt
    return prompt, prompt  # prompt_only and eval: the answer is generated


def stats(values: list[int]) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    array = np.asarray(values)
    counts, edges = np.histogram(array, bins=min(BINS, max(1, len(set(values)))))
    return {
        "count": int(array.size),
        "min": int(array.min()),
        "mean": round(float(array.mean()), 2),
        "p50": float(np.percentile(array, 50)),
        "p90": float(np.percentile(array, 90)),
        "p99": float(np.percentile(array, 99)),
        "max": int(array.max()),
        "histogram": {"edges": [round(float(e), 2) for e in edges], "counts": [int(c) for c in counts]},
    }


def script_of(char: str) -> str:
    code = ord(char)
    if (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x3000 <= code <= 0x303F
        or 0xFF00 <= code <= 0xFFEF
    ):
        return "cjk"
    if char.isascii() and char.isalpha():
        return "latin"
    if char.isspace() or char.isdigit() or (char.isascii() and not char.isalnum()):
        return "neutral"
    return "other"


@dataclass
class _Tally:
    """What `compute` counts, row by row."""

    kind: Kind
    tokenizer: Any = None
    prompt_chars: list[int] = field(default_factory=list)
    response_chars: list[int] = field(default_factory=list)
    totals: list[int] = field(default_factory=list)
    prompt_tokens: list[int] = field(default_factory=list)
    response_tokens: list[int] = field(default_factory=list)
    sequences: list[int] = field(default_factory=list)
    sequence_prompts: list[int] = field(default_factory=list)
    turns: list[int] = field(default_factory=list)
    empty_rows: int = 0
    scripts: dict[str, int] = field(default_factory=lambda: {"cjk": 0, "latin": 0, "other": 0})
    pii_rows: dict[str, int] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=lambda: {"true": 0, "false": 0})

    def lengths(self, row: Row, fields: list[tuple[str, str]]) -> None:
        p = [t for f, t in fields if f in ("prompt", "text")]
        r = [t for f, t in fields if f == "response"]
        self.prompt_chars.append(sum(len(t) for t in p))
        self.response_chars.append(sum(len(t) for t in r))
        tokenizer = self.tokenizer
        if tokenizer is None:
            self.totals.append(self.prompt_chars[-1] + self.response_chars[-1])
            return
        pt = sum(len(e.ids) for e in tokenizer.encode_batch(p, add_special_tokens=False)) if p else 0
        rt = sum(len(e.ids) for e in tokenizer.encode_batch(r, add_special_tokens=False)) if r else 0
        self.prompt_tokens.append(pt)
        self.response_tokens.append(rt)
        self.totals.append(pt + rt)
        whole, prompt = sequence_lengths(
            row, self.kind, lambda t: len(tokenizer.encode(t, add_special_tokens=False).ids)
        )
        self.sequences.append(whole)
        self.sequence_prompts.append(prompt)

    def content(self, row: Row, fields: list[tuple[str, str]]) -> None:
        kind = self.kind
        if kind == Kind.SFT:
            self.turns.append(sum(1 for m in row["messages"] if m["role"] == "user"))
        elif kind != Kind.TEXT:
            self.turns.append(sum(1 for m in row["prompt"] if m["role"] == "user"))
        if any(not t.strip() for f, t in fields if not (f == "response" and kind == Kind.PROMPT_ONLY)):
            self.empty_rows += 1
        for _, text in fields:
            for char in text:
                script = script_of(char)
                if script != "neutral":
                    self.scripts[script] += 1
        for found in pii.find("\n".join(t for _, t in fields)):
            self.pii_rows[found] = self.pii_rows.get(found, 0) + 1
        if kind == Kind.UNPAIRED_PREFERENCE:
            self.labels["true" if row["label"] else "false"] += 1

    def tokens(self, max_sequence_length: int) -> dict[str, Any]:
        """The token section of the report (with a tokenizer)."""
        sequences = self.sequences
        return {
            "prompt_tokens": stats(self.prompt_tokens),
            "response_tokens": stats(self.response_tokens) if self.kind != Kind.TEXT else None,
            "sequence_tokens": stats(sequences),
            # For counting rows over any other length: the 0th to 100th percentile.
            "sequence_tokens_percentiles": (
                [float(v) for v in np.percentile(np.asarray(sequences), list(range(101)))]
                if sequences
                else []
            ),
            "prompt_sequence_tokens": stats(self.sequence_prompts),
            "rows_over_sequence_limit": sum(1 for n in sequences if n > max_sequence_length),
            "message_tokens_allowance": MESSAGE_TOKENS,
        }


def compute(
    rows: list[Row],
    kind: Kind,
    *,
    tokenizer: Any = None,
    tokenizer_name: str = "",
    max_sequence_length: int = 2048,
) -> dict[str, Any]:
    """The insight report as a JSON-ready dict. `tokenizer` is a `tokenizers.Tokenizer` or None."""
    tally = _Tally(kind, tokenizer)
    for row in rows:
        fields = list(text_fields(row, kind))
        tally.lengths(row, fields)
        tally.content(row, fields)
    keys = [content_key(row, kind) for row in rows]
    near = near_duplicate_of([row_text(r, kind) for r in rows]) if rows else []
    script_total = sum(tally.scripts.values()) or 1
    report: dict[str, Any] = {
        "kind": kind.value,
        "rows": len(rows),
        "characters": int(sum(tally.prompt_chars) + sum(tally.response_chars)),
        "prompt_characters": stats(tally.prompt_chars),
        "response_characters": stats(tally.response_chars) if kind != Kind.TEXT else None,
        "tokenizer": tokenizer_name or None,
        "length_unit": "tokens" if tokenizer is not None else "characters",
        "max_sequence_length": max_sequence_length,
        "rows_over_max_sequence_length": int(sum(1 for t in tally.totals if t > max_sequence_length)),
        "total_length": stats(tally.totals),
        "exact_duplicates": len(keys) - len(set(keys)),
        "near_duplicates": sum(1 for n in near if n is not None),
        "rows_with_empty_fields": tally.empty_rows,
        "script_mix": {k: round(v / script_total, 4) for k, v in tally.scripts.items()},
        "pii_rows": tally.pii_rows,
    }
    if tokenizer is not None:
        report.update(tally.tokens(max_sequence_length))
    if kind in REFERENCE_KINDS:
        missing = [r["id"] for r in rows if not (r.get("reference") or "").strip()]
        report["rows_without_reference"] = len(missing)
        report["rows_without_reference_examples"] = missing[:3]
    if tally.turns:
        report["turns"] = stats(tally.turns)
    if kind == Kind.UNPAIRED_PREFERENCE:
        report["labels"] = tally.labels
    report["warnings"] = flags.scan(rows, kind) + _far_over_context(rows, tally, max_sequence_length)
    return report


def _far_over_context(rows: list[Row], tally: _Tally, limit: int) -> list[dict[str, Any]]:
    """Rows whose sequence is over twice the context: truncation would keep less than half."""
    if not tally.sequences:
        return []
    ids = [row["id"] for row, n in zip(rows, tally.sequences, strict=True) if n > 2 * limit]
    if not ids:
        return []
    longest = max(tally.sequences)
    return [
        flags.warning(
            "FAR_OVER_CONTEXT",
            f"{len(ids)} rows are over twice the {limit}-token context (the longest {longest:,} tokens): "
            "training refuses them, or with truncate_overlength keeps less than half of each",
            ids,
        )
    ]


def charts(report: dict[str, Any]) -> dict[str, bytes]:
    """PNG charts of the report: `lengths.png` (prompt and response length histograms), and
    `turns.png` for conversations."""
    plt = pyplot()

    out: dict[str, bytes] = {}
    unit = report["length_unit"]
    panels = [
        (
            "prompt" if report["kind"] != "text" else "text",
            report.get(f"prompt_{unit}") or report["prompt_characters"],
        )
    ]
    response = report.get(f"response_{unit}") or report.get("response_characters")
    if response and response.get("count"):
        panels.append(("response", response))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.2), squeeze=False)
    for ax, (title, data) in zip(axes[0], panels, strict=True):
        if data.get("count"):
            edges, counts = data["histogram"]["edges"], data["histogram"]["counts"]
            ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="#4c72b0", edgecolor="white")
            ax.axvline(data["p50"], color="#dd8452", linestyle="--", label=f"p50 {data['p50']:.0f}")
            ax.axvline(data["p90"], color="#c44e52", linestyle=":", label=f"p90 {data['p90']:.0f}")
            ax.legend(fontsize=8)
        ax.set_title(f"{title} length ({unit})")
        ax.set_xlabel(unit)
        ax.set_ylabel("rows")
    fig.tight_layout()
    out["lengths.png"] = png(fig)
    if report.get("turns", {}).get("count"):
        fig, ax = plt.subplots(figsize=(4, 3))
        data = report["turns"]
        ax.bar(
            data["histogram"]["edges"][:-1],
            data["histogram"]["counts"],
            width=np.diff(data["histogram"]["edges"]),
            align="edge",
            color="#55a868",
        )
        ax.set_title("user turns per row")
        ax.set_xlabel("turns")
        ax.set_ylabel("rows")
        fig.tight_layout()
        out["turns.png"] = png(fig)
    return out
