"""Data backflow (数据回流): a deployment's logged calls with feedback become a new dataset version
in the data service, for incremental training — SFT rows from corrected answers (and thumbs-up
answers if asked), KTO rows from thumbs up and down, DPO pairs of a correction over the original.

Exact duplicates are dropped; the version's recipe records where the rows came from (deployment,
model versions, time range, filters).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from google.protobuf import struct_pb2
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from services.kit.names import NamePattern, check_text
from services.kit.peers import DATASET_KINDS, Peers
from services.kit.rows import Kind, content_key
from services.kit.times import from_timestamp
from services.serve.convert import deployment_name
from services.serve.logs import CallLogs
from services.serve.repo import CallRow, DeploymentRow, FeedbackRow
from tuneforge.data.v1 import data_service_pb2, dataset_pb2
from tuneforge.enums import enum_names, enum_values
from tuneforge.serve.v1 import serve_service_pb2

DATASET = NamePattern("projects/{project}/datasets/{dataset}")
KINDS = {
    serve_service_pb2.BACKFLOW_KIND_SFT: Kind.SFT,
    serve_service_pb2.BACKFLOW_KIND_UNPAIRED_PREFERENCE: Kind.UNPAIRED_PREFERENCE,
    serve_service_pb2.BACKFLOW_KIND_PREFERENCE: Kind.PREFERENCE,
}
KIND_VALUES = enum_values(dataset_pb2.DatasetKind, "DATASET_KIND_")
BACKFLOW_NAMES = enum_names(serve_service_pb2.BackflowKind, "BACKFLOW_KIND_")


def rows_of(
    kind: Kind, call_id: str, payload: dict[str, Any], feedback: FeedbackRow, thumbs_up: bool
) -> list[dict[str, Any]]:
    """The canonical rows one call with feedback makes for `kind`."""
    messages = [{"role": m["role"], "content": m["content"]} for m in payload.get("messages", [])]
    answer, correction = payload.get("answer", ""), feedback.correction.strip()
    if not messages or messages[-1]["role"] != "user":
        return []
    out: list[dict[str, Any]] = []
    if kind == Kind.SFT:
        if correction:
            out.append({"id": call_id, "messages": [*messages, {"role": "assistant", "content": correction}]})
        elif thumbs_up and feedback.rating == "up" and answer.strip():
            out.append({"id": call_id, "messages": [*messages, {"role": "assistant", "content": answer}]})
    elif kind == Kind.UNPAIRED_PREFERENCE:
        if feedback.rating in ("up", "down") and answer.strip():
            completion = [{"role": "assistant", "content": answer}]
            out.append(
                {
                    "id": call_id,
                    "prompt": messages,
                    "completion": completion,
                    "label": feedback.rating == "up",
                }
            )
        if correction:
            completion = [{"role": "assistant", "content": correction}]
            out.append(
                {"id": f"{call_id}-correction", "prompt": messages, "completion": completion, "label": True}
            )
    elif correction and correction != answer.strip() and answer.strip():
        out.append(
            {
                "id": call_id,
                "prompt": messages,
                "chosen": [{"role": "assistant", "content": correction}],
                "rejected": [{"role": "assistant", "content": answer}],
            }
        )
    return out


class Backflow:
    def __init__(self, logs: CallLogs, peers: Peers) -> None:
        self.logs = logs
        self.peers = peers

    async def create(
        self, request: serve_service_pb2.CreateDatasetFromLogsRequest
    ) -> serve_service_pb2.CreateDatasetFromLogsResponse:
        kind = KINDS.get(request.kind)
        if kind is None:
            raise InvalidArgument.field("kind", "choose SFT, UNPAIRED_PREFERENCE (KTO) or PREFERENCE (DPO)")
        check_text(request.request_id, "request_id", 128)
        if len(request.tags) > 16:
            raise InvalidArgument.field("tags", "at most 16 tags")
        start = (
            from_timestamp(request.start_time, "start_time").replace(tzinfo=None) if request.HasField("start_time") else None
        )
        end = from_timestamp(request.end_time, "end_time").replace(tzinfo=None) if request.HasField("end_time") else None
        deployment, calls = await self._calls(request.deployment, start, end, list(request.tags))
        target = DATASET.parse(request.dataset, "dataset")
        if target["project"] != deployment.project:
            raise InvalidArgument.field("dataset", f"backflow stays inside project {deployment.project}")
        rows, duplicates, versions = [], 0, set()
        seen: set[str] = set()
        for call, feedback in calls:
            payload = await self.logs.payload(call)
            if payload is None:
                continue
            for row in rows_of(kind, call.id, payload, feedback, request.include_thumbs_up):
                key = content_key(row, kind)
                if key in seen:
                    duplicates += 1
                    continue
                seen.add(key)
                rows.append(row)
                versions.add(call.model_version)
        if not rows:
            raise FailedPrecondition(
                f"no logged call of {deployment_name(deployment)} in that range has the feedback {kind.value} rows need "
                "(corrections for sft and dpo, thumbs up or down for kto)",
                reason="NO_FEEDBACK",
            )
        await self._ensure_dataset(request.dataset, target, kind)
        provenance = {
            "type": "serve_backflow",
            "deployment": deployment_name(deployment),
            "model_versions": sorted(v for v in versions if v),
            "kind": BACKFLOW_NAMES[request.kind],
            "start_time": start.isoformat() if start else "",
            "end_time": end.isoformat() if end else "",
            "include_thumbs_up": request.include_thumbs_up,
            "tags": list(request.tags),
            "calls": len(calls),
        }
        options = data_service_pb2.IngestOptions(
            schema=dataset_pb2.DATA_SCHEMA_CANONICAL,
            description=f"calls of {deployment_name(deployment)} with feedback, as {kind.value} rows",
            tags={"source": "serve-backflow"},
            provenance=_struct(provenance),
        )
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
        version = await self.peers.upload_dataset_version(
            request.dataset, "backflow.jsonl", data, options, request.request_id or ""
        )
        return serve_service_pb2.CreateDatasetFromLogsResponse(
            dataset_version=version.name, rows=len(rows), duplicates=duplicates
        )

    async def _calls(
        self, name: str, start: datetime | None, end: datetime | None, tags: list[str]
    ) -> tuple[DeploymentRow, list[tuple[CallRow, FeedbackRow]]]:
        def read(session: Session) -> tuple[DeploymentRow, list[tuple[CallRow, FeedbackRow]]]:
            deployment = self.logs.find_deployment(session, name, "deployment")
            query = (
                select(CallRow, FeedbackRow)
                .join(FeedbackRow, FeedbackRow.call_id == CallRow.id)
                .where(CallRow.deployment_uid == deployment.uid, CallRow.status == "OK")
                .order_by(CallRow.time)
            )
            if start is not None:
                query = query.where(CallRow.time >= start)
            if end is not None:
                query = query.where(CallRow.time < end)
            out = []
            for call, feedback in session.execute(query).all():
                if tags and not set(tags) & set(feedback.tags or []):
                    continue
                session.expunge(call)
                session.expunge(feedback)
                out.append((call, feedback))
            session.expunge(deployment)
            return deployment, out

        return await self.logs.db.run(read)

    async def _ensure_dataset(self, name: str, parts: dict[str, str], kind: Kind) -> None:
        """The target dataset, created with the rows' kind when it does not exist."""
        request = data_service_pb2.CreateDatasetRequest(
            parent=f"projects/{parts['project']}",
            dataset_id=parts["dataset"],
            dataset=dataset_pb2.Dataset(kind=KIND_VALUES[kind.value], description="rows made from call logs"),
        )
        try:
            await self.peers.call("data", "CreateDataset", request, field="dataset")
            return
        except AlreadyExists:
            pass
        existing = await self.peers.call(
            "data", "GetDataset", data_service_pb2.GetDatasetRequest(name=name), field="dataset"
        )
        if DATASET_KINDS.get(existing.kind) != kind.value:
            raise InvalidArgument.field(
                "dataset",
                f"{name} holds {DATASET_KINDS.get(existing.kind)} data; these rows are {kind.value}",
            )


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(value)
    return out
