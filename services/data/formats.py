"""Reading uploaded files: JSONL, JSON arrays, CSV, Parquet and plain text, optionally gzipped.

Each reader yields `Record`s (a parsed value with its line and record index) and `RowError`s for
records it cannot parse, so that every problem is reported with its exact place. Problems with the
file as a whole (not gzip although named so, a JSON array broken midway, unreadable Parquet) raise
`FileProblem`: such a file yields no version under any policy.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq


class Format(StrEnum):
    JSONL = "jsonl"
    JSON = "json"
    CSV = "csv"
    PARQUET = "parquet"
    TEXT = "text"


@dataclass(frozen=True)
class Record:
    line: int  # 1-based line where the record starts (0 for Parquet)
    row: int  # 0-based index of the record in the file
    value: Any


@dataclass(frozen=True)
class RowError:
    file: str
    line: int
    row: int
    field: str
    reason: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "row": self.row,
            "field": self.field,
            "reason": self.reason,
            "message": self.message,
        }


class FileProblem(Exception):
    """The file as a whole cannot be read."""

    def __init__(self, reason: str, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.line = line


@dataclass(frozen=True)
class Limits:
    max_line_bytes: int = 1024 * 1024
    max_decompressed_bytes: int = 8 * 1024**3


GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"


def detect_format(filename: str, head: bytes) -> Format:
    """From the name (`.jsonl`, `.json`, `.csv`, `.parquet`, `.txt`, with `.gz`) and the first bytes."""
    name = filename.lower().removesuffix(".gz").removesuffix(".gzip")
    for suffix, fmt in (
        (".jsonl", Format.JSONL),
        (".ndjson", Format.JSONL),
        (".json", Format.JSON),
        (".csv", Format.CSV),
        (".parquet", Format.PARQUET),
        (".txt", Format.TEXT),
        (".md", Format.TEXT),
    ):
        if name.endswith(suffix):
            return fmt
    if head.startswith(PARQUET_MAGIC):
        return Format.PARQUET
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"["):
        # A Qianfan JSONL line is itself an array: one array per line means JSONL.
        first_line = stripped.split(b"\n", 1)[0].rstrip()
        return Format.JSONL if first_line.endswith(b"]") and b"\n" in stripped else Format.JSON
    if stripped.startswith(b"{"):
        return Format.JSONL
    raise FileProblem(
        "UNKNOWN_FORMAT",
        f"cannot tell the format of {filename}: name it .jsonl, .json, .csv, .parquet or .txt, or declare the format",
    )


def open_bytes(path: Path, limits: Limits) -> io.BufferedIOBase:
    """The file's bytes, gunzipped when it is gzip, with the decompressed size capped."""
    with path.open("rb") as f:
        magic = f.read(2)
    if magic != GZIP_MAGIC:
        return path.open("rb")
    return _CappedReader(gzip.open(path, "rb"), limits.max_decompressed_bytes)  # type: ignore[arg-type]


class _CappedReader(io.RawIOBase):
    """Refuses to decompress beyond a limit (a gzip bomb), and reports corrupt gzip clearly."""

    def __init__(self, inner: io.BufferedIOBase, limit: int) -> None:
        self.inner = inner
        self.limit = limit
        self.read_so_far = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            n = self.inner.readinto(buffer)
        except (OSError, EOFError, zlib.error) as exc:
            raise FileProblem("GZIP_CORRUPT", f"the gzip stream is corrupt or truncated ({exc})") from None
        self.read_so_far += n or 0
        if self.read_so_far > self.limit:
            raise FileProblem("FILE_TOO_LARGE", f"the file decompresses to more than {self.limit} bytes")
        return n or 0

    def close(self) -> None:
        self.inner.close()
        super().close()


def _decode(raw: bytes, file: str, line: int, row: int) -> str | RowError:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RowError(
            file,
            line,
            row,
            "",
            "INVALID_UTF8",
            f"invalid UTF-8 at byte {exc.start + 1} of the line; save the file as UTF-8",
        )


