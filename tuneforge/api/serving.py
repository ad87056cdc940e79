"""`client.serve`: deployments, chat, call logs, feedback, statistics and backflow (模型服务)."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import grpc
from google.protobuf import field_mask_pb2, timestamp_pb2

from tuneforge import names
from tuneforge.api._calls import call, pages
from tuneforge.enums import enum_names, enum_values
from tuneforge.errors import TuneForgeError
from tuneforge.serve.v1 import deployment_pb2, serve_service_pb2, serve_service_pb2_grpc

DEPLOYMENT_STATES = {0: "unspecified", **enum_names(deployment_pb2.DeploymentState, "DEPLOYMENT_STATE_")}
ENGINES = enum_values(deployment_pb2.Engine, "ENGINE_")
RATINGS = enum_values(deployment_pb2.Rating, "RATING_")
BACKFLOW_KINDS = {
    "sft": serve_service_pb2.BACKFLOW_KIND_SFT,
    "kto": serve_service_pb2.BACKFLOW_KIND_UNPAIRED_PREFERENCE,
    "unpaired_preference": serve_service_pb2.BACKFLOW_KIND_UNPAIRED_PREFERENCE,
    "dpo": serve_service_pb2.BACKFLOW_KIND_PREFERENCE,
    "preference": serve_service_pb2.BACKFLOW_KIND_PREFERENCE,
}
FINAL = {"ready", "failed", "stopped"}


def _timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(value)
    return out


def _generation(
    temperature: float | None, top_p: float | None, max_tokens: int
) -> deployment_pb2.GenerationDefaults:
    g = deployment_pb2.GenerationDefaults(max_tokens=max_tokens)
    if temperature is not None:
        g.temperature = temperature
    if top_p is not None:
        g.top_p = top_p
    return g


class Serving:
    """The serve service. `openai_base_url` is its OpenAI-compatible HTTP API, for the `openai` client."""

    def __init__(self, connect: Callable[[], grpc.Channel], project: str, openai_base_url: str = "") -> None:
        self._connect = connect
        self._project = project
        self.openai_base_url = openai_base_url

    @functools.cached_property
    def _stub(self) -> serve_service_pb2_grpc.ServeServiceStub:
        return serve_service_pb2_grpc.ServeServiceStub(self._connect())

    def deployment_name(self, ref: str) -> str:
        return ref if ref.startswith("projects/") else f"projects/{self._project}/deployments/{ref}"

    def create(
        self,
        deployment_id: str,
        model_version: str,
        *,
        display_name: str = "",
        replicas: int = 1,
        engine: str = "auto",
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int = 0,
        max_context: int = 0,
        max_concurrent_requests: int = 0,
        logging: bool = True,
        pii_masking: bool = False,
        request_id: str | None = None,
    ) -> deployment_pb2.Deployment:
        """Deploy a model version (`m/3`, `m@production`, or a full name); it loads in the background."""
        if engine not in ENGINES:
            raise TuneForgeError("INVALID_ARGUMENT", f"engine {engine!r} is not one of {', '.join(ENGINES)}")
        deployment = deployment_pb2.Deployment(
            display_name=display_name,
            model_version=names.model_version(self._project, model_version),
            replicas=replicas,
            engine=ENGINES[engine],
            generation=_generation(temperature, top_p, max_tokens),
            max_context=max_context,
            max_concurrent_requests=max_concurrent_requests,
            logging=logging,
            pii_masking=pii_masking,
        )
        return call(
            self._stub.CreateDeployment,
            serve_service_pb2.CreateDeploymentRequest(
                parent=f"projects/{self._project}",
                deployment_id=deployment_id,
                deployment=deployment,
                request_id=request_id or str(uuid.uuid4()),
            ),
        )

    def get(self, ref: str) -> deployment_pb2.Deployment:
        return call(
            self._stub.GetDeployment, serve_service_pb2.GetDeploymentRequest(name=self.deployment_name(ref))
        )

    def list(self, *, page_size: int = 0) -> Iterator[deployment_pb2.Deployment]:
        def fetch(token: str) -> tuple[list[deployment_pb2.Deployment], str]:
            response = call(
                self._stub.ListDeployments,
                serve_service_pb2.ListDeploymentsRequest(
                    parent=f"projects/{self._project}", page_size=page_size, page_token=token
                ),
            )
            return list(response.deployments), response.next_page_token

        return pages(fetch)

    def update(self, ref: str, **fields: Any) -> deployment_pb2.Deployment:
        """Change `model_version` (a rolling switch), `replicas`, `generation`, … by keyword."""
        if "model_version" in fields:
            fields["model_version"] = names.model_version(self._project, fields["model_version"])
        generation = {k: fields.pop(k) for k in ("temperature", "top_p", "max_tokens") if k in fields}
        deployment = deployment_pb2.Deployment(name=self.deployment_name(ref), **fields)
        paths = sorted(fields)
        if generation:
            deployment.generation.CopyFrom(
                _generation(
                    generation.get("temperature"), generation.get("top_p"), generation.get("max_tokens", 0)
                )
            )
            paths.append("generation")
        return call(
            self._stub.UpdateDeployment,
            serve_service_pb2.UpdateDeploymentRequest(
                deployment=deployment, update_mask=field_mask_pb2.FieldMask(paths=paths)
            ),
        )

    def delete(self, ref: str) -> None:
        call(
            self._stub.DeleteDeployment,
            serve_service_pb2.DeleteDeploymentRequest(name=self.deployment_name(ref)),
        )

    def watch(self, ref: str) -> Iterator[deployment_pb2.Deployment]:
        stream = self._stub.WatchDeployment(
            serve_service_pb2.WatchDeploymentRequest(name=self.deployment_name(ref))
        )
        try:
            yield from stream
        except grpc.RpcError as error:
            raise TuneForgeError.from_rpc_error(error) from None

    def wait(self, ref: str, *, timeout: float = 600) -> deployment_pb2.Deployment:
        """The deployment once it is READY, FAILED or STOPPED (watched, not polled)."""
        deadline = time.monotonic() + timeout
        last = self.get(ref)
        while DEPLOYMENT_STATES[last.state] not in FINAL:
            for last in self.watch(ref):
                if DEPLOYMENT_STATES[last.state] in FINAL or time.monotonic() > deadline:
                    break
            if time.monotonic() > deadline:
                raise TuneForgeError(
                    "DEADLINE_EXCEEDED", f"{last.name} is still {DEPLOYMENT_STATES[last.state]}"
                )
        return last

    def chat(
        self, ref: str, messages: Sequence[Mapping[str, str]], **parameters: Any
    ) -> Iterator[serve_service_pb2.ChatResponse]:
        """A streamed answer: the pieces as they are generated (`temperature`, `top_p`, `max_tokens`,
        `stop`, `seed` as keywords)."""
        request = serve_service_pb2.ChatRequest(
            deployment=self.deployment_name(ref),
            messages=[deployment_pb2.ChatMessage(role=m["role"], content=m["content"]) for m in messages],
            **parameters,
        )
        stream = self._stub.Chat(request)
        try:
            yield from stream
        except grpc.RpcError as error:
            raise TuneForgeError.from_rpc_error(error) from None

    def stats(
        self, ref: str, *, start: datetime | None = None, end: datetime | None = None
    ) -> deployment_pb2.DeploymentStats:
        return call(
            self._stub.GetDeploymentStats,
            serve_service_pb2.GetDeploymentStatsRequest(
                name=self.deployment_name(ref), start_time=_timestamp(start), end_time=_timestamp(end)
            ),
        )

    def logs(self, ref: str, *, filter: str = "", page_size: int = 0) -> Iterator[deployment_pb2.CallLog]:
        def fetch(token: str) -> tuple[list[deployment_pb2.CallLog], str]:
            response = call(
                self._stub.ListCallLogs,
                serve_service_pb2.ListCallLogsRequest(
                    parent=self.deployment_name(ref), page_size=page_size, page_token=token, filter=filter
                ),
            )
            return list(response.call_logs), response.next_page_token

        return pages(fetch)

    def feedback(
        self,
        call_name: str,
        *,
        rating: str = "",
        correction: str = "",
        comment: str = "",
        tags: Sequence[str] = (),
    ) -> deployment_pb2.CallLog:
        """Feedback on a call: `rating` "up" or "down", a corrected answer, a comment, tags."""
        if rating and rating not in RATINGS:
            raise TuneForgeError("INVALID_ARGUMENT", f"rating {rating!r} is up or down")
        return call(
            self._stub.SubmitFeedback,
            serve_service_pb2.SubmitFeedbackRequest(
                name=call_name,
                feedback=deployment_pb2.Feedback(
                    rating=RATINGS.get(rating, 0), correction=correction, comment=comment, tags=list(tags)
                ),
            ),
        )

    def backflow(
        self,
        ref: str,
        dataset: str,
        *,
        kind: str = "sft",
        start: datetime | None = None,
        end: datetime | None = None,
        include_thumbs_up: bool = False,
        tags: Sequence[str] = (),
        request_id: str | None = None,
    ) -> serve_service_pb2.CreateDatasetFromLogsResponse:
        """Calls with feedback → a new version of `dataset` (sft, kto or dpo rows; 数据回流)."""
        if kind not in BACKFLOW_KINDS:
            raise TuneForgeError("INVALID_ARGUMENT", f"kind {kind!r} is one of {', '.join(BACKFLOW_KINDS)}")
        return call(
            self._stub.CreateDatasetFromLogs,
            serve_service_pb2.CreateDatasetFromLogsRequest(
                deployment=self.deployment_name(ref),
                dataset=names.dataset(self._project, dataset),
                kind=BACKFLOW_KINDS[kind],
                start_time=_timestamp(start),
                end_time=_timestamp(end),
                include_thumbs_up=include_thumbs_up,
                tags=list(tags),
                request_id=request_id or str(uuid.uuid4()),
            ),
        )
