"""An augmentation run, done by a data worker: the operation over every unit of work with the
teacher's concurrency, progress stored every second, the filters, and the new version.

Crash-safe by construction: every reply is cached by its request (`teacher_calls.py`), so a run that
is delivered again after its worker died redoes its units from the cache and calls the teacher only
for what it had not received. The kept rows and the rejects are staged in S3 under the run, then
one transaction records the output version (made from the staged files like any version) and the
run's end; until then nothing of the run is visible as data.

A cancelled run stops starting units, abandons the ones in flight, and keeps what is done: a
version of the rows finished so far (when there are any), and every cached reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx2 as httpx
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.data.augment_convert import emit_run, run_name
from services.data.augment_filters import Filters, Generated, Rejected, dedup
from services.data.augment_ops import Operation, Parameters, Unit
from services.data.catalog import read_version_rows
from services.data.repo import AugmentationRunRow, DatasetVersionRow, TeacherReplyRow, TeacherRow
from services.data.teacher_calls import (
    CallCounts,
    Reply,
    ReplyCache,
    ReplyError,
    TeacherCalls,
    TeacherEndpoint,
    TeacherUnusable,
)
from services.data.versions import NewVersion, accept_version_in
from services.kit.db import Database
from services.kit.outbox import Outbox
from services.kit.rows import Kind, Row, to_parquet_bytes
from services.kit.sealing import SealBroken, SecretBox
from services.kit.store import ObjectStore
from services.kit.times import utcnow

log = logging.getLogger(__name__)
PROGRESS_SECONDS = 1.0
MAX_EXAMPLES = 20
# This many units in a row failing with TEACHER_UNAVAILABLE, and none succeeding, stop the run.
UNAVAILABLE_STREAK = 16


@dataclass(frozen=True)
class TeacherAccess:
    """How a data worker reaches teachers: the serve service's OpenAI API for deployments (with the
    worker's own key and the project's header), the sealed key for other endpoints."""

    serve_openai_endpoint: str
    worker_key: str
    box: SecretBox

    def endpoint(self, row: TeacherRow) -> TeacherEndpoint:
        limits = row.limits
        common = {
            "uid": row.uid,
            "model": row.model,
            "max_concurrency": limits["max_concurrency"],
            "requests_per_minute": limits["requests_per_minute"],
            "timeout_seconds": limits["timeout_seconds"],
            "max_retries": limits["max_retries"],
            "input_cost_per_million_tokens": limits["input_cost_per_million_tokens"],
            "output_cost_per_million_tokens": limits["output_cost_per_million_tokens"],
        }
        if row.deployment:
            if not self.serve_openai_endpoint:
                raise TeacherUnusable(
                    "SERVE_NOT_CONFIGURED",
                    "this data worker does not know the serve service's OpenAI API "
                    "(TUNEFORGE_SERVE_OPENAI_ENDPOINT), so it cannot reach deployments",
                )
            return TeacherEndpoint(
                base_url=self.serve_openai_endpoint,
                api_key=self.worker_key,
                headers={"OpenAI-Project": row.project},
                **common,
            )
        try:
            key = self.box.open(row.sealed_api_key, row.uid) if row.sealed_api_key else ""
        except SealBroken as error:
            raise TeacherUnusable(
                "TEACHER_KEY_UNREADABLE", f"the teacher's stored key cannot be opened ({error}); set it again"
            ) from None
        return TeacherEndpoint(base_url=row.base_url, api_key=key, **common)


def sql_cache(db: Database, project: str, teacher_uid: str) -> ReplyCache:
    """Replies kept in the data service's database, one row per request."""

    async def get(key: str) -> Reply | None:
        row = await db.run(lambda s: s.get(TeacherReplyRow, key))
        if row is None:
            return None
        return Reply(row.text, row.prompt_tokens, row.completion_tokens, row.finish_reason)

    async def put(key: str, reply: Reply) -> None:
        def insert(session: Session) -> None:
            session.add(
                TeacherReplyRow(
                    key=key,
                    project=project,
                    teacher_uid=teacher_uid,
                    text=reply.text,
                    prompt_tokens=reply.prompt_tokens,
                    completion_tokens=reply.completion_tokens,
                    finish_reason=reply.finish_reason[:32],
                    create_time=utcnow(),
                )
            )

        with contextlib.suppress(IntegrityError):  # the same request answered twice: keep the first
            await db.run(insert)

    return ReplyCache(get, put)