def _refuse_utf16(head: bytes) -> None:
    """UTF-16 text (a BOM, or a NUL after most ASCII characters) is named as such, not as bad rows."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or (
        len(head) >= 8 and head[1::2].count(0) > len(head) // 4
    ):
        raise FileProblem("INVALID_UTF8", "the file is UTF-16 text; save it as UTF-8", 1)


def read_jsonl(path: Path, file: str, limits: Limits) -> Iterator[Record | RowError]:
    with open_bytes(path, limits) as probe:
        _refuse_utf16(probe.read(4096))
    with io.BufferedReader(open_bytes(path, limits), 1024 * 1024) as stream:  # type: ignore[arg-type]
        row = 0
        for line_number, raw in enumerate(stream, start=1):
            if line_number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if len(raw) > limits.max_line_bytes:
                yield RowError(
                    file,
                    line_number,
                    row,
                    "",
                    "LINE_TOO_LONG",
                    f"the line is {len(raw)} bytes; the limit is {limits.max_line_bytes}",
                )
                row += 1
                continue
            if not raw.strip():
                continue
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError:
                text = _decode(raw, file, line_number, row)
                if isinstance(text, RowError):
                    yield text
                else:
                    yield RowError(
                        file, line_number, row, "", "INVALID_JSON", f"invalid JSON: {_json_reason(text)}"
                    )
                row += 1
                continue
            yield Record(line_number, row, value)
            row += 1


MAX_JSON_DEPTH = 1000  # orjson stops at 1024 levels, Python's json at its recursion limit
_NON_JSON_NUMBER = re.compile(r"\b(?:NaN|-?Infinity)\b")


def _json_reason(text: str) -> str:
    """Why `text` is not JSON, with the column: Python's own message, or the nesting depth."""
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return _located(exc.msg, exc.colno)
    except RecursionError:
        return _too_deep(text)
    return (
        "NaN, Infinity or a number too large for JSON" if _NON_JSON_NUMBER.search(text) else "not valid JSON"
    )


def _too_deep(text: str, start: int = 0) -> str:
    return f"nested {_nesting_depth(text, start)} levels deep; TuneForge reads about {MAX_JSON_DEPTH} levels at most"


def _located(message: str, column: int, line: int = 0) -> str:
    """`message at line L, column C`, without doubling an `at` the message ends with."""
    where = f"line {line}, column {column}" if line else f"column {column}"
    return f"{message.removesuffix(' at')} at {where}"


