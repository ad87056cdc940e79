"""Validate and normalize one uploaded file into canonical rows, naming every bad row.

Pure and synchronous: the data service runs it on a worker thread and stores what it returns.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from services.data import flags
from services.data.formats import (
    READERS,
    FileProblem,
    Format,
    Limits,
    Record,
    RowError,
    TextSplit,
    detect_format,
    open_bytes,
    read_text,
)
from services.data.schemas import ACCEPTS, CONVERTERS, Problem, Schema, detect_schema
from services.kit.rows import Kind, Row, characters

MAX_ID_LENGTH = 200


class Policy(StrEnum):
    FAIL = "fail"
    SKIP = "skip"


# The field names a column mapping may give (what the schemas read), with LLaMA-Factory's aliases.
MAPPABLE = frozenset(
    {
        "id", "text", "messages", "conversations", "instruction", "input", "output", "system", "history",
        "tools", "prompt", "completion", "response", "reference", "answer", "solution", "chosen",
        "rejected", "label", "kto_tag",
    }
)  # fmt: skip
ALIASES = {"query": "input"}
_JSON_FIELDS = frozenset({"messages", "conversations", "history", "tools", "chosen", "rejected", "prompt"})


@dataclass(frozen=True)
class IngestOptions:
    filename: str
    format: Format | None = None
    schema: Schema | None = None
    policy: Policy = Policy.FAIL
    # The file's own column for each field TuneForge reads, e.g. {"prompt": "input_prompt"}.
    columns: dict[str, str] = field(default_factory=dict)
    text_split: TextSplit = TextSplit.BLANK_LINE


@dataclass
class IngestResult:
    rows: list[Row] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    format: Format | None = None
    schema: Schema | None = None
    characters: int = 0
    records: int = 0
    first_line: int = 0
    file_problem: RowError | None = None
    warnings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.file_problem is not None or not self.rows

    def failed_under(self, policy: Policy) -> bool:
        return self.failed or (policy == Policy.FAIL and bool(self.errors))


def _record_id(record: Record, filename: str, fmt: Format) -> str | RowError:
    value = record.value
    if isinstance(value, dict) and value.get("id") not in (None, ""):
        given = value["id"]
        if not isinstance(given, str | int) or isinstance(given, bool):
            return RowError(
                filename, record.line, record.row, "id", "WRONG_TYPE", "`id` must be a string or an integer"
            )
        text = str(given)
        if len(text) > MAX_ID_LENGTH:
            return RowError(
                filename,
                record.line,
                record.row,
                "id",
                "ID_TOO_LONG",
                f"`id` is longer than {MAX_ID_LENGTH} characters",
            )
        return text
    # Line-based formats hold one record per line start; elsewhere the record index is the address.
    # Both count from 1: `train.jsonl:7` is line 7, `train.json#7` the 7th record.
    return (
        f"{filename}#{record.row + 1}"
        if fmt in (Format.PARQUET, Format.JSON)
        else f"{filename}:{record.line}"
    )


def mapped(value: Any, columns: dict[str, str]) -> Any:
    """The record with the file's columns renamed to the fields they hold (JSON text parsed where
    the field is structured, as in a CSV cell)."""
    if not columns or not isinstance(value, dict):
        return value
    sources = set(columns.values())
    out = {k: v for k, v in value.items() if k not in columns and k not in sources}
    for target, source in columns.items():
        if source in value:
            cell = value[source]
            if target in _JSON_FIELDS and isinstance(cell, str) and cell.strip()[:1] in ("[", "{"):
                with contextlib.suppress(json.JSONDecodeError, RecursionError):
                    cell = json.loads(cell)
            out[target] = cell
    return out


def _check_mapped_columns(first: Record, columns: dict[str, str]) -> None:
    """A mapping that names a column the file's first record lacks is a mistake in the mapping."""
    if not isinstance(first.value, dict):
        return
    for target, source in columns.items():
        if source not in first.value:
            keys = ", ".join(f"`{k}`" for k in sorted(first.value)[:12])
            raise FileProblem(
                "MISSING_COLUMN",
                f"the column `{source}` (mapped to `{target}`) is not in the file: its first record has {keys}",
                first.line,
            )


def user_field(path: str, columns: dict[str, str]) -> str:
    """A field path in the names the file uses: `prompt[0]` is `input_prompt[0]` when mapped."""
    for target, source in columns.items():
        if path == target or path.startswith((target + ".", target + "[")):
            return source + path[len(target) :]
    return path


def _named_in_file(problem: Problem, columns: dict[str, str]) -> tuple[str, str]:
    """The problem's field and message with mapped fields named as the file names them."""
    message = problem.message
    for target, source in columns.items():
        message = message.replace(f"`{target}", f"`{source}")
    return user_field(problem.field, columns), message


