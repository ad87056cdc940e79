"""The canonical, TRL-ready row of each dataset kind, and its Parquet schema.

    text                 {"id", "text"}
    sft                  {"id", "messages": [{"role", "content"}, ...], "tools"?} ends with assistant
    preference           {"id", "prompt": [...], "chosen": [assistant], "rejected": [assistant]}
    unpaired_preference  {"id", "prompt": [...], "completion": [assistant], "label": bool}
    prompt_only          {"id", "prompt": [...], "reference": str}                reference may be ""
    eval                 {"id", "prompt": [...], "reference": str, "references"?: [str, ...]}
                         (`references`, when given, holds every acceptable answer, `reference` first)

`prompt` is a conversation ending with a user turn (an optional system turn first). An sft
conversation may call tools, in OpenAI's shapes: an assistant turn with `tool_calls`
(`[{"id", "type": "function", "function": {"name", "arguments": "<JSON text>"}}]`), then `tool`
turns with the results; the row's `tools` is the JSON text of the functions' schemas. Stored rows
are read back without the keys a row does not use (`tool_calls`, `tools` are absent, never null). TRL's
SFTTrainer, DPOTrainer, KTOTrainer and GRPOTrainer take these columns as they are.

The schema is shared by every service that reads or writes rows (data, train workers, eval workers);
pyarrow is imported only by the Parquet functions, so the row shapes cost nothing to import.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from enum import StrEnum
from functools import cache
from typing import Any


class Kind(StrEnum):
    TEXT = "text"
    SFT = "sft"
    PREFERENCE = "preference"
    UNPAIRED_PREFERENCE = "unpaired_preference"
    PROMPT_ONLY = "prompt_only"
    EVAL = "eval"


ROLES = ("system", "user", "assistant", "tool")
Row = dict[str, Any]


def text_fields(row: Row, kind: Kind) -> Iterator[tuple[str, str]]:
    """Every text of a row with its role: `prompt`, `response` or `text` (what lengths are measured on)."""
    if kind == Kind.TEXT:
        yield "text", row["text"]
        return
    if kind == Kind.SFT:
        for message in row["messages"]:
            yield ("response" if message["role"] == "assistant" else "prompt"), message["content"]
            for call in message.get("tool_calls") or []:
                yield "response", call["function"]["name"] + call["function"]["arguments"]
        return
    for message in row["prompt"]:
        yield "prompt", message["content"]
    for key in ("chosen", "rejected", "completion"):
        for message in row.get(key) or []:
            yield "response", message["content"]
    if row.get("reference"):
        yield "response", row["reference"]
    for other in (row.get("references") or [])[1:]:
        yield "response", other


def characters(row: Row, kind: Kind) -> int:
    return sum(len(text) for _, text in text_fields(row, kind))


def content_key(row: Row, kind: Kind) -> str:
    """The row's content without its id: equal keys mean exact duplicates."""
    return "\x1e".join(f"{field}\x1f{text}" for field, text in text_fields(row, kind)) + (
        f"\x1d{row['label']}" if kind == Kind.UNPAIRED_PREFERENCE else ""
    )


@cache
def schema(kind: Kind) -> Any:
    """The Parquet (Arrow) schema of a kind's rows."""
    import pyarrow as pa

    function = pa.struct([("name", pa.string()), ("arguments", pa.string())])
    call = pa.struct([("id", pa.string()), ("type", pa.string()), ("function", function)])
    messages = pa.list_(
        pa.struct(
            [
                ("role", pa.string()),
                ("content", pa.string()),
                ("tool_calls", pa.list_(call)),
                ("weight", pa.int8()),
            ]
        )
    )
    columns = {
        Kind.TEXT: [("text", pa.string())],
        Kind.SFT: [("messages", messages), ("tools", pa.string())],
        Kind.PREFERENCE: [("prompt", messages), ("chosen", messages), ("rejected", messages)],
        Kind.UNPAIRED_PREFERENCE: [("prompt", messages), ("completion", messages), ("label", pa.bool_())],
        # `fields`: the record's extra fields as a JSON object (what OpenAI graders read as `item.…`).
        Kind.PROMPT_ONLY: [("prompt", messages), ("reference", pa.string()), ("fields", pa.string())],
        Kind.EVAL: [
            ("prompt", messages),
            ("reference", pa.string()),
            ("references", pa.list_(pa.string())),
            ("fields", pa.string()),
        ],
    }[kind]
    return pa.schema([("id", pa.string()), *columns])


def to_table(rows: list[Row], kind: Kind) -> Any:
    import pyarrow as pa

    return pa.Table.from_pylist(rows, schema=schema(kind))


def to_parquet_bytes(rows: list[Row], kind: Kind) -> bytes:
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(to_table(rows, kind), buffer, compression="zstd")
    return buffer.getvalue()


def compact(row: Row) -> Row:
    """The row without the optional keys it does not use (Parquet stores them as null)."""
    out = {k: v for k, v in row.items() if v is not None or k not in _OPTIONAL}
    for key in ("messages", "prompt", "chosen", "rejected", "completion"):
        if isinstance(out.get(key), list):
            out[key] = [
                {k: v for k, v in m.items() if v is not None} if isinstance(m, dict) else m for m in out[key]
            ]
    return out


_OPTIONAL = frozenset({"tools", "references", "fields"})


def from_parquet_bytes(data: bytes) -> list[Row]:
    import pyarrow.parquet as pq

    return [compact(r) for r in pq.read_table(io.BytesIO(data)).to_pylist()]


def read_parquet(path: Any) -> list[Row]:
    """The rows of a Parquet file on disk."""
    import pyarrow.parquet as pq

    return [compact(r) for r in pq.read_table(path).to_pylist()]
