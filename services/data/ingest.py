"""Validate and normalize one uploaded file into canonical rows, naming every bad row.

Pure and synchronous: the data service runs it on a worker thread and stores what it returns.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from services.data.formats import (
    READERS,
    FileProblem,
    Format,
    Limits,
    Record,
    RowError,
    detect_format,
    open_bytes,
)
from services.data.schemas import ACCEPTS, CONVERTERS, Problem, Schema, detect_schema
from services.kit.rows import Kind, Row, characters

MAX_ID_LENGTH = 200


class Policy(StrEnum):
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class IngestOptions:
    filename: str
    format: Format | None = None
    schema: Schema | None = None
    policy: Policy = Policy.FAIL


@dataclass
class IngestResult:
    rows: list[Row] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    format: Format | None = None
    schema: Schema | None = None
    characters: int = 0
    records: int = 0
    file_problem: RowError | None = None

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
    return f"{filename}#{record.row}" if fmt in (Format.PARQUET, Format.JSON) else f"{filename}:{record.line}"


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


def _row_of(
    item: Record, schema: Schema, kind: Kind, filename: str, result: IngestResult, seen_ids: dict[str, int]
) -> Row | None:
    """One record as a canonical row; None (its error recorded) when it is bad."""
    assert result.format is not None
    record_id = _record_id(item, filename, result.format)
    if isinstance(record_id, RowError):
        result.errors.append(record_id)
        return None
    try:
        row = CONVERTERS[schema](item.value, kind)
    except Problem as problem:
        result.errors.append(
            RowError(filename, item.line, item.row, problem.field, problem.reason, problem.message)
        )
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
        for item in READERS[result.format](path, filename, limits):
            result.records += 1
            if isinstance(item, RowError):
                result.errors.append(item)
                continue
            schema = result.schema = _schema_of(item, schema, kind)
            row = _row_of(item, schema, kind, filename, result, seen_ids)
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
    return result


def summarize(errors: list[RowError], examples: int = 20) -> tuple[dict[str, int], list[RowError]]:
    """Counts by reason and the first examples."""
    counts: dict[str, int] = {}
    for error in errors:
        counts[error.reason] = counts.get(error.reason, 0) + 1
    return counts, list(itertools.islice(errors, examples))
