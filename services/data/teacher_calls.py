"""Calling a teacher: an OpenAI-compatible chat completions API, with bounded concurrency, a
request rate, retries with backoff, and a cache of replies.

Every reply is stored under the hash of the exact request (teacher, messages, sampling, sample
index) before the caller sees it, so a run that restarts after a crash, or a later run asking the
same thing, gets it from the cache instead of calling the teacher again.

What can go wrong, and what becomes of it:
- 429, a 5xx, a timeout or a dropped connection: retried with exponential backoff (429's
  `Retry-After` is honoured) up to `max_retries`; then the request fails with `TEACHER_UNAVAILABLE`.
- No connection at all after the retries, 401/403 (a wrong key) or 404 (no such model): the teacher
  cannot be used, and `TeacherUnusable` stops the whole run.
- Another 4xx (a prompt too long, say): that request fails with `TEACHER_ERROR` and the teacher's message.
- A reply that is not a chat completion (not JSON, no `choices`): `BAD_REPLY`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx2 as httpx

MAX_RETRY_AFTER_SECONDS = 60.0


@dataclass(frozen=True)
class TeacherEndpoint:
    """Where and how to call one teacher (its key already opened)."""

    uid: str
    base_url: str
    model: str
    api_key: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    max_concurrency: int = 8
    requests_per_minute: float = 0.0
    timeout_seconds: float = 120.0
    max_retries: int = 4
    input_cost_per_million_tokens: float = 0.0
    output_cost_per_million_tokens: float = 0.0
    # The first retry waits this long, doubling each time.
    backoff_seconds: float = 0.5

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"


@dataclass(frozen=True)
class Reply:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = ""
    cached: bool = False


class ReplyError(Exception):
    """One request failed for good: `reason` is stable (`TEACHER_UNAVAILABLE`, `TEACHER_ERROR`, `BAD_REPLY`)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class TeacherUnusable(Exception):
    """The teacher cannot answer anything (unreachable, a wrong key, no such model): stop the run."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class CallCounts:
    """What a run's calls cost, summed over its teachers."""

    calls: int = 0
    cached_calls: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0


class ReplyCache:
    """Where replies are kept: `get(key)` and `put(key, reply)` (the worker's SQL table)."""

    def __init__(
        self,
        get: Callable[[str], Awaitable[Reply | None]],
        put: Callable[[str, Reply], Awaitable[None]],
    ) -> None:
        self.get = get
        self.put = put


