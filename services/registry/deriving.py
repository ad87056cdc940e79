"""The registry worker's side of derivations: fetch the source's stored files, run
`services.registry.derive` in a bounded child, and register what it wrote as a new version.

The child is killed past `memory_bytes` of resident memory (sampled every 0.2 s) or `time_limit`
seconds, and at once when the derivation is cancelled (checked every second). A redelivered
derivation (its worker died) finds the version it may already have registered by its request key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from services.kit.children import child_environment, resident_bytes
from services.kit.errors import FailedPrecondition, NotFound
from services.kit.times import utcnow
from services.registry import weights
from services.registry.catalog import read_catalog
from services.registry.convert import version_name, version_to_proto
from services.registry.derivations import TERMINAL, emit
from services.registry.lookup import RegistryContext
from services.registry.repo import DerivationRow, ModelRow, VersionRow
from services.registry.validation import check_version_spec
from services.registry.versions import Versions
from tuneforge.registry.v1 import model_pb2

log = logging.getLogger(__name__)
POLL_SECONDS = 0.2
CANCEL_CHECK_SECONDS = 1.0
REFUSED_EXIT = 3  # as services.registry.derive exits when the source cannot be derived as asked


class Cancelled(Exception):
    """The derivation was cancelled while it ran."""


class DerivationRunner:
    def __init__(self, ctx: RegistryContext, versions: Versions, work_dir: Path | None = None) -> None:
        self.ctx = ctx
        self.versions = versions
        self.work_dir = work_dir

    def _transition(self, session: Session, uid: str, **values: Any) -> None:
        row = session.get(DerivationRow, uid, with_for_update=True)
        if row is None or row.state in TERMINAL:  # cancelled meanwhile: it stays so
            return
        for key, value in values.items():
            setattr(row, key, value)
        row.update_time = utcnow()
        if row.state in TERMINAL:
            row.end_time = row.update_time
        session.flush()
        emit(self.ctx, session, row, "updated")

    async def run(self, uid: str) -> None:
        """Make the derivation's version; its outcome is stored whatever happens."""
        row = await self.ctx.db.run(lambda s: s.get(DerivationRow, uid))
        if row is None or row.state in TERMINAL:
            return
        await self.ctx.outbox.write(self.ctx.db, lambda s: self._transition(s, uid, state="running"))
        try:
            version_uid, peak = await self._make(row)
        except Cancelled:
            log.info("derivation cancelled", extra={"derivation": uid})
            return
        except (FailedPrecondition, NotFound) as error:
            failure = {
                "state": "failed",
                "failure_reason": error.reason,
                "failure_message": error.message[:4000],
                "peak_memory_bytes": int(error.metadata.get("peak_resident_bytes", 0) or 0),
            }
            await self.ctx.outbox.write(self.ctx.db, lambda s: self._transition(s, uid, **failure))
            return
        await self.ctx.outbox.write(
            self.ctx.db,
            lambda s: self._transition(
                s, uid, state="succeeded", result_version_uid=version_uid, peak_memory_bytes=peak
            ),
        )

    async def fail(self, uid: str, reason: str, message: str) -> None:
        """Mark the derivation FAILED (a store or database that kept failing)."""
        values = {"state": "failed", "failure_reason": reason, "failure_message": message[:4000]}
        await self.ctx.outbox.write(self.ctx.db, lambda s: self._transition(s, uid, **values))

    async def _cancelled(self, uid: str) -> bool:
        return await self.ctx.db.run(lambda s: getattr(s.get(DerivationRow, uid), "state", "")) == "cancelled"

    async def _make(self, row: DerivationRow) -> tuple[str, int]:
        version_key = f"derivation-{row.uid}"
        done = await self.ctx.db.run(
            lambda s: self.ctx.find_by_request_id(s, row.output_model_uid, version_key)
        )
        if done is not None:  # registered before this worker's predecessor died
            return done.uid, row.peak_memory_bytes

        def load(session: Session) -> tuple[VersionRow, VersionRow | None, model_pb2.ModelVersion]:
            source = session.get(VersionRow, row.source_uid)
            if source is None:
                raise FailedPrecondition(
                    f"{row.source_name} was deleted before it was derived", reason="SOURCE_GONE"
                )
            return source, source.base_version, version_to_proto(source)

        source, base_row, source_proto = await self.ctx.db.run(load)
        limits = self.ctx.limits
        with tempfile.TemporaryDirectory(dir=self.work_dir) as tmp:
            work = Path(tmp)
            await self._fetch(source, work / "source")
            if row.operation == "merge_lora":
                assert base_row is not None
                await self._fetch(base_row, work / "base")
            peak = await run_bounded(
                row.operation,
                row.target,
                work,
                memory_bytes=limits.derive_memory_bytes,
                time_limit=limits.derive_timeout.total_seconds(),
                cancelled=lambda: self._cancelled(row.uid),
            )
            label = row.operation if row.operation == "merge_lora" else f"{row.operation}:{row.target}"
            spec = model_pb2.ModelVersion(
                description=f"{label} of {version_name(source)}",
                tags={"derivation": label},
                metrics={
                    "source_size_bytes": float(source.total_size_bytes),
                    "peak_memory_bytes": float(peak),
                },
                lineage=derived_lineage(source, source_proto),
            )
            model = await self.ctx.db.run(lambda s: s.get(ModelRow, row.output_model_uid))
            if model is None:
                raise FailedPrecondition(f"{row.output_model_name} was deleted", reason="OUTPUT_MODEL_GONE")
            made = await self._create_from_folder(
                model.project,
                model.model_id,
                work / "output",
                spec,
                version_key,
                {"derivation": label, "derived_from": version_name(source)},
            )
            return made.uid, peak

    async def _fetch(self, row: VersionRow, folder: Path) -> None:
        for entry in row.files:
            target = folder / entry["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            await self.ctx.store.get_file(
                row.storage_prefix + entry["path"],
                target,
                sha256=entry["sha256"],
                size_bytes=entry["size_bytes"],
                label=entry["path"],
            )

    async def _create_from_folder(
        self,
        project: str,
        model_id: str,
        folder: Path,
        spec_message: model_pb2.ModelVersion,
        request_id: str,
        catalog_extra: dict[str, str],
    ) -> model_pb2.ModelVersion:
        """A new version from files on this host, through the same checks as an upload."""
        spec = check_version_spec(spec_message, "model_version")
        model = await self.ctx.db.run(lambda s: self.ctx.find_model(s, project, model_id))
        version_uid = uuid.uuid4().hex
        prefix = f"models/{model.uid}/versions/{version_uid}/"
        try:
            files, facts = [], []
            paths = await asyncio.to_thread(lambda: sorted(p for p in folder.rglob("*") if p.is_file()))
            for path in paths:
                relative = weights.check_path(path.relative_to(folder).as_posix(), "files")
                check = weights.FileCheck(relative, "files")
                await self.ctx.store.put_file(prefix + relative, path)
                stored = await self.ctx.store.hash_object(prefix + relative, on_chunk=check.feed)
                facts.append(check.finish())
                files.append({"path": relative, "size_bytes": stored.size_bytes, "sha256": stored.sha256})
            weights.check_version(facts)
            catalog = {**await read_catalog(self.ctx.store, prefix, files), **catalog_extra}
            await self.versions.write_manifest(prefix, files)
            spec.metrics["size_bytes"] = float(sum(f["size_bytes"] for f in files))
            return await self.ctx.outbox.write(
                self.ctx.db,
                lambda s: self.versions.insert_version(
                    s,
                    model_uid=model.uid,
                    version_uid=version_uid,
                    spec=spec,
                    files=files,
                    request_id=request_id,
                    field="model_version",
                    catalog=catalog,
                ),
            )
        except BaseException:
            await self.ctx.store.delete_prefix(prefix)
            raise


