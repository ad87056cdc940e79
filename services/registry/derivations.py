"""Derived versions: a LoRA adapter merged into its base, a dtype conversion, a weight-only
quantization; made by `services.registry.derive` in a child process (torch) and registered with lineage."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import tempfile
import uuid
from pathlib import Path

from sqlalchemy.orm import Session

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

# Operation -> the targets it takes (empty: none).
DERIVATIONS = {"merge_lora": (), "convert_dtype": ("bfloat16", "float16"), "quantize": ("int8", "int4")}


class Derivations:
    def __init__(self, ctx: RegistryContext, versions: Versions) -> None:
        self.ctx = ctx
        self.versions = versions

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
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            await self._fetch(source, work / "source")
            if operation == "merge_lora":
                assert base_row is not None
                await self._fetch(base_row, work / "base")
            await _run_derivation(operation, target, work)
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


async def _run_derivation(operation: str, target: str, work: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.registry.derive",
        operation,
        target,
        str(work),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise FailedPrecondition(
            f"{operation} failed: {output.decode(errors='replace')[-600:]}", reason="DERIVATION_FAILED"
        )
