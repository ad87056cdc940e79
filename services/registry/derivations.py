"""Derivations: a LoRA adapter merged into its base, a dtype conversion, a weight-only quantization.

The registry service checks a request and queues it as a derivation (QUEUED, with its event and
its work-queue message in one transaction); a registry worker (`services.registry.worker`, with
torch) makes the version in a bounded child (`deriving.py`). `DeriveModelVersion` is the same
thing waited for: it creates the derivation, follows it to its end, and cancels it when the caller
cancels the call. The service itself never loads a model, so it needs no torch and no derivation can
stall it. A source that would obviously need more memory than the workers allow is refused at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.kit.auth import parse_in_project
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.kit.names import NamePattern, check_text, quote
from services.kit.times import to_timestamp, utcnow
from services.kit.watch import ChangeFeed, changes
from services.registry.convert import version_name
from services.registry.lookup import RegistryContext
from services.registry.repo import DerivationRow, VersionRow
from tuneforge.enums import enum_values
from tuneforge.events.v1 import registry_events_pb2
from tuneforge.registry.v1 import model_pb2

QUEUE_SUBJECT = "tuneforge.registry-queue.derive"
DERIVATION = NamePattern("projects/{project}/derivations/{derivation}")
STATES = enum_values(model_pb2.DerivationState, "DERIVATION_STATE_")
TERMINAL = {"succeeded", "failed", "cancelled"}
# Operation -> the targets it takes (empty: none).
DERIVATIONS = {"merge_lora": (), "convert_dtype": ("bfloat16", "float16"), "quantize": ("int8", "int4")}


def derivation_to_proto(session: Session, row: DerivationRow) -> model_pb2.Derivation:
    message = model_pb2.Derivation(
        name=DERIVATION.format(project=row.project, derivation=row.derivation_id),
        source_version=row.source_name,
        operation=row.operation,
        target=row.target,
        output_model=row.output_model_name,
        state=STATES[row.state],
        peak_memory_bytes=row.peak_memory_bytes,
        create_time=to_timestamp(row.create_time),
    )
    if row.result_version_uid:
        made = session.get(VersionRow, row.result_version_uid)
        message.result_version = version_name(made) if made is not None else ""
    if row.state == "failed":
        message.failure.reason, message.failure.message = row.failure_reason, row.failure_message
    if row.end_time:
        message.end_time.CopyFrom(to_timestamp(row.end_time))
    return message


def emit(ctx: RegistryContext, session: Session, row: DerivationRow, verb: str) -> model_pb2.Derivation:
    proto = derivation_to_proto(session, row)
    ctx.outbox.emit(
        session,
        "derivation",
        verb,
        proto.name,
        row.project,
        registry_events_pb2.DerivationEvent(derivation=proto),
    )
    return proto


class Derivations:
    def __init__(self, ctx: RegistryContext, feed: ChangeFeed | None = None) -> None:
        self.ctx = ctx
        self.feed = feed

    async def create(
        self, name: str, operation: str, target: str, output_model: str, request_id: str
    ) -> model_pb2.Derivation:
        """Check the request and queue it for a registry worker."""
        if operation not in DERIVATIONS:
            raise InvalidArgument.field(
                "operation", f"{quote(operation)} is not one of {', '.join(DERIVATIONS)}"
            )
        allowed = DERIVATIONS[operation]
        if allowed and target not in allowed:
            raise InvalidArgument.field(
                "target", f"{operation} takes one of {', '.join(allowed)} (got {quote(target)})"
            )
        if not allowed and target not in ("", "-"):
            raise InvalidArgument.field("target", f"{operation} takes no target")
        target = target if allowed else ""
        check_text(request_id, "request_id", 128)

        def load(session: Session) -> tuple[VersionRow, VersionRow | None, str]:
            row = self.ctx.version_by_name(session, name, "name")
            return row, row.base_version, version_name(row)

        source, base_row, source_name = await self.ctx.db.run(load)
        project = source.model.project
        out_project, out_model = (
            self.ctx.model_ref(output_model, "output_model")
            if output_model
            else (project, source.model.model_id)
        )
        if out_project != project:
            raise InvalidArgument.field("output_model", "derived versions stay in the source's project")
        check_derivable(source, base_row, operation)
        check_memory(source, base_row, operation, self.ctx.limits.derive_memory_bytes)
        # Without a request_id a failed or cancelled derivation of the same thing may be asked again.
        key = request_id or f"derive-{source.uid}-{operation}-{target}-{out_model}"

        def insert(session: Session) -> model_pb2.Derivation:
            model = self.ctx.find_model(session, out_project, out_model)
            existing = session.scalar(
                select(DerivationRow).where(
                    DerivationRow.project == project, DerivationRow.request_key == key
                )
            )
            if existing is not None:
                if request_id or existing.state not in ("failed", "cancelled"):
                    return derivation_to_proto(session, existing)
                existing.request_key = None  # the key passes to the new attempt
                session.flush()
            now = utcnow()
            row = DerivationRow(
                uid=uuid.uuid4().hex,
                project=project,
                derivation_id=f"d-{uuid.uuid4().hex[:12]}",
                source_uid=source.uid,
                source_name=source_name,
                operation=operation,
                target=target,
                output_model_uid=model.uid,
                output_model_name=f"projects/{out_project}/models/{out_model}",
                state="queued",
                request_key=key,
                create_time=now,
                update_time=now,
            )
            session.add(row)
            session.flush()
            proto = emit(self.ctx, session, row, "created")
            self.ctx.outbox.enqueue(session, QUEUE_SUBJECT, row.uid.encode(), f"derive-{row.uid}")
            return proto

        try:
            return await self.ctx.outbox.write(self.ctx.db, insert)
        except IntegrityError:  # a concurrent twin won the insert: the retry finds it
            return await self.ctx.outbox.write(self.ctx.db, insert)

    def _find(self, session: Session, name: str, field: str = "name") -> DerivationRow:
        parts = parse_in_project(DERIVATION, name, field)
        row = session.scalar(
            select(DerivationRow).where(
                DerivationRow.project == parts["project"], DerivationRow.derivation_id == parts["derivation"]
            )
        )
        if row is None:
            raise NotFound(f"derivation {name} does not exist")
        return row

    async def get(self, name: str) -> model_pb2.Derivation:
        return await self.ctx.db.run(lambda s: derivation_to_proto(s, self._find(s, name)))

    async def watch(self, name: str) -> AsyncIterator[model_pb2.Derivation]:
        """The derivation now and as it changes, until it ends."""
        first = await self.get(name)
        final = {STATES[s] for s in TERMINAL}
        assert self.feed is not None, "watching needs the registry's change feed"
        async for current in changes(
            self.feed, first.name, lambda: self.get(first.name), lambda d: d.state in final
        ):
            yield current

    async def cancel(self, name: str) -> model_pb2.Derivation:
        """Mark a queued or running derivation CANCELLED; its worker sees it and kills the child."""

        def cancel_(session: Session) -> model_pb2.Derivation:
            row = self._find(session, name)
            row = session.get(DerivationRow, row.uid, with_for_update=True)
            assert row is not None
            if row.state in ("succeeded", "failed"):
                raise FailedPrecondition(
                    f"derivation {name[:200]} has already {row.state}; nothing to cancel",
                    reason="ALREADY_ENDED",
                )
            if row.state == "cancelled":
                return derivation_to_proto(session, row)
            row.state, row.end_time, row.update_time = "cancelled", utcnow(), utcnow()
            return emit(self.ctx, session, row, "updated")

        return await self.ctx.outbox.write(self.ctx.db, cancel_)

    async def derive(
        self, name: str, operation: str, target: str, output_model: str, request_id: str
    ) -> model_pb2.ModelVersion:
        """DeriveModelVersion: create the derivation and wait for its version; a cancelled call
        cancels the derivation."""
        derivation = await self.create(name, operation, target, output_model, request_id)
        try:
            async for current in self.watch(derivation.name):
                derivation = current
        except asyncio.CancelledError:
            await asyncio.shield(self._cancel_quietly(derivation.name))
            raise
        return await self.ctx.db.run(lambda s: self._outcome(s, derivation))

    async def _cancel_quietly(self, name: str) -> None:
        with contextlib.suppress(FailedPrecondition):  # it ended meanwhile
            await self.cancel(name)

    def _outcome(self, session: Session, derivation: model_pb2.Derivation) -> model_pb2.ModelVersion:
        row = self._find(session, derivation.name)
        if row.state == "succeeded" and row.result_version_uid:
            made = session.get(VersionRow, row.result_version_uid)
            if made is not None:
                return self.ctx.version_proto(session, made)
        if row.state == "failed":
            raise FailedPrecondition(
                row.failure_message or "the derivation failed",
                reason=row.failure_reason or "DERIVATION_FAILED",
                metadata=_facts(row),
            )
        raise FailedPrecondition(
            f"{derivation.name} was {row.state}", reason=f"DERIVATION_{row.state.upper()}"
        )


def _facts(row: DerivationRow) -> dict[str, Any]:
    return {
        "derivation": DERIVATION.format(project=row.project, derivation=row.derivation_id),
        "peak_resident_bytes": str(row.peak_memory_bytes),
    }


def check_derivable(source: VersionRow, base_row: VersionRow | None, operation: str) -> None:
    """The operation fits the source: an adapter to merge, a full model to convert."""
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
