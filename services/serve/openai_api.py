"""The OpenAI-compatible HTTP API of the serve service: `POST /v1/chat/completions` (streamed as
server-sent events or not), `POST /v1/completions`, `GET /v1/models`, and `POST /v1/feedback`.

The official `openai` client works unchanged: its `api_key` is a TuneForge key, its `model` a
deployment of the key's project (or the project given as `OpenAI-Project`, for a key of every
project; or a full `projects/…/deployments/…` name). Errors come in OpenAI's shape,
`{"error": {"message", "type", "param", "code"}}`, with the status codes OpenAI uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from services.kit.auth import ALL_PROJECTS, ROLES, ApiKeyStore, Principal, principal_var
from services.kit.errors import InvalidArgument, NotFound, PermissionDenied, ServiceError, Unauthenticated
from services.serve.calls import CallRequest, Calls, Piece, new_call_id
from services.serve.convert import RATING_VALUES, call_name, deployment_name
from services.serve.deployments import Deployments
from services.serve.logs import CallLogs
from services.serve.repo import CallRow, DeploymentRow
from tuneforge.serve.v1 import deployment_pb2

MAX_N = 4
STATUS = {
    "INVALID_ARGUMENT": (400, "invalid_request_error"),
    "FAILED_PRECONDITION": (400, "invalid_request_error"),
    "UNAUTHENTICATED": (401, "authentication_error"),
    "PERMISSION_DENIED": (404, "not_found_error"),
    "NOT_FOUND": (404, "not_found_error"),
    "RESOURCE_EXHAUSTED": (429, "rate_limit_error"),
    "UNAVAILABLE": (503, "service_unavailable"),
}


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: str
    name: str | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False


class Sampling(BaseModel):
    """What chat and completion requests share. Fields the API does not know are refused."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=300)
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = Field(None, max_length=256)
    presence_penalty: float | None = Field(None, ge=0, le=0)
    frequency_penalty: float | None = Field(None, ge=0, le=0)


class ChatBody(Sampling):
    messages: list[Message] = Field(min_length=1, max_length=512)


class CompletionBody(Sampling):
    prompt: str = Field(max_length=1_000_000)


class FeedbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=64)
    rating: Literal["up", "down"] | None = None
    correction: str = Field("", max_length=32_000)
    comment: str = Field("", max_length=4000)
    tags: list[str] = Field(default_factory=list, max_length=16)


def error_response(
    status: int,
    kind: str,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": param, "code": code}},
        status_code=status,
        headers=headers,
    )


def from_service_error(error: ServiceError) -> JSONResponse:
    status, kind = STATUS.get(error.code, (500, "server_error"))
    if error.reason == "ROLE_FORBIDDEN":  # the key is known, its role too small: OpenAI's 403
        status, kind = 403, "permission_error"
    param = error.violations[0].field if error.violations else None
    code = error.reason.lower()
    headers = None
    if error.code == "RESOURCE_EXHAUSTED":
        headers = {"Retry-After": error.metadata.get("retry_after", "1")}
    if error.reason == "CONTEXT_LENGTH_EXCEEDED":
        param, code = "messages", "context_length_exceeded"
    if error.reason in ("PERMISSION_DENIED", "NOT_FOUND") and param is None:
        param, code = "model", "model_not_found"
    return error_response(status, kind, error.message, param=param, code=code, headers=headers)


