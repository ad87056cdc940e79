"""The long work of the data service, done by data workers: making a PROCESSING version (ingest,
preset, cleaning, split, mixture), computing an insight, materializing a mixture for training.

Each task is idempotent: it writes under the resource's own prefix (a redelivered task overwrites
the same keys) and changes the row only while it is still unfinished, in one transaction with its
event. CPU work runs on a thread, off the worker's event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from services.data import cleaning, flags, insight, mixing, presets
from services.data.annotating import Annotating, finished_rows
from services.data.augment_runs import AugmentationRunner
from services.data.catalog import DataCatalog, read_version_rows
from services.data.formats import Format, Limits, RowError, TextSplit
from services.data.ingest import IngestOptions, Policy, ingest_file, summarize
from services.data.insights import emit_insight, insight_prefix
from services.data.mixtures import emit_mixture, plan_dict
from services.data.repo import DatasetInsightRow, DatasetVersionRow, MixtureRow
from services.data.schemas import Schema
from services.data.versions import emit_version
from services.kit.access import Access
from services.kit.db import Database
from services.kit.errors import ResourceExhausted
from services.kit.outbox import Outbox
from services.kit.peers import Peers
from services.kit.rows import Kind, Row, characters, from_parquet_bytes, to_parquet_bytes
from services.kit.store import ObjectStore
from services.kit.times import utcnow


class TaskFailed(Exception):
    """The task can never succeed: the resource is marked FAILED with this reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class Made:
    """What a version task produced."""

    rows: list[Row] = field(default_factory=list)
    failed: bool = False
    errors: list[RowError] = field(default_factory=list)
    skipped: int = 0
    source_format: str = ""
    source_schema: str = ""
    # The source file to keep: the local copy, its path under the version, and where it is stored
    # now with its size and sha256 (empty when only the local copy exists).
    source: Path | None = None
    source_path: str = ""
    source_key: str = ""
    source_entry: dict[str, Any] = field(default_factory=dict)
    cleaning: list[dict[str, Any]] = field(default_factory=list)
    recipe: dict[str, Any] = field(default_factory=dict)
    # More files of the version, by path (an augmentation's `rejects.jsonl`).
    extra_files: dict[str, bytes] = field(default_factory=dict)