@dataclass
class Tally:
    """What the run has done so far (the progress it stores)."""

    total: int
    done: int = 0
    failed: int = 0
    generated: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    examples: list[dict[str, str]] = field(default_factory=list)
    unavailable_streak: int = 0

    def progress(self, counts: CallCounts, kept: int = 0) -> dict[str, Any]:
        return {
            "rows_total": self.total,
            "rows_done": self.done,
            "rows_failed": self.failed,
            "calls": counts.calls,
            "cached_calls": counts.cached_calls,
            "retries": counts.retries,
            "prompt_tokens": counts.prompt_tokens,
            "completion_tokens": counts.completion_tokens,
            "cost_estimate": round(counts.cost, 6),
            "generated_rows": self.generated,
            "kept_rows": kept,
            "dropped_by_reason": dict(self.dropped),
        }

    def fail(self, row_id: str, reason: str, message: str) -> None:
        self.failed += 1
        self.errors[reason] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append({"row_id": row_id[:200], "reason": reason, "message": message[:500]})


class AugmentationRunner:
    def __init__(
        self, db: Database, store: ObjectStore, outbox: Outbox, access: TeacherAccess, http: httpx.AsyncClient
    ) -> None:
        self.db = db
        self.store = store
        self.outbox = outbox
        self.access = access
        self.http = http

    async def _start(self, uid: str) -> AugmentationRunRow | None:
        def start(session: Session) -> AugmentationRunRow | None:
            row = session.get(AugmentationRunRow, uid, with_for_update=True)
            if row is None or row.state not in ("pending", "running"):
                return None
            if row.state == "pending":
                row.state, row.update_time = "running", utcnow()
                session.flush()
                emit_run(self.outbox, session, row, "running")
            session.expunge(row)
            return row

        return await self.outbox.write(self.db, start)

    async def _end(
        self, uid: str, state: str, changes: dict[str, Any], version: NewVersion | None = None
    ) -> None:
        """Record the run's end (with its output version, in the same transaction)."""

        def end(session: Session) -> None:
            row = session.get(AugmentationRunRow, uid, with_for_update=True)
            if row is None or row.state not in ("pending", "running"):
                return
            if version is not None:
                made = accept_version_in(session, self.outbox, row.output_dataset_uid, version)
                row.output_version_uid = made.uid
                row.output_version = f"{row.output_dataset}/versions/{made.number}"
            for key, value in changes.items():
                setattr(row, key, value)
            row.state, row.update_time = state, utcnow()
            session.flush()
            emit_run(self.outbox, session, row, state)

        await self.outbox.write(self.db, end)

    async def fail(self, uid: str, reason: str, message: str) -> None:
        await self._end(uid, "failed", {"failure_reason": reason, "failure_message": message[:4000]})

    async def run(self, uid: str) -> None:
        row = await self._start(uid)
        if row is None:
            return  # cancelled, ended or deleted meanwhile
        source = await self.db.run(lambda s: s.get(DatasetVersionRow, row.source_uid))
        teachers = await self.db.run(
            lambda s: {
                t.uid: t
                for t in s.scalars(
                    select(TeacherRow).where(TeacherRow.uid.in_([row.teacher_uid, row.judge_uid]))
                )
            }
        )
        if source is None or source.state != "ready":
            await self.fail(uid, "SOURCE_DELETED", f"{row.source} was deleted before the run could read it")
            return
        if row.teacher_uid not in teachers or row.judge_uid not in teachers:
            await self.fail(uid, "TEACHER_DELETED", "the run's teacher or judge was deleted")
            return
        spec = row.spec
        params = Parameters.from_dict(spec["parameters"])
        filters = Filters.from_dict(spec["filters"])
        source_kind = Kind(spec["source_kind"])
        rows = await read_version_rows(self.store, source)
        if params.max_rows:
            rows = rows[: params.max_rows]
        counts = CallCounts()
        try:
            calls = {
                t_uid: TeacherCalls(
                    row.project,
                    self.access.endpoint(t),
                    sql_cache(self.db, row.project, t_uid),
                    counts,
                    self.http,
                )
                for t_uid, t in teachers.items()
            }
        except TeacherUnusable as error:
            await self.fail(uid, error.reason, error.message)
            return
        operation = Operation(
            name=row.operation,
            source_kind=source_kind,
            out_kind=params.output_kind,
            params=params,
            filters=filters,
            templates=spec["templates"],
            teacher=calls[row.teacher_uid],
            judge=calls[row.judge_uid],
            seeds=rows,
        )
        tally = Tally(total=operation.units(rows))
        width = min(512, 2 * max(c.endpoint.max_concurrency for c in calls.values()))
        units, cancelled, unusable = await self._work(uid, operation, rows, tally, counts, width)
        if unusable is not None:
            await self._end(
                uid,
                "failed",
                {
                    "failure_reason": unusable.reason,
                    "failure_message": unusable.message[:4000],
                    "progress": tally.progress(counts),
                    "errors_by_reason": dict(tally.errors),
                    "error_examples": tally.examples,
                },
            )
            return
        await self._finish(row, operation, rows, units, tally, counts, cancelled)

    async def _work(
        self, uid: str, operation: Operation, rows: list[Row], tally: Tally, counts: CallCounts, width: int
    ) -> tuple[dict[int, Unit], bool, TeacherUnusable | None]:
        """Every unit, `width` at a time; stops early on a cancellation or an unusable teacher."""
        units: dict[int, Unit] = {}
        pending = iter(range(tally.total))
        stop = asyncio.Event()
        unusable: list[TeacherUnusable] = []

        async def worker() -> None:
            for index in pending:
                if stop.is_set():
                    return
                try:
                    units[index] = unit = await operation.run(index, rows)
                except ReplyError as error:
                    tally.fail(_unit_id(operation, rows, index), error.reason, error.message)
                    tally.unavailable_streak = (
                        tally.unavailable_streak + 1 if error.reason == "TEACHER_UNAVAILABLE" else 0
                    )
                    if tally.unavailable_streak >= UNAVAILABLE_STREAK:
                        unusable.append(
                            TeacherUnusable(
                                "TEACHER_UNAVAILABLE",
                                f"{tally.unavailable_streak} rows in a row failed with the teacher unavailable "
                                f"(last: {error.message})",
                            )
                        )
                        stop.set()
                else:
                    tally.unavailable_streak = 0
                    tally.generated += len(unit.generated) + len(unit.rejected)
                    tally.dropped.update(r.reason for r in unit.rejected)
                tally.done += 1

        async def guarded() -> None:
            try:
                await worker()
            except TeacherUnusable as error:
                unusable.append(error)
                stop.set()

        tasks = [asyncio.create_task(guarded()) for _ in range(min(width, max(tally.total, 1)))]
        everything = asyncio.gather(*tasks)
        cancelled = False
        try:
            while not everything.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(everything), PROGRESS_SECONDS)
                if stop.is_set() or everything.done():
                    break
                if await self._report(uid, tally, counts):
                    cancelled = True
                    break
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return units, cancelled, (unusable[0] if unusable else None)

    async def _report(self, uid: str, tally: Tally, counts: CallCounts) -> bool:
        """Store the progress; True when a cancellation was asked for."""

        def report(session: Session) -> bool:
            row = session.get(AugmentationRunRow, uid, with_for_update=True)
            if row is None or row.state != "running":
                return True
            row.progress = tally.progress(counts)
            row.errors_by_reason, row.error_examples = dict(tally.errors), tally.examples
            row.update_time = utcnow()
            session.flush()
            emit_run(self.outbox, session, row, "progress")
            return row.cancel_requested

        return await self.outbox.write(self.db, report)

    async def _finish(
        self,
        row: AugmentationRunRow,
        operation: Operation,
        rows: list[Row],
        units: dict[int, Unit],
        tally: Tally,
        counts: CallCounts,
        cancelled: bool,
    ) -> None:
        """Dedup, stage the kept rows and the rejects, and end the run with its version."""
        generated: list[Generated] = [g for i in sorted(units) for g in units[i].generated]
        rejected: list[Rejected] = [r for i in sorted(units) for r in units[i].rejected]
        kept, duplicates = await asyncio.to_thread(
            dedup, generated, operation.out_kind, rows, operation.source_kind, operation.filters
        )
        rejected += duplicates
        tally.dropped.update(r.reason for r in duplicates)
        changes: dict[str, Any] = {
            "progress": tally.progress(counts, kept=len(kept)),
            "errors_by_reason": dict(tally.errors),
            "error_examples": tally.examples,
        }
        files: dict[str, dict[str, Any]] = {}
        if rejected:
            lines = "".join(json.dumps(r.as_dict(), ensure_ascii=False) + "\n" for r in rejected)
            files["rejects.jsonl"] = await self._stage(
                row, "rejects.jsonl", lines.encode(), "application/x-ndjson"
            )
            changes["rejects"] = {k: files["rejects.jsonl"][k] for k in ("sha256", "size_bytes")}
        if not kept:
            if cancelled:
                await self._end(row.uid, "cancelled", changes)
            else:
                await self._end(row.uid, "failed", {**changes, **_nothing_kept(tally)})
            return
        out_rows = [*(rows if operation.params.include_source else []), *(g.row for g in kept)]
        data = await asyncio.to_thread(to_parquet_bytes, out_rows, operation.out_kind)
        files["data.parquet"] = await self._stage(row, "data.parquet", data, "application/octet-stream")
        version = NewVersion(
            kind=operation.out_kind,
            task={"op": "staged", "files": files},
            recipe=_recipe(row, operation, rows, tally, len(kept), cancelled),
            source_file=f"augmentation {row.operation} of {row.source}",
            description=row.description,
        )
        await self._end(row.uid, "cancelled" if cancelled else "succeeded", changes, version)

    async def _stage(
        self, row: AugmentationRunRow, path: str, data: bytes, content_type: str
    ) -> dict[str, Any]:
        stored = await self.store.put_bytes(row.storage_prefix + path, data, content_type)
        return {"key": row.storage_prefix + path, "sha256": stored.sha256, "size_bytes": stored.size_bytes}