class OpenAiApi:
    """The routes, over the same deployments, calls and logs as the gRPC API."""

    def __init__(self, keys: ApiKeyStore, deployments: Deployments, calls: Calls, logs: CallLogs) -> None:
        self.keys = keys
        self.deployments = deployments
        self.calls = calls
        self.logs = logs
        self.app = FastAPI(
            title="TuneForge OpenAI-compatible API", docs_url=None, redoc_url=None, openapi_url=None
        )
        self.app.add_exception_handler(RequestValidationError, self._invalid)  # type: ignore[arg-type]
        self.app.add_exception_handler(ServiceError, self._service_error)  # type: ignore[arg-type]
        self.app.post("/v1/chat/completions")(self.chat)
        self.app.post("/v1/completions")(self.completions)
        self.app.get("/v1/models")(self.models)
        self.app.post("/v1/feedback")(self.feedback)

    async def _invalid(self, request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        location = [str(p) for p in first.get("loc", ()) if p != "body"]
        param = ".".join(location) or None
        message = first.get("msg", "invalid request")
        if first.get("type") == "extra_forbidden":
            message = f"unknown parameter {param!r}: this API does not accept it"
        elif first.get("type") == "json_invalid":
            message = "the body is not valid JSON"
        return error_response(
            400, "invalid_request_error", f"{param}: {message}" if param else message, param=param
        )

    async def _service_error(self, request: Request, exc: ServiceError) -> JSONResponse:
        return from_service_error(exc)

    async def _principal(self, request: Request, needs: str = "viewer") -> Principal:
        """The caller's key, which must have the role `needs` (answering and feedback: member)."""
        principal = await self._key(request)
        if ROLES.index(principal.role) < ROLES.index(needs):
            raise PermissionDenied(
                f"this call needs a key with the {needs} role; this key is a {principal.role}",
                reason="ROLE_FORBIDDEN",
            )
        return principal

    async def _key(self, request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise Unauthenticated(
                "send your API key as `Authorization: Bearer tf_...`", reason="MISSING_API_KEY"
            )
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(
                "the Authorization header must be `Bearer <API key>`", reason="MALFORMED_API_KEY"
            )
        principal = await self.keys.authenticate_async(token.strip())
        principal_var.set(principal)
        return principal

    async def _deployment(self, request: Request, model: str) -> DeploymentRow:
        principal = await self._principal(request, "member")
        if model.startswith("projects/"):
            name = model
        else:
            project = principal.project
            if project == ALL_PROJECTS:
                project = request.headers.get("openai-project", "") or request.headers.get(
                    "x-tuneforge-project", ""
                )
                if not project:
                    raise InvalidArgument.field(
                        "model",
                        "this key covers every project: name the deployment in full, or send OpenAI-Project",
                    )
            name = f"projects/{project}/deployments/{model}"
        try:
            return await self.deployments.for_call(name, "model")
        except (NotFound, PermissionDenied, InvalidArgument):
            raise NotFound(
                f"the model {model!r} does not exist (it is not a deployment of this project)"
            ) from None

    @staticmethod
    def _request(body: Sampling, *, messages: list[dict[str, str]] | None, prompt: str | None) -> CallRequest:
        if not 1 <= body.n <= MAX_N:
            raise InvalidArgument.field("n", f"must be between 1 and {MAX_N}")
        if body.max_tokens is not None and body.max_completion_tokens is not None:
            raise InvalidArgument.field("max_tokens", "give max_tokens or max_completion_tokens, not both")
        stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        return CallRequest(
            messages=messages,
            prompt=prompt,
            max_tokens=body.max_tokens if body.max_tokens is not None else body.max_completion_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
            stop=stop,
            seed=body.seed,
            stream=body.stream,
        )

    async def chat(self, body: ChatBody, request: Request) -> Any:
        deployment = await self._deployment(request, body.model)
        messages = [{"role": m.role, "content": m.content} for m in body.messages]
        call = self._request(body, messages=messages, prompt=None)
        return await self._answer(deployment, body, call, "chat")

    async def completions(self, body: CompletionBody, request: Request) -> Any:
        deployment = await self._deployment(request, body.model)
        call = self._request(body, messages=None, prompt=body.prompt)
        return await self._answer(deployment, body, call, "completion")

    async def _answer(self, deployment: DeploymentRow, body: Sampling, call: CallRequest, kind: str) -> Any:
        call_id = new_call_id(kind)
        streams = [
            self.calls.run(deployment, call, call_id if i == 0 else f"{call_id}-{i}") for i in range(body.n)
        ]
        firsts = await asyncio.gather(*(anext(s, None) for s in streams), return_exceptions=True)
        for first in firsts:
            if isinstance(first, BaseException):
                for stream in streams:
                    await stream.aclose()
                raise first
        shape = Shape(call_id, kind, body.model, int(time.time()))
        if not body.stream:
            return await shape.whole(streams, firsts)  # type: ignore[arg-type]
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            shape.events(streams, firsts, include_usage),  # type: ignore[arg-type]
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def models(self, request: Request) -> Any:
        principal = await self._principal(request)
        project = principal.project
        if project == ALL_PROJECTS:
            project = request.headers.get("openai-project", "") or request.headers.get(
                "x-tuneforge-project", ""
            )
        items: list[deployment_pb2.Deployment] = []
        token = ""
        while project:
            page, token = await self.deployments.list(f"projects/{project}", 1000, token)
            items.extend(page)
            if not token:
                break
        return {
            "object": "list",
            "data": [
                {
                    "id": d.name.rsplit("/", 1)[-1],
                    "object": "model",
                    "created": d.create_time.seconds,
                    "owned_by": project,
                }
                for d in items
            ],
        }

    async def feedback(self, body: FeedbackBody, request: Request) -> Any:
        await self._principal(request, "member")
        await self.calls.written()
        row = await self.logs.db.run(lambda s: _call_and_deployment(s, body.id))
        if row is None:
            raise NotFound(f"no logged call has the id {body.id!r}", reason="CALL_NOT_FOUND")
        call, deployment = row
        feedback = deployment_pb2.Feedback(
            rating=RATING_VALUES[body.rating] if body.rating else 0,
            correction=body.correction,
            comment=body.comment,
            tags=body.tags,
        )
        try:
            logged = await self.logs.feedback(call_name(deployment, call.id), feedback)
        except PermissionDenied:
            raise NotFound(f"no logged call has the id {body.id!r}", reason="CALL_NOT_FOUND") from None
        return {
            "id": logged.id,
            "object": "feedback",
            "deployment": deployment_name(deployment),
            "rating": body.rating,
        }


def _call_and_deployment(session: Any, call_id: str) -> tuple[CallRow, DeploymentRow] | None:
    call = session.get(CallRow, call_id)
    if call is None:
        return None
    deployment = session.get(DeploymentRow, call.deployment_uid)
    session.expunge_all()
    return call, deployment


class Shape:
    """OpenAI's response shapes for one call (with `n` choices)."""

    def __init__(self, call_id: str, kind: str, model: str, created: int) -> None:
        self.call_id, self.kind, self.model, self.created = call_id, kind, model, created

    def _choice(self, index: int, text: str, finish: str | None, *, delta: bool) -> dict[str, Any]:
        if self.kind == "completion":
            return {"index": index, "text": text, "finish_reason": finish, "logprobs": None}
        body = {"role": "assistant", "content": text}
        return {
            "index": index,
            ("delta" if delta else "message"): body,
            "finish_reason": finish,
            "logprobs": None,
        }

    def _envelope(
        self, choices: list[dict[str, Any]], *, chunk: bool, usage: dict[str, int] | None, version: str
    ) -> dict[str, Any]:
        kind = {"chat": "chat.completion", "completion": "text_completion"}[self.kind]
        return {
            "id": self.call_id,
            "object": f"{kind}.chunk" if chunk and self.kind == "chat" else kind,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": version,
            "choices": choices,
            **({"usage": usage} if usage is not None else {}),
        }

    async def whole(self, streams: list[AsyncIterator[Piece]], firsts: list[Piece | None]) -> dict[str, Any]:
        choices, usage, version = [], {"prompt_tokens": 0, "completion_tokens": 0}, ""
        for index, (stream, first) in enumerate(zip(streams, firsts, strict=True)):
            pieces = [first] if first else []
            pieces += [p async for p in stream]
            text = "".join(p.delta for p in pieces)
            last = pieces[-1] if pieces else None
            choices.append(self._choice(index, text, last.finish_reason if last else "stop", delta=False))
            if last and last.usage:
                usage["prompt_tokens"] = last.usage["prompt_tokens"]
                usage["completion_tokens"] += last.usage["completion_tokens"]
            version = version or (last.model_version if last else "")
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return self._envelope(choices, chunk=False, usage=usage, version=version)

    async def events(
        self, streams: list[AsyncIterator[Piece]], firsts: list[Piece | None], include_usage: bool
    ) -> AsyncIterator[str]:
        queue: asyncio.Queue[tuple[int, Piece | BaseException | None]] = asyncio.Queue()

        async def pump(index: int, stream: AsyncIterator[Piece], first: Piece | None) -> None:
            try:
                if first is not None:
                    await queue.put((index, first))
                async for piece in stream:
                    await queue.put((index, piece))
            except BaseException as error:  # the replica was lost mid-answer
                await queue.put((index, error))
            finally:
                await queue.put((index, None))

        tasks = [
            asyncio.create_task(pump(i, s, f)) for i, (s, f) in enumerate(zip(streams, firsts, strict=True))
        ]
        open_streams, usage = len(tasks), {"prompt_tokens": 0, "completion_tokens": 0}
        try:
            if self.kind == "chat":
                for index in range(len(tasks)):
                    role = {
                        "index": index,
                        "delta": {"role": "assistant", "content": ""},
                        "finish_reason": None,
                    }
                    yield _sse(self._envelope([role], chunk=True, usage=None, version=""))
            while open_streams:
                index, item = await queue.get()
                if item is None:
                    open_streams -= 1
                    continue
                if isinstance(item, BaseException):
                    message = getattr(item, "message", None) or "the answer was interrupted"
                    yield _sse(
                        {
                            "error": {
                                "message": message,
                                "type": "server_error",
                                "param": None,
                                "code": "replica_lost",
                            }
                        }
                    )
                    return
                if item.usage:
                    usage["prompt_tokens"] = item.usage["prompt_tokens"]
                    usage["completion_tokens"] += item.usage["completion_tokens"]
                choice = self._choice(index, item.delta, item.finish_reason or None, delta=True)
                if self.kind == "chat":
                    choice["delta"] = {"content": item.delta} if item.delta else {}
                yield _sse(self._envelope([choice], chunk=True, usage=None, version=item.model_version))
            if include_usage:
                usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
                yield _sse(self._envelope([], chunk=True, usage=usage, version=""))
            yield "data: [DONE]\n\n"
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for stream in streams:
                with contextlib.suppress(Exception):
                    await stream.aclose()


def _sse(body: dict[str, Any]) -> str:
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"