def _schema_of(item: Record, schema: Schema | None, kind: Kind) -> Schema:
    """The file's schema (detected from its first record unless declared), checked against the kind."""
    if schema is None:
        schema = detect_schema(item.value)
        if schema is None:
            keys = sorted(item.value)[:8] if isinstance(item.value, dict) else type(item.value).__name__
            raise FileProblem(
                "UNKNOWN_SCHEMA",
                f"cannot tell the schema of record {item.row + 1} (keys: {keys}); "
                "use messages, conversations, instruction/output, prompt/completion, prompt/chosen/rejected, "
                "a Qianfan turn array or text, or declare the schema",
                item.line,
            )
    if schema not in ACCEPTS[kind]:
        raise FileProblem(
            "WRONG_KIND",
            f"{schema.value} records do not fit a `{kind.value}` dataset"
            + (
                "; conversations belong in an sft, preference or eval dataset"
                if kind == Kind.TEXT
                else "; text records belong in a text dataset"
            ),
            item.line,
        )
    return schema


def _schema_changed(item: Record, schema: Schema, first_line: int) -> str | None:
    """Why a record that failed may be another layout than the file's first record."""
    other = detect_schema(item.value)
    if other is None or other == schema:
        return None
    keys = sorted(item.value)[:6] if isinstance(item.value, dict) else "an array of turns"
    start = f"line {first_line}" if first_line else "the first record"
    return (
        f"this record is laid out as {other.value} ({keys}) but the file began as {schema.value} "
        f"({start}); one file holds one layout: split it, or declare the schema"
    )


def _row_of(
    item: Record,
    schema: Schema,
    kind: Kind,
    options: IngestOptions,
    result: IngestResult,
    seen_ids: dict[str, int],
) -> Row | None:
    """One record as a canonical row; None (its error recorded) when it is bad."""
    assert result.format is not None
    filename = options.filename
    record_id = _record_id(item, filename, result.format)
    if isinstance(record_id, RowError):
        result.errors.append(record_id)
        return None
    try:
        row = CONVERTERS[schema](item.value, kind)
    except Problem as problem:
        field_name, message = _named_in_file(problem, options.columns)
        reason = problem.reason
        changed = None if options.schema else _schema_changed(item, schema, result.first_line)
        if changed:
            field_name, reason, message = "", "SCHEMA_CHANGED", changed
        result.errors.append(RowError(filename, item.line, item.row, field_name, reason, message))
        return None
    if record_id in seen_ids:
        result.errors.append(
            RowError(
                filename,
                item.line,
                item.row,
                "id",
                "DUPLICATE_ID",
                f"id {record_id!r} was already used by record {seen_ids[record_id] + 1}",
            )
        )
        return None
    seen_ids[record_id] = item.row
    return {"id": record_id, **row}


def ingest_file(path: Path, kind: Kind, options: IngestOptions, limits: Limits | None = None) -> IngestResult:
    """Read `path` as `options` says (detecting what is not declared) into canonical rows of `kind`."""
    limits = limits or Limits()
    filename = options.filename
    result = IngestResult()
    try:
        with open_bytes(path, limits) as stream:
            head = stream.read(64 * 1024)
        result.format = options.format or detect_format(filename, head)
        if result.format == Format.TEXT and kind != Kind.TEXT:
            raise FileProblem(
                "WRONG_KIND", f"plain text files make `text` datasets; this dataset is `{kind.value}`"
            )
        schema = options.schema
        seen_ids: dict[str, int] = {}
        reader = (
            functools.partial(read_text, split=options.text_split)
            if result.format == Format.TEXT
            else READERS[result.format]
        )
        for item in reader(path, filename, limits):
            result.records += 1
            if isinstance(item, RowError):
                result.errors.append(item)
                continue
            if options.columns and result.records == 1:
                _check_mapped_columns(item, options.columns)
            item = Record(item.line, item.row, mapped(item.value, options.columns))
            if schema is None:
                result.first_line = item.line
            schema = result.schema = _schema_of(item, schema, kind)
            row = _row_of(item, schema, kind, options, result, seen_ids)
            if row is not None:
                result.rows.append(row)
                result.characters += characters(row, kind)
    except FileProblem as problem:
        result.file_problem = RowError(filename, problem.line, 0, "", problem.reason, problem.message)
        result.errors.append(result.file_problem)
        result.rows = []
        result.characters = 0
        return result
    if not result.rows and not result.errors:
        result.file_problem = RowError(filename, 0, 0, "", "EMPTY_FILE", f"{filename} holds no records")
        result.errors.append(result.file_problem)
    result.errors = [_numbered(e, result.format) for e in result.errors]
    result.warnings = flags.scan(result.rows, kind)
    return result


def _numbered(error: RowError, fmt: Format | None) -> RowError:
    """Errors of formats without one record per line name the record (1-based, as row ids do)."""
    if fmt not in (Format.JSON, Format.PARQUET):
        return error
    message = f"record {error.row + 1}: {error.message}"
    return RowError(error.file, error.line, error.row, error.field, error.reason, message)


def summarize(errors: list[RowError], examples: int = 20) -> tuple[dict[str, int], list[RowError]]:
    """Counts by reason and the first examples."""
    counts: dict[str, int] = {}
    for error in errors:
        counts[error.reason] = counts.get(error.reason, 0) + 1
    return counts, list(itertools.islice(errors, examples))