def derived_lineage(source: VersionRow, source_proto: model_pb2.ModelVersion) -> model_pb2.Lineage:
    """A derived version keeps its source's base, job, data and hyperparameters; its parent is the source."""
    lineage = model_pb2.Lineage(
        base_model=version_name(source.base_version) if source.base_version else source.base_model_ref,
        parent_version=version_name(source),
        source_job=source.source_job,
    )
    lineage.dataset_versions.extend(source_proto.lineage.dataset_versions)
    lineage.hyperparameters.update(source.hyperparameters)
    return lineage


async def run_bounded(
    operation: str,
    target: str,
    work: Path,
    *,
    memory_bytes: int,
    time_limit: float,
    cancelled: Callable[[], Awaitable[bool]] | None = None,
) -> int:
    """Run the derivation child; kill it past the memory or time limit, when `cancelled()` says so
    (raising Cancelled), or when this task is cancelled. Returns the child's peak resident memory
    (sampled every 0.2 s)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.registry.derive",
        operation,
        target,
        str(work),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=child_environment(TUNEFORGE_DERIVE_MEMORY_BYTES=str(memory_bytes)),
    )
    assert process.stderr is not None
    output = asyncio.ensure_future(process.stderr.read())
    started, peak, killed = time.monotonic(), 0, ""
    checked = started
    try:
        while process.returncode is None:
            if cancelled is not None and time.monotonic() - checked >= CANCEL_CHECK_SECONDS:
                checked = time.monotonic()
                if await cancelled():
                    raise Cancelled
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(process.wait()), POLL_SECONDS)
            peak = max(peak, resident_bytes(process.pid))
            if process.returncode is None and peak > memory_bytes:
                killed = "memory"
            elif process.returncode is None and time.monotonic() - started > time_limit:
                killed = "time"
            if killed:
                process.send_signal(signal.SIGKILL)
                await process.wait()
    finally:
        if process.returncode is None:  # cancelled: the child goes with the derivation
            process.send_signal(signal.SIGKILL)
            with contextlib.suppress(Exception):
                await asyncio.shield(process.wait())
            output.cancel()
    facts = {"peak_resident_bytes": str(peak), "seconds": f"{time.monotonic() - started:.1f}"}
    if killed == "memory":
        raise FailedPrecondition(
            f"{operation} passed its memory limit of {memory_bytes / 1e9:.1f} GB and was stopped",
            reason="DERIVATION_MEMORY_LIMIT",
            metadata=facts,
        )
    if killed == "time":
        raise FailedPrecondition(
            f"{operation} ran past its time limit of {time_limit:.0f} s and was stopped",
            reason="DERIVATION_TIMEOUT",
            metadata=facts,
        )
    error = (await output)[-600:].decode(errors="replace").strip()
    if process.returncode == REFUSED_EXIT:
        raise FailedPrecondition(f"{operation} refused: {error}", reason="DERIVATION_REFUSED", metadata=facts)
    if process.returncode != 0:
        raise FailedPrecondition(f"{operation} failed: {error}", reason="DERIVATION_FAILED", metadata=facts)
    return peak
