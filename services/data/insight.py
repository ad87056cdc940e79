"""Insight into a dataset version (数据洞察): sizes, lengths, duplicates, scripts, labels, PII.

Lengths are measured in characters, and in tokens when a tokenizer is given (the raw text of each
field, without a chat template). Charts are PNG images drawn with matplotlib.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from services.data import pii
from services.data.canonical import Kind, Row, content_key, text_fields
from services.data.cleaning import near_duplicate_of, row_text

BINS = 20


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


def compute(
    rows: list[Row],
    kind: Kind,
    *,
    tokenizer: Any = None,
    tokenizer_name: str = "",
    max_sequence_length: int = 2048,
) -> dict[str, Any]:
    """The insight report as a JSON-ready dict. `tokenizer` is a `tokenizers.Tokenizer` or None."""
    prompt_chars, response_chars, turns, totals = [], [], [], []
    prompt_tokens, response_tokens = [], []
    empty_rows = 0
    scripts = {"cjk": 0, "latin": 0, "other": 0}
    pii_rows: dict[str, int] = {}
    labels = {"true": 0, "false": 0}
    for row in rows:
        fields = list(text_fields(row, kind))
        p = [t for f, t in fields if f in ("prompt", "text")]
        r = [t for f, t in fields if f == "response"]
        prompt_chars.append(sum(len(t) for t in p))
        response_chars.append(sum(len(t) for t in r))
        if tokenizer is not None:
            pt = sum(len(e.ids) for e in tokenizer.encode_batch(p, add_special_tokens=False)) if p else 0
            rt = sum(len(e.ids) for e in tokenizer.encode_batch(r, add_special_tokens=False)) if r else 0
            prompt_tokens.append(pt)
            response_tokens.append(rt)
            totals.append(pt + rt)
        else:
            totals.append(prompt_chars[-1] + response_chars[-1])
        if kind == Kind.SFT:
            turns.append(sum(1 for m in row["messages"] if m["role"] == "user"))
        elif kind != Kind.TEXT:
            turns.append(sum(1 for m in row["prompt"] if m["role"] == "user"))
        if any(not t.strip() for f, t in fields if not (f == "response" and kind == Kind.PROMPT_ONLY)):
            empty_rows += 1
        for _, text in fields:
            for char in text:
                script = script_of(char)
                if script != "neutral":
                    scripts[script] += 1
        for found in pii.find("\n".join(t for _, t in fields)):
            pii_rows[found] = pii_rows.get(found, 0) + 1
        if kind == Kind.UNPAIRED_PREFERENCE:
            labels["true" if row["label"] else "false"] += 1
    keys = [content_key(row, kind) for row in rows]
    near = near_duplicate_of([row_text(r, kind) for r in rows]) if rows else []
    script_total = sum(scripts.values()) or 1
    report: dict[str, Any] = {
        "kind": kind.value,
        "rows": len(rows),
        "characters": int(sum(prompt_chars) + sum(response_chars)),
        "prompt_characters": stats(prompt_chars),
        "response_characters": stats(response_chars) if kind != Kind.TEXT else None,
        "tokenizer": tokenizer_name or None,
        "length_unit": "tokens" if tokenizer is not None else "characters",
        "max_sequence_length": max_sequence_length,
        "rows_over_max_sequence_length": int(sum(1 for t in totals if t > max_sequence_length)),
        "total_length": stats(totals),
        "exact_duplicates": len(keys) - len(set(keys)),
        "near_duplicates": sum(1 for n in near if n is not None),
        "rows_with_empty_fields": empty_rows,
        "script_mix": {k: round(v / script_total, 4) for k, v in scripts.items()},
        "pii_rows": pii_rows,
    }
    if tokenizer is not None:
        report["prompt_tokens"] = stats(prompt_tokens)
        report["response_tokens"] = stats(response_tokens) if kind != Kind.TEXT else None
    if turns:
        report["turns"] = stats(turns)
    if kind == Kind.UNPAIRED_PREFERENCE:
        report["labels"] = labels
    return report


def charts(report: dict[str, Any]) -> dict[str, bytes]:
    """PNG charts of the report: `lengths.png` (prompt and response length histograms), and
    `turns.png` for conversations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    out["lengths.png"] = png(fig, plt)
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
        out["turns.png"] = png(fig, plt)
    return out


def png(fig: Any, plt: Any) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()