class _Outbound:
    """The catalog-like object `emit_*` helpers take."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox


class Tasks:
    def __init__(
        self,
        db: Database,
        store: ObjectStore,
        outbox: Outbox,
        peers: Peers,
        work_dir: Path,
        *,
        augmentation: AugmentationRunner | None = None,
        annotating: Annotating | None = None,
        access: Access | None = None,
    ) -> None:
        self.access = access
        self.db = db
        self.store = store
        self.outbox = outbox
        self.peers = peers
        self.work_dir = work_dir
        self.augmentation = augmentation
        self.annotating = annotating
        self._events = _Outbound(outbox)

    async def run(self, task: str, uid: str) -> None:
        handler: dict[str, Callable[[str], Awaitable[None]]] = {
            "version": self.make_version,
            "insight": self.compute_insight,
            "mixture": self.materialize,
        }
        if self.augmentation is not None:
            handler["augmentation"] = self.augmentation.run
        if self.annotating is not None:
            handler["annotation"] = self.annotating.prelabel
        await handler[task](uid)

    async def fail(self, task: str, uid: str, reason: str, message: str) -> None:
        """Mark the resource FAILED (a task that kept failing, or could never succeed)."""
        if task == "augmentation" and self.augmentation is not None:
            await self.augmentation.fail(uid, reason, message)
            return
        if task == "annotation" and self.annotating is not None:
            await self.annotating.fail(uid, reason, message)
            return
        row_type: Any = {"version": DatasetVersionRow, "insight": DatasetInsightRow, "mixture": MixtureRow}[
            task
        ]
        emit: Callable[[Any, Session, Any, str], Any] = {
            "version": emit_version,
            "insight": emit_insight,
            "mixture": emit_mixture,
        }[task]

        def mark(session: Session) -> None:
            row = session.get(row_type, uid, with_for_update=True)
            if row is None or row.state in ("ready", "failed"):
                return
            row.state, row.failure_reason, row.failure_message = "failed", reason, message[:4000]
            row.update_time = utcnow()
            session.flush()
            emit(self._events, session, row, "failed")

        await self.outbox.write(self.db, mark)

    # -- versions ------------------------------------------------------------------------------

    async def make_version(self, uid: str) -> None:
        row = await self.db.run(lambda s: s.get(DatasetVersionRow, uid))
        if row is None or row.state != "processing":
            return  # deleted meanwhile, or already made by an earlier delivery
        with tempfile.TemporaryDirectory(dir=self.work_dir) as tmp:
            try:
                made = await self._make(row, Path(tmp))
            except TaskFailed as failure:
                await self.fail("version", uid, failure.reason, failure.message)
                return
            await self._store_version(row, made)

    async def _make(self, row: DatasetVersionRow, tmp: Path) -> Made:
        task, kind = row.task, Kind(row.kind)
        if task["op"] in ("ingest", "preset"):
            return await self._ingest(row, task, kind, tmp)
        if task["op"] == "clean":
            rows = await self._source_rows(task["source"])
            operations = [cleaning.Operation(o["name"], o["params"]) for o in task["operations"]]
            try:
                kept, reports = await asyncio.to_thread(cleaning.run_pipeline, rows, kind, operations)
            except cleaning.StepFailed as failure:
                raise TaskFailed(failure.reason, failure.message) from None
            if not kept:
                raise TaskFailed(
                    "EMPTY_RESULT", "the pipeline removed every row; nothing would be left to train on"
                )
            return Made(rows=kept, cleaning=[r.__dict__ for r in reports])
        if task["op"] == "split":
            rows = await self._source_rows(task["source"])
            train, validation = await asyncio.to_thread(mixing.split, rows, task["ratio"], task["seed"])
            return Made(rows=train if task["part"] == "train" else validation)
        if task["op"] == "mixture":
            rows, plan = await self._mix(task["sources"], kind, task["seed"])
            return Made(rows=rows, recipe={**row.recipe, "plan": plan})
        if task["op"] == "annotation":
            try:
                _, rows, labels_file = await self.db.run(
                    lambda s: finished_rows(s, task["task_uid"], task["options"])
                )
            except LookupError as error:
                raise TaskFailed("TASK_DELETED", str(error)) from None
            if not rows:
                raise TaskFailed("EMPTY_RESULT", "the reviews keep no row")
            return Made(rows=rows, extra_files={"labels.jsonl": labels_file})
        if task["op"] == "staged":
            # Rows a data worker already made and staged (an augmentation run, an annotation task).
            files = {}
            for path, entry in task["files"].items():
                files[path] = b"".join(
                    [
                        chunk
                        async for chunk in self.store.iter_verified(
                            entry["key"], sha256=entry["sha256"], size_bytes=entry["size_bytes"], label=path
                        )
                    ]
                )
            rows = await asyncio.to_thread(from_parquet_bytes, files.pop("data.parquet"))
            return Made(rows=rows, extra_files=files)
        raise TaskFailed("UNKNOWN_TASK", f"no data worker knows the task {task['op']!r}")

    async def _ingest(self, row: DatasetVersionRow, task: dict[str, Any], kind: Kind, tmp: Path) -> Made:
        if task["op"] == "preset":
            filename = f"{task['dataset']}.jsonl"
            options = IngestOptions(filename=filename, schema=Schema.CANONICAL, policy=Policy.FAIL)
            path = tmp / filename
            generated = await asyncio.to_thread(presets.rows_of, task["preset"], task["dataset"])
            await asyncio.to_thread(
                path.write_text, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in generated), "utf-8"
            )
            limits = Limits()
            stored: dict[str, Any] = {}
        else:
            o = task["options"]
            options = IngestOptions(
                filename=o["filename"],
                format=Format(o["format"]) if o.get("format") else None,
                schema=Schema(o["schema"]) if o.get("schema") else None,
                policy=Policy(o["policy"]),
                columns=o.get("columns") or {},
                text_split=TextSplit(o.get("text_split") or TextSplit.BLANK_LINE),
            )
            path = tmp / options.filename
            source = task["source"]
            await self.store.get_file(
                source["key"],
                path,
                sha256=source["sha256"],
                size_bytes=source["size_bytes"],
                label=options.filename,
            )
            limits = Limits(**task["limits"])
            stored = source
        result = await asyncio.to_thread(ingest_file, path, kind, options, limits)
        failed = result.failed_under(options.policy)
        return Made(
            rows=[] if failed else result.rows,
            failed=failed,
            errors=result.errors,
            skipped=0 if failed else len(result.errors),
            source_format=result.format.value if result.format else "",
            source_schema=result.schema.value if result.schema else "",
            source=path,
            source_path=f"source/{options.filename}",
            source_key=stored.get("key", ""),
            source_entry={"size_bytes": stored["size_bytes"], "sha256": stored["sha256"]} if stored else {},
        )

    async def _source_rows(self, version_uid: str) -> list[Row]:
        source = await self.db.run(lambda s: s.get(DatasetVersionRow, version_uid))
        if source is None or source.state != "ready":
            raise TaskFailed("SOURCE_DELETED", "the version this one is made from was deleted meanwhile")
        return await read_version_rows(self.store, source)

    async def _mix(
        self, sources: list[dict[str, Any]], kind: Kind, seed: int
    ) -> tuple[list[Row], dict[str, Any]]:
        loaded = [
            mixing.Source(s["label"], await self._source_rows(s["version_uid"]), s["sampling_rate"])
            for s in sources
        ]
        plans = await asyncio.to_thread(mixing.plan, loaded, kind, seed)
        rows = await asyncio.to_thread(mixing.materialize, loaded, plans, seed)
        return rows, plan_dict(plans, [s["dataset_version"] for s in sources], kind, seed)

    async def _put(self, key: str, data: bytes, content_type: str, path: str) -> dict[str, Any]:
        stored = await self.store.put_bytes(key, data, content_type)
        return {"path": path, "size_bytes": stored.size_bytes, "sha256": stored.sha256}

    async def _check_storage(self, row: DatasetVersionRow, adding: int) -> None:
        """TaskFailed (STORAGE_QUOTA) when the version would pass its project's storage quota."""
        if self.access is None:
            return
        project = row.dataset.project
        own = (await self.db.run(lambda s: DataCatalog.project_bytes(s, project))).get(project, 0)
        try:
            await self.access.check_storage(project, "data", own, adding, "version")
        except ResourceExhausted as error:
            raise TaskFailed("STORAGE_QUOTA", error.message) from None

    async def _store_version(self, row: DatasetVersionRow, made: Made) -> None:
        """Write the files, then mark the version READY or FAILED with its event in one transaction."""
        prefix, kind = row.storage_prefix, Kind(row.kind)
        files: list[dict[str, Any]] = []
        if not made.failed:
            data = await asyncio.to_thread(to_parquet_bytes, made.rows, kind)
            try:
                await self._check_storage(row, len(data) + sum(map(len, made.extra_files.values())))
            except TaskFailed as failure:
                await self.fail("version", row.uid, failure.reason, failure.message)
                return
            files.append(
                await self._put(prefix + "data.parquet", data, "application/octet-stream", "data.parquet")
            )
        for path, data in made.extra_files.items():
            files.append(await self._put(prefix + path, data, "application/x-ndjson", path))
        if made.errors:
            lines = "".join(json.dumps(e.as_dict(), ensure_ascii=False) + "\n" for e in made.errors).encode()
            files.append(
                await self._put(prefix + "errors.jsonl", lines, "application/x-ndjson", "errors.jsonl")
            )
        copied_from = ""
        if made.source is not None:
            key = prefix + made.source_path
            entry = made.source_entry
            if made.source_key != key:  # generated here, or uploaded before sessions shared the prefix
                await self.store.put_file(key, made.source)
                copied_from = made.source_key
            if not entry:
                data = await asyncio.to_thread(made.source.read_bytes)
                entry = {"size_bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            files.append({"path": made.source_path, **entry})
        counts, examples = summarize(made.errors)
        warnings = [] if made.failed else await asyncio.to_thread(flags.scan, made.rows, kind)
        total = sum(characters(r, kind) for r in made.rows) if not made.failed else 0
        recipe = made.recipe or row.recipe
        manifest = {
            "kind": kind.value,
            "state": "failed" if made.failed else "ready",
            "rows": 0 if made.failed else len(made.rows),
            "characters": total,
            "source": {"file": row.source_file, "format": made.source_format, "schema": made.source_schema},
            "errors": {"count": len(made.errors), "by_reason": counts},
            "warnings": warnings,
            "recipe": recipe,
            "files": list(files),
        }
        body = json.dumps(manifest, ensure_ascii=False, indent=1).encode()
        files.append(await self._put(prefix + "manifest.json", body, "application/json", "manifest.json"))

        def commit(session: Session) -> bool:
            current = session.get(DatasetVersionRow, row.uid, with_for_update=True)
            if current is None:
                return False
            if current.state != "processing":
                return True
            current.state = "failed" if made.failed else "ready"
            current.row_count, current.character_count = manifest["rows"], total
            current.skipped_row_count, current.error_count = made.skipped, len(made.errors)
            current.errors_by_reason, current.error_examples = counts, [e.as_dict() for e in examples]
            current.source_format, current.source_schema = made.source_format, made.source_schema
            current.files, current.recipe, current.cleaning = files, recipe, made.cleaning
            current.warnings = warnings
            current.update_time = utcnow()
            session.flush()
            emit_version(self._events, session, current, current.state)
            return True

        if not await self.outbox.write(self.db, commit):
            await self.store.delete_prefix(prefix)  # deleted while it was being made
        elif copied_from:
            await self.store.delete(copied_from)

    # -- insights ------------------------------------------------------------------------------

    async def _start(self, row_type: Any, uid: str, emit: Callable[..., Any]) -> Any:
        """Mark a PENDING insight or mixture RUNNING; None when there is nothing to do."""

        def start(session: Session) -> Any:
            row = session.get(row_type, uid, with_for_update=True)
            if row is None or row.state in ("ready", "failed"):
                return None
            if row.state != "running":
                row.state, row.update_time = "running", utcnow()
                session.flush()
                emit(self._events, session, row, "running")
            session.expunge(row)
            return row

        return await self.outbox.write(self.db, start)

    async def compute_insight(self, uid: str) -> None:
        row = await self._start(DatasetInsightRow, uid, emit_insight)
        if row is None:
            return
        version = row.version
        rows = await read_version_rows(self.store, version)
        tokenizer = None
        if row.tokenizer:
            from tokenizers import Tokenizer

            with tempfile.TemporaryDirectory(dir=self.work_dir) as tmp:
                await self.peers.download_model(row.tokenizer, Path(tmp), ["tokenizer.json"])
                tokenizer = Tokenizer.from_file(str(Path(tmp) / "tokenizer.json"))
        report = await asyncio.to_thread(
            insight.compute,
            rows,
            Kind(version.kind),
            tokenizer=tokenizer,
            tokenizer_name=row.tokenizer,
            max_sequence_length=row.max_sequence_length,
        )
        images = await asyncio.to_thread(insight.charts, report)
        prefix = insight_prefix(version, row.key)
        await self.store.put_bytes(
            prefix + "insight.json",
            json.dumps(report, ensure_ascii=False, indent=1).encode(),
            "application/json",
        )
        for image_name, png in images.items():
            await self.store.put_bytes(prefix + image_name, png, "image/png")

        def finish(session: Session) -> None:
            current = session.get(DatasetInsightRow, uid, with_for_update=True)
            if current is not None and current.state == "running":
                current.state, current.charts, current.update_time = "ready", sorted(images), utcnow()
                session.flush()
                emit_insight(self._events, session, current, "ready")

        await self.outbox.write(self.db, finish)

    # -- materialized mixtures -----------------------------------------------------------------

    async def materialize(self, uid: str) -> None:
        row = await self._start(MixtureRow, uid, emit_mixture)
        if row is None:
            return
        kind = Kind(row.kind)
        try:
            rows, plan = await self._mix(row.sources, kind, row.seed)
        except TaskFailed as failure:
            await self.fail("mixture", uid, failure.reason, failure.message)
            return
        train, validation = rows, []
        if row.validation_ratio:
            train, validation = await asyncio.to_thread(mixing.split, rows, row.validation_ratio, row.seed)
        files = []
        for name, part in (("train.parquet", train), ("validation.parquet", validation)):
            if part or name == "train.parquet":
                data = await asyncio.to_thread(to_parquet_bytes, part, kind)
                files.append(
                    await self._put(row.storage_prefix + name, data, "application/octet-stream", name)
                )

        def finish(session: Session) -> bool:
            current = session.get(MixtureRow, uid, with_for_update=True)
            if current is None:
                return False
            if current.state == "running":
                current.state, current.plan, current.files = "ready", plan, files
                current.train_rows, current.validation_rows = len(train), len(validation)
                current.update_time = utcnow()
                session.flush()
                emit_mixture(self._events, session, current, "ready")
            return True

        if not await self.outbox.write(self.db, finish):
            await self.store.delete_prefix(row.storage_prefix)