def _nesting_depth(text: str, start: int = 0) -> int:
    """The deepest bracket nesting of the value at `start` (strings skipped), counted without recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for char in itertools.islice(text, start, None):
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
            if depth == 0:
                break
    return deepest


def read_json_array(path: Path, file: str, limits: Limits) -> Iterator[Record | RowError]:
    text = _read_text_whole(path, limits)
    decoder = json.JSONDecoder()
    position = _skip_space(text, 0)
    if position >= len(text) or text[position] != "[":
        raise FileProblem(
            "INVALID_JSON",
            "a .json file must hold one JSON array of records",
            text.count("\n", 0, position) + 1,
        )
    position = _skip_space(text, position + 1)
    row = 0
    line = text.count("\n", 0, position) + 1
    last = position
    while position < len(text) and text[position] != "]":
        line += text.count("\n", last, position)
        last = position
        try:
            value, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise FileProblem(
                "INVALID_JSON",
                f"invalid JSON in record {row + 1}: {_located(exc.msg, exc.colno, exc.lineno)}",
                exc.lineno,
            ) from None
        except RecursionError:
            raise FileProblem(
                "INVALID_JSON", f"record {row + 1} is {_too_deep(text, position)}", line
            ) from None
        yield Record(line, row, value)
        row += 1
        position = _skip_space(text, end)
        if position < len(text) and text[position] == ",":
            position = _skip_space(text, position + 1)
        elif position < len(text) and text[position] != "]":
            raise FileProblem(
                "INVALID_JSON", f"expected ',' or ']' after record {row}", text.count("\n", 0, position) + 1
            )
    if position >= len(text):
        raise FileProblem(
            "INVALID_JSON",
            "the JSON array is not closed with ']' (was the file cut off?)",
            text.count("\n") + 1,
        )


def _read_text_whole(path: Path, limits: Limits) -> str:
    with open_bytes(path, limits) as stream:
        raw = stream.read().removeprefix(b"\xef\xbb\xbf")
    _refuse_utf16(raw[:4096])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise FileProblem(
            "INVALID_UTF8", f"invalid UTF-8 on line {line}; save the file as UTF-8", line
        ) from None


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


JSON_CELLS = (
    "messages",
    "conversations",
    "history",
    "prompt",
    "chosen",
    "rejected",
    "completion",
    "response",
)


def read_csv(path: Path, file: str, limits: Limits) -> Iterator[Record | RowError]:
    text = _read_text_whole(path, limits)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise FileProblem("INVALID_CSV", f"the header row is not valid CSV ({exc})", 1) from None
    if len(set(header)) != len(header) or not all(h.strip() for h in header):
        raise FileProblem("INVALID_CSV", f"the header row must name each column once: {header}", 1)
    last_line = text.count("\n") + (0 if text.endswith("\n") else 1)
    row = 0
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield _csv_error(file, start, row, str(exc), last_line)
            if "unexpected end of data" in str(exc):
                return
            row += 1
            continue
        if not any(c.strip() for c in cells):
            continue
        nul = next((i for i, c in enumerate(cells) if "\x00" in c), None)
        if nul is not None:
            yield RowError(
                file,
                start,
                row,
                header[nul].strip() if nul < len(header) else "",
                "NUL_BYTE",
                "holds NUL bytes (\\0): the file may be binary or UTF-16; save it as UTF-8 text",
            )
            row += 1
            continue
        if len(cells) != len(header):
            yield RowError(
                file, start, row, "", "CSV_COLUMNS", f"has {len(cells)} columns; the header has {len(header)}"
            )
            row += 1
            continue
        value: dict[str, Any] = {}
        for name, cell in zip(header, cells, strict=True):
            value[name.strip()] = _cell(name.strip(), cell)
        yield Record(start, row, value)
        row += 1


def _csv_error(file: str, line: int, row: int, reason: str, last_line: int) -> RowError:
    if "unexpected end of data" in reason:
        message = (
            f'a quoted field opens on line {line} and is never closed (a `"` is missing), so lines '
            f"{line}-{last_line} were read as one field; close the quote or double the quotes inside it"
        )
        return RowError(file, line, row, "", "UNTERMINATED_QUOTE", message)
    if "expected after" in reason:
        message = (
            f'a quoted field is followed by other text ({reason}); write a `"` inside a quoted field as `""`'
        )
        return RowError(file, line, row, "", "INVALID_CSV", message)
    return RowError(file, line, row, "", "INVALID_CSV", f"not valid CSV ({reason})")


def _cell(name: str, cell: str) -> Any:
    """Structured columns (messages, history, ...) may hold JSON; labels may be true/false."""
    stripped = cell.strip()
    if name in JSON_CELLS and stripped[:1] in ("[", "{"):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return cell
    if name in ("label", "kto_tag") and stripped.lower() in ("true", "false"):
        return stripped.lower() == "true"
    return cell


def read_parquet(path: Path, file: str, limits: Limits) -> Iterator[Record | RowError]:
    try:
        with open_bytes(path, limits) as stream:
            parquet = pq.ParquetFile(io.BytesIO(stream.read()))
    except (pa.ArrowException, OSError) as exc:
        raise FileProblem("INVALID_PARQUET", f"not a readable Parquet file ({exc})") from None
    row = 0
    for batch in parquet.iter_batches(batch_size=4096):
        for value in batch.to_pylist():
            yield Record(0, row, value)
            row += 1


class TextSplit(StrEnum):
    BLANK_LINE = "blank_line"  # documents separated by blank lines (the default)
    LINE = "line"  # one document per line (LLaMA-Factory's reading of .txt files)
    FILE = "file"  # the whole file is one document


def read_text(
    path: Path, file: str, limits: Limits, split: TextSplit = TextSplit.BLANK_LINE
) -> Iterator[Record | RowError]:
    """Documents as `split` says; each becomes `{"text": ...}`, located at its first line."""
    with io.BufferedReader(open_bytes(path, limits), 1024 * 1024) as stream:  # type: ignore[arg-type]
        lines: list[str] = []
        start = 0
        row = 0
        for line_number, raw in enumerate(stream, start=1):
            text = _decode(
                raw.removeprefix(b"\xef\xbb\xbf") if line_number == 1 else raw, file, line_number, row
            )
            if isinstance(text, RowError):
                yield text
                continue
            ends_document = not text.strip() if split == TextSplit.BLANK_LINE else split == TextSplit.LINE
            if text.strip():
                if not lines:
                    start = line_number
                lines.append(text.rstrip("\r\n"))
            if ends_document and lines:
                yield Record(start, row, {"text": "\n".join(lines)})
                row += 1
                lines = []
        if lines:
            yield Record(start, row, {"text": "\n".join(lines)})


READERS = {
    Format.JSONL: read_jsonl,
    Format.JSON: read_json_array,
    Format.CSV: read_csv,
    Format.PARQUET: read_parquet,
    Format.TEXT: read_text,
}
