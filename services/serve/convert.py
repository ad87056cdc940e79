"""Rows to API messages, and the names of the serve service's resources."""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2

from services.kit.names import NamePattern
from services.kit.times import to_timestamp
from services.serve.repo import CallRow, DeploymentRow, FeedbackRow
from tuneforge.enums import enum_names, enum_values
from tuneforge.serve.v1 import deployment_pb2

DEPLOYMENT = NamePattern("projects/{project}/deployments/{deployment}")
CALL = NamePattern(
    "projects/{project}/deployments/{deployment}/calls/{call}",
)
STATES = enum_values(deployment_pb2.DeploymentState, "DEPLOYMENT_STATE_")
FINAL_STATES = {STATES["ready"], STATES["failed"], STATES["stopped"]}
ENGINES = enum_names(deployment_pb2.Engine, "ENGINE_")
ENGINE_VALUES = enum_values(deployment_pb2.Engine, "ENGINE_")
RATINGS = enum_names(deployment_pb2.Rating, "RATING_")
RATING_VALUES = enum_values(deployment_pb2.Rating, "RATING_")
DEFAULT_GENERATION = {"temperature": 0.7, "top_p": 1.0, "max_tokens": 256}


def deployment_name(row: DeploymentRow) -> str:
    return DEPLOYMENT.format(project=row.project, deployment=row.deployment_id)


def deployment_to_proto(row: DeploymentRow) -> deployment_pb2.Deployment:
    generation = {**DEFAULT_GENERATION, **(row.generation or {})}
    return deployment_pb2.Deployment(
        name=deployment_name(row),
        uid=row.uid,
        display_name=row.display_name,
        model_version=row.model_ref,
        serving_version=row.serving_version,
        base_model_version=row.base_version,
        replicas=row.replicas,
        engine=ENGINE_VALUES[row.engine],
        generation=deployment_pb2.GenerationDefaults(
            temperature=generation["temperature"],
            top_p=generation["top_p"],
            max_tokens=generation["max_tokens"],
        ),
        max_context=row.max_context,
        max_concurrent_requests=row.max_concurrent_requests,
        logging=row.logging,
        pii_masking=row.pii_masking,
        state=STATES[row.state],
        state_reason=row.state_reason,
        ready_replicas=row.ready_replicas,
        create_time=to_timestamp(row.create_time),
        update_time=to_timestamp(row.update_time),
    )


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(value)
    return out


def call_name(deployment: DeploymentRow, call_id: str) -> str:
    return CALL.format(project=deployment.project, deployment=deployment.deployment_id, call=call_id)


def feedback_to_proto(row: FeedbackRow | None) -> deployment_pb2.Feedback | None:
    if row is None:
        return None
    return deployment_pb2.Feedback(
        rating=RATING_VALUES.get(row.rating, 0),
        correction=row.correction,
        comment=row.comment,
        tags=list(row.tags or []),
        time=to_timestamp(row.time),
    )


def call_to_proto(
    deployment: DeploymentRow, row: CallRow, payload: dict[str, Any] | None, feedback: FeedbackRow | None
) -> deployment_pb2.CallLog:
    payload = payload or {}
    return deployment_pb2.CallLog(
        name=call_name(deployment, row.id),
        id=row.id,
        time=to_timestamp(row.time),
        model_version=row.model_version,
        messages=[deployment_pb2.ChatMessage(**m) for m in payload.get("messages", [])],
        answer=payload.get("answer", ""),
        parameters=struct(payload.get("parameters", {})),
        status=row.status,
        latency_ms=row.latency_ms,
        time_to_first_token_ms=row.ttft_ms or 0.0,
        usage=deployment_pb2.Usage(
            prompt_tokens=row.prompt_tokens,
            completion_tokens=row.completion_tokens,
            total_tokens=row.prompt_tokens + row.completion_tokens,
        ),
        stream=row.stream,
        feedback=feedback_to_proto(feedback),
    )
