"""Derived versions: a LoRA adapter merged into its base, a dtype conversion, a weight-only
quantization; made by `services.registry.derive` in a child process (torch) and registered with lineage.

The child is bounded: at most `derive_concurrency` run at once (others wait their turn), each is
killed past `derive_memory_bytes` of resident memory or `derive_timeout` seconds, and when the
caller cancels the RPC. A source that would obviously need more memory is refused before any
byte is fetched; the child refuses configs that describe tensors the weights do not hold."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy.orm import Session

from services.kit.children import child_environment, resident_bytes
from services.kit.errors import FailedPrecondition, InvalidArgument
from services.kit.names import check_text
from services.registry import weights
from services.registry.catalog import read_catalog
from services.registry.convert import version_name, version_to_proto
from services.registry.lookup import RegistryContext
from services.registry.repo import VersionRow
from services.registry.validation import check_version_spec
from services.registry.versions import Versions
from tuneforge.registry.v1 import model_pb2

POLL_SECONDS = 0.2
REFUSED_EXIT = 3  # as services.registry.derive exits when the source cannot be derived as asked
# Operation -> the targets it takes (empty: none).
DERIVATIONS = {"merge_lora": (), "convert_dtype": ("bfloat16", "float16"), "quantize": ("int8", "int4")}


class Derivations:
    def __init__(self, ctx: RegistryContext, versions: Versions) -> None:
        self.ctx = ctx
        self.versions = versions
        self.turns = asyncio.Semaphore(ctx.limits.derive_concurrency)

    async def derive(
        self, name: str, operation: str, target: str, output_model: str, request_id: str
    ) -> model_pb2.ModelVersion:
        """Merge, convert or quantize a version in a child process (torch), and register the result."""
        if operation not in DERIVATIONS:
            raise InvalidArgument.field("operation", f"{operation!r} is not one of {', '.join(DERIVATIONS)}")
        allowed = DERIVATIONS[operation]
        if allowed and target not in allowed:
            raise InvalidArgument.field(
                "target", f"{operation} takes one of {', '.join(allowed)} (got {target!r})"
            )
        check_text(request_id, "request_id", 128)

        def load(session: Session) -> tuple[VersionRow, VersionRow | None, model_pb2.ModelVersion]:
            row = self.ctx.version_by_name(session, name, "name")
            return row, row.base_version, version_to_proto(row)  # relations read while the session is open

        source, base_row, source_proto = await self.ctx.db.run(load)
        project = source.model.project
        out_project, out_model = (
            self.ctx.model_ref(output_model, "output_model")
            if output_model
            else (project, source.model.model_id)
        )
        if out_project != project:
            raise InvalidArgument.field("output_model", "derived versions stay in the source's project")
        check_derivable(source, base_row, operation)
        key = request_id or f"derive-{source.uid}-{operation}-{target}"
        target_model = await self.ctx.db.run(lambda s: self.ctx.find_model(s, out_project, out_model))
        existing = await self.ctx.db.run(lambda s: self.ctx.find_by_request_id(s, target_model.uid, key))
        if existing is not None:
            return await self.ctx.db.run(lambda s: self.ctx.version_proto(s, s.get(VersionRow, existing.uid)))
        check_memory(source, base_row, operation, self.ctx.limits.derive_memory_bytes)
        async with self.turns:
            with tempfile.TemporaryDirectory() as tmp:
                work = Path(tmp)
                await self._fetch(source, work / "source")
                if operation == "merge_lora":
                    assert base_row is not None
                    await self._fetch(base_row, work / "base")
                await run_bounded(
                    operation,
                    target,
                    work,
                    memory_bytes=self.ctx.limits.derive_memory_bytes,
                    time_limit=self.ctx.limits.derive_timeout.total_seconds(),
                )
                return await self._register(
                    source, source_proto, operation, target, work, out_project, out_model, key
                )

    async def _register(
        self,
        source: VersionRow,
        source_proto: model_pb2.ModelVersion,
        operation: str,
        target: str,
        work: Path,
        out_project: str,
        out_model: str,
        key: str,
    ) -> model_pb2.ModelVersion:
        label = operation if operation == "merge_lora" else f"{operation}:{target}"
        spec = model_pb2.ModelVersion(
            description=f"{label} of {version_name(source)}",
            tags={"derivation": label},
            metrics={"source_size_bytes": float(source.total_size_bytes)},
            lineage=derived_lineage(source, source_proto),
        )
        return await self._create_from_folder(
            out_project,
            out_model,
            work / "output",
            spec,
            key,
            {"derivation": label, "derived_from": version_name(source)},
        )

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


def check_derivable(source: VersionRow, base_row: VersionRow | None, operation: str) -> None:
    """The operation fits the source (an adapter to merge, a full model to convert) and this host."""
    if operation == "merge_lora" and source.kind != model_pb2.MODEL_VERSION_KIND_LORA_ADAPTER:
        raise FailedPrecondition(
            f"{version_name(source)} is not a LoRA adapter; nothing to merge", reason="NOT_AN_ADAPTER"
        )
    if operation != "merge_lora" and source.kind != model_pb2.MODEL_VERSION_KIND_FULL:
        raise FailedPrecondition(
            f"{version_name(source)} is not a full model; merge the adapter first", reason="NOT_A_FULL_MODEL"
        )
    if operation == "merge_lora" and base_row is None:
        raise FailedPrecondition(
            f"{version_name(source)} names no registered base model to merge into", reason="NO_BASE"
        )
    if importlib.util.find_spec("torch") is None:
        raise FailedPrecondition(
            "this registry host has no torch: install tuneforge[worker] to derive models", reason="NO_TORCH"
        )


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


def check_memory(source: VersionRow, base_row: VersionRow | None, operation: str, limit: int) -> None:
    """Refuse before fetching anything when the stored weights alone would not fit the limit: a
    conversion holds its largest file twice (read and converted), a load holds the model in float32."""
    weights_of = [source] if operation != "merge_lora" else [r for r in (base_row,) if r is not None]
    largest = max((f["size_bytes"] for r in weights_of for f in r.files), default=0)
    total = sum(f["size_bytes"] for r in weights_of for f in r.files if f["path"].endswith(".safetensors"))
    needed = 2 * largest if operation == "convert_dtype" else 2 * total
    if needed > limit:
        raise FailedPrecondition(
            f"{operation} of {version_name(source)} needs about {needed / 1e9:.1f} GB of memory; "
            f"this registry derives within {limit / 1e9:.1f} GB (TUNEFORGE_REGISTRY_DERIVE_MEMORY_BYTES)",
            reason="DERIVATION_MEMORY_LIMIT",
        )


async def run_bounded(
    operation: str, target: str, work: Path, *, memory_bytes: int, time_limit: float
) -> None:
    """Run the derivation child; kill it past the memory or time limit, or when the caller cancels."""
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
    try:
        while process.returncode is None:
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
        if process.returncode is None:  # cancelled by the caller: the child goes with the call
            process.send_signal(signal.SIGKILL)
            with contextlib.suppress(Exception):
                await asyncio.shield(process.wait())
            output.cancel()
    if killed == "memory":
        raise FailedPrecondition(
            f"{operation} passed its memory limit of {memory_bytes / 1e9:.1f} GB and was stopped",
            reason="DERIVATION_MEMORY_LIMIT",
        )
    if killed == "time":
        raise FailedPrecondition(
            f"{operation} ran past its time limit of {time_limit:.0f} s and was stopped",
            reason="DERIVATION_TIMEOUT",
        )
    error = (await output)[-600:].decode(errors="replace").strip()
    if process.returncode == REFUSED_EXIT:
        raise FailedPrecondition(f"{operation} refused: {error}", reason="DERIVATION_REFUSED")
    if process.returncode != 0:
        raise FailedPrecondition(f"{operation} failed: {error}", reason="DERIVATION_FAILED")