def _nothing_kept(tally: Tally) -> dict[str, str]:
    """Why a run that kept no row failed: every unit failed, or the filters dropped everything."""
    if tally.failed and tally.failed == tally.done:
        reason = tally.errors.most_common(1)[0][0]
        counts = ", ".join(f"{k}: {v}" for k, v in tally.errors.items())
        first = tally.examples[0]["message"] if tally.examples else ""
        return {"failure_reason": reason, "failure_message": f"every row failed ({counts}); first: {first}"}
    dropped = ", ".join(f"{k}: {v}" for k, v in sorted(tally.dropped.items()))
    return {
        "failure_reason": "EMPTY_RESULT",
        "failure_message": f"the filters dropped every generated row ({dropped}); "
        "the rejects file has each with its reason",
    }


def _recipe(
    row: AugmentationRunRow, operation: Operation, rows: list[Row], tally: Tally, kept: int, cancelled: bool
) -> dict[str, Any]:
    """The output version's lineage: the run, its source, teacher and judge (never a key),
    templates, parameters, filters and counts."""
    return {
        "op": "augmentation",
        "augmentation_run": run_name(row),
        "operation": row.operation,
        "source": row.source,
        "teacher": _teacher_facts(row.spec["teacher"], operation.teacher),
        "judge": _teacher_facts(row.spec["judge"], operation.judge),
        "templates": row.spec["templates"],
        "parameters": row.spec["parameters"],
        "filters": row.spec["filters"],
        "counts": {
            "units": tally.total,
            "units_done": tally.done,
            "units_failed": tally.failed,
            "generated": tally.generated,
            "kept": kept,
            "source_rows_included": len(rows) if operation.params.include_source else 0,
            "dropped_by_reason": dict(tally.dropped),
        },
        **({"cancelled": True} if cancelled else {}),
    }


def _teacher_facts(name: str, calls: Any) -> dict[str, Any]:
    """What the lineage says of a teacher: its name, where and which model (never its key)."""
    endpoint = calls.endpoint
    return {"name": name, "base_url": endpoint.base_url, "model": endpoint.model}


def _unit_id(operation: Operation, rows: list[Row], index: int) -> str:
    return f"self-instruct:{index}" if operation.name == "self_instruct" else str(rows[index]["id"])