def request_key(project: str, endpoint: TeacherEndpoint, body: Mapping[str, Any], sample: int) -> str:
    """The cache key of a request: who is asked what, and which sample of it."""
    identity = {
        "project": project,
        "teacher": endpoint.uid,
        "url": endpoint.url,
        "body": body,
        "sample": sample,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class TeacherCalls:
    """One teacher as a run uses it: `await calls.ask(messages, sample=i, **sampling)`."""

    def __init__(
        self,
        project: str,
        endpoint: TeacherEndpoint,
        cache: ReplyCache,
        counts: CallCounts,
        http: httpx.AsyncClient,
    ) -> None:
        self.project = project
        self.endpoint = endpoint
        self.cache = cache
        self.counts = counts
        self.http = http
        self._slots = asyncio.Semaphore(endpoint.max_concurrency)
        self._pace_lock = asyncio.Lock()
        self._next_start = 0.0

    async def ask(
        self,
        messages: list[dict[str, str]],
        *,
        sample: int = 0,
        temperature: float = 0.7,
        top_p: float = 1.0,
        max_tokens: int | None = None,
        seed: int | None = None,
    ) -> Reply:
        """The teacher's reply; `max_tokens` None leaves the length to the teacher's own default."""
        body: dict[str, Any] = {
            "model": self.endpoint.model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "temperature": temperature,
            "top_p": top_p,
        }
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if seed is not None:
            # Each sample of the same request gets a seed of its own, so samples differ.
            body["seed"] = (seed + sample) % 2**31
        key = request_key(self.project, self.endpoint, body, sample)
        cached = await self.cache.get(key)
        if cached is not None:
            self.counts.cached_calls += 1
            return Reply(
                cached.text, cached.prompt_tokens, cached.completion_tokens, cached.finish_reason, True
            )
        async with self._slots:
            reply = await self._send(body)
        await self.cache.put(key, reply)
        self.counts.prompt_tokens += reply.prompt_tokens
        self.counts.completion_tokens += reply.completion_tokens
        self.counts.cost += (
            reply.prompt_tokens * self.endpoint.input_cost_per_million_tokens
            + reply.completion_tokens * self.endpoint.output_cost_per_million_tokens
        ) / 1e6
        return reply

    async def _pace(self) -> None:
        """Start requests no faster than `requests_per_minute`."""
        if self.endpoint.requests_per_minute <= 0:
            return
        interval = 60.0 / self.endpoint.requests_per_minute
        async with self._pace_lock:
            now = time.monotonic()
            wait = self._next_start - now
            self._next_start = max(now, self._next_start) + interval
        if wait > 0:
            await asyncio.sleep(wait)

    async def _send(self, body: dict[str, Any]) -> Reply:
        headers = {"Content-Type": "application/json", **self.endpoint.headers}
        if self.endpoint.api_key:
            headers["Authorization"] = f"Bearer {self.endpoint.api_key}"
        attempt = 0
        while True:
            await self._pace()
            self.counts.calls += 1
            delay: float | None = None
            try:
                response = await self.http.post(
                    self.endpoint.url, json=body, headers=headers, timeout=self.endpoint.timeout_seconds
                )
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as error:
                failure = TeacherUnusable if isinstance(error, httpx.ConnectError) else ReplyError
                problem = (
                    failure,
                    "TEACHER_UNREACHABLE" if failure is TeacherUnusable else "TEACHER_UNAVAILABLE",
                    f"{self.endpoint.url}: {type(error).__name__}: {str(error)[:200] or 'no reply'}",
                )
            else:
                status = response.status_code
                if status == 200:
                    return parse_reply(response.content, self.endpoint.url)
                message = error_message(response)
                if status in (401, 403):
                    raise TeacherUnusable(
                        "TEACHER_UNAUTHORIZED",
                        f"{self.endpoint.url} refused the key ({status}): {message}; "
                        "check the teacher's api_key",
                    )
                if status == 404:
                    raise TeacherUnusable(
                        "TEACHER_NOT_FOUND",
                        f"{self.endpoint.url} answered 404 for model {self.endpoint.model!r}: {message}",
                    )
                if status != 429 and status < 500:
                    raise ReplyError(
                        "TEACHER_ERROR", f"the teacher refused the request ({status}): {message}"
                    )
                problem = (ReplyError, "TEACHER_UNAVAILABLE", f"the teacher answered {status}: {message}")
                if status == 429:
                    delay = retry_after(response)
            if attempt >= self.endpoint.max_retries:
                failure, reason, message = problem
                raise failure(reason, f"{message} (after {attempt + 1} attempts)")
            attempt += 1
            self.counts.retries += 1
            backoff = self.endpoint.backoff_seconds * 2 ** (attempt - 1)
            await asyncio.sleep(delay if delay is not None else backoff * (0.5 + random.random()))


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_SECONDS)
    except ValueError:
        return None


def error_message(response: httpx.Response) -> str:
    """The error's message in OpenAI's shape, else the start of the body."""
    try:
        payload = response.json()
        message = payload["error"]["message"] if isinstance(payload.get("error"), dict) else payload["error"]
        return str(message)[:300]
    except Exception:
        return response.text[:200] or response.reason_phrase


def parse_reply(content: bytes, url: str) -> Reply:
    try:
        payload = json.loads(content)
        choice = payload["choices"][0]
        text = choice["message"]["content"]
        if not isinstance(text, str):
            raise TypeError("content is not text")
    except (ValueError, KeyError, IndexError, TypeError) as error:
        raise ReplyError(
            "BAD_REPLY",
            f"{url} did not answer with a chat completion ({type(error).__name__}: {str(error)[:120]})",
        ) from None
    usage = payload.get("usage") or {}
    return Reply(
        text=text,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        finish_reason=str(choice.get("finish_reason") or ""),
    )
