"""Bad input to a deployment: each mistake gets the status OpenAI uses and a message that names the
problem, in OpenAI's error shape; the official client raises the matching exception. Load beyond
what a deployment admits is a 429 with Retry-After, never a hang."""

from __future__ import annotations

import io
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import openai
import pytest

from services.kit.auth import ApiKeyStore
from services.suite.suite import LocalSuite
from tests.registry.test_registry_api import expect_error
from tests.registry.test_registry_bad_input import suite_store
from tuneforge import Client
from tuneforge.api.serving import DEPLOYMENT_STATES

CHAT = [{"role": "user", "content": "请判断学生的答案是否正确"}]


class Deployed:
    def __init__(self, suite: LocalSuite, client: Client, project: str) -> None:
        self.suite, self.client, self.project = suite, client, project
        self.oc = openai.OpenAI(
            base_url=suite.endpoints["openai"], api_key=suite.admin_key, project=project, max_retries=0
        )
        self.http = httpx.Client(
            base_url=suite.endpoints["openai"],
            headers={"Authorization": f"Bearer {suite.admin_key}", "OpenAI-Project": project},
            timeout=60,
        )

    def post(self, path: str, body: dict[str, Any], **headers: str) -> httpx.Response:
        return self.http.post(path, json=body, headers=headers)


@pytest.fixture(scope="module")
def bot(suite: LocalSuite, tiny_model_dir: Path) -> Iterator[Deployed]:
    """The tiny base model deployed as `bot` (context 96 tokens) and `one` (one request at a time)."""
    project = "serve-bad-" + uuid.uuid4().hex[:8]
    with Client(suite.endpoints, api_key=suite.admin_key, project=project) as client:
        client.models.create("tiny")
        version = client.models.upload("tiny", tiny_model_dir).name
        client.serve.create("bot", version, max_tokens=8, max_context=96)
        client.serve.create("one", version, max_tokens=8, max_concurrent_requests=1)
        for name in ("bot", "one"):
            state = client.serve.wait(name, timeout=120)
            assert DEPLOYMENT_STATES[state.state] == "ready", state.state_reason
        yield Deployed(suite, client, project)
        client.serve.delete("bot")
        client.serve.delete("one")


def openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    return error


def test_an_unknown_model_is_404_in_openai_shape(bot: Deployed) -> None:
    error = openai_error(bot.post("/chat/completions", {"model": "nobody", "messages": CHAT}), 404)
    assert error["type"] == "not_found_error" and error["code"] == "model_not_found"
    assert "'nobody'" in error["message"] and error["param"] == "model"
    with pytest.raises(openai.NotFoundError):
        bot.oc.completions.create(model="nobody", prompt="hi")


def test_a_prompt_over_the_context_is_400_naming_the_limit(bot: Deployed) -> None:
    long = [{"role": "user", "content": "作文批改：" + "这是一篇很长的作文，" * 40}]
    error = openai_error(bot.post("/chat/completions", {"model": "bot", "messages": long}), 400)
    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"
    assert "context is 96 tokens" in error["message"] and "max_tokens 8" in error["message"]
    with pytest.raises(openai.BadRequestError, match="context is 96 tokens"):
        bot.oc.chat.completions.create(model="bot", messages=long, stream=True)
    # Within the context, the same deployment answers.
    assert bot.oc.chat.completions.create(model="bot", messages=CHAT).choices[0].finish_reason


@pytest.mark.parametrize(
    ("extra", "param", "words"),
    [
        ({"temperature": -0.5}, "temperature", "between 0 and 2"),
        ({"top_p": 1.5}, "top_p", "at most 1"),
        ({"n": 5}, "n", "between 1 and 4"),
        ({"max_tokens": 100_000}, "max_tokens", "between 1 and 8192"),
        ({"max_tokens": 0}, "max_tokens", "between 1 and 8192"),
        ({"logit_bias": {"1": 5}}, "logit_bias", "does not accept"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
        (
            {"messages": [{"role": "robot", "content": "hi"}]},
            "messages.0.role",
            "'system', 'user' or 'assistant'",
        ),
        ({"messages": []}, "messages", "at least 1"),
    ],
)
def test_invalid_parameters_are_400_naming_the_parameter(
    bot: Deployed, extra: dict[str, Any], param: str, words: str
) -> None:
    error = openai_error(bot.post("/chat/completions", {"model": "bot", "messages": CHAT, **extra}), 400)
    assert error["type"] == "invalid_request_error" and error["param"] == param, error
    assert words in error["message"] and param.split(".")[0] in error["message"], error["message"]


def test_the_official_client_sees_bad_parameters_as_bad_requests(bot: Deployed) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        bot.oc.chat.completions.create(model="bot", messages=CHAT, temperature=-1)
    assert caught.value.param == "temperature"
    with pytest.raises(openai.BadRequestError) as caught:
        bot.oc.chat.completions.create(model="bot", messages=CHAT, extra_body={"best_of": 3})
    assert caught.value.param == "best_of" and "best_of" in caught.value.message


def test_a_missing_or_wrong_key_is_401(bot: Deployed) -> None:
    bare = httpx.Client(base_url=bot.suite.endpoints["openai"], timeout=30)
    error = openai_error(bare.post("/chat/completions", json={"model": "bot", "messages": CHAT}), 401)
    assert error["type"] == "authentication_error" and "Authorization: Bearer" in error["message"]
    error = openai_error(bare.get("/models", headers={"Authorization": "Basic abc"}), 401)
    assert "Bearer" in error["message"]
    wrong = openai.OpenAI(base_url=bot.suite.endpoints["openai"], api_key="tf_0000_wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model="bot", messages=CHAT)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()


def test_another_projects_deployment_is_404(bot: Deployed, keys: ApiKeyStore) -> None:
    _, token = keys.create("someone-else", "member", "another project's key")
    other = openai.OpenAI(base_url=bot.suite.endpoints["openai"], api_key=token, max_retries=0)
    assert [m.id for m in other.models.list()] == [], "it sees no deployment of another project"
    with pytest.raises(openai.NotFoundError):
        other.chat.completions.create(model="bot", messages=CHAT)
    full = f"projects/{bot.project}/deployments/bot"
    with pytest.raises(openai.NotFoundError) as caught:
        other.chat.completions.create(model=full, messages=CHAT)
    assert caught.value.code == "model_not_found" and bot.project not in caught.value.message.replace(
        full, ""
    )
    # Nor may it send feedback on another project's calls.
    answer = bot.oc.chat.completions.create(model="bot", messages=CHAT)
    response = httpx.post(
        bot.suite.endpoints["openai"] + "/feedback",
        json={"id": answer.id, "rating": "down"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert openai_error(response, 404)["code"] == "call_not_found"
    assert not bot.client.serve.get("bot").name.endswith("someone-else")


def test_more_requests_than_admitted_get_429_with_retry_after(bot: Deployed) -> None:
    """`one` runs one request and queues one more; the rest are refused at once, never left hanging."""
    statuses: list[int] = []
    refused: list[httpx.Response] = []

    def call() -> None:
        response = bot.post("/chat/completions", {"model": "one", "messages": CHAT, "max_tokens": 400})
        statuses.append(response.status_code)
        if response.status_code == 429:
            refused.append(response)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(t.is_alive() for t in threads), "every request got an answer"
    assert sorted(set(statuses)) == [200, 429] and statuses.count(200) >= 2, statuses
    error = openai_error(refused[0], 429)
    assert refused[0].headers["Retry-After"] == "1" and error["type"] == "rate_limit_error"
    assert "limit of 1 concurrent requests" in error["message"] and error["code"] == "queue_full"
    stats = bot.client.serve.stats("one").total
    assert stats.errors["RESOURCE_EXHAUSTED"] == statuses.count(429) and stats.requests == 6


def test_grpc_chat_names_the_problem_too(bot: Deployed) -> None:
    expect_error("NOT_FOUND", lambda: list(bot.client.serve.chat("nobody", CHAT)))
    err = expect_error("INVALID_ARGUMENT", lambda: list(bot.client.serve.chat("bot", CHAT, temperature=3.0)))
    assert err.violations[0].field == "temperature"
    err = expect_error("INVALID_ARGUMENT", lambda: list(bot.client.serve.chat("bot", [])))
    assert err.violations[0].field == "messages"
    pieces = list(bot.client.serve.chat("bot", CHAT, max_tokens=3))
    assert pieces[-1].finish_reason == "length" and pieces[-1].usage.completion_tokens == 3


def test_bad_deployments_are_refused_with_the_field(bot: Deployed) -> None:
    version = bot.client.serve.get("bot").model_version
    expect_error("ALREADY_EXISTS", bot.client.serve.create, "bot", version)
    err = expect_error("INVALID_ARGUMENT", bot.client.serve.create, "ghost", "tiny/99")
    assert "version 99 of" in err.message and err.violations[0].field == "deployment.model_version"
    err = expect_error("INVALID_ARGUMENT", bot.client.serve.create, "Bad_Name", version)
    assert err.violations[0].field == "deployment_id"
    err = expect_error(
        "INVALID_ARGUMENT", bot.client.serve.create, "huge", version, max_concurrent_requests=10_000
    )
    assert err.violations[0].field == "deployment.max_concurrent_requests"
    err = expect_error("INVALID_ARGUMENT", bot.client.serve.update, "bot", uid="x")
    assert err.violations[0].field == "update_mask"
    assert [d.name.rsplit("/", 1)[-1] for d in bot.client.serve.list()] == ["bot", "one"], "nothing half-made"


def test_a_version_whose_files_fail_verification_fails_with_the_reason(
    client: Client, suite: LocalSuite, project: str, tiny_model_dir: Path
) -> None:
    client.models.create("tampered")
    version = client.models.upload("tampered", tiny_model_dir)
    model = client.models.get("tampered")
    key = f"models/{model.uid}/versions/{version.uid}/model.safetensors"
    store = suite_store(suite)
    data = bytearray(store.client.get_object("tuneforge", key).read())
    data[len(data) // 2] ^= 0xFF
    store.client.put_object("tuneforge", key, io.BytesIO(bytes(data)), len(data))
    client.serve.create("broken", version.name)
    failed = client.serve.wait("broken", timeout=120)
    assert DEPLOYMENT_STATES[failed.state] == "failed"
    assert "failed verification" in failed.state_reason and "model.safetensors" in failed.state_reason
    oc = openai.OpenAI(
        base_url=suite.endpoints["openai"], api_key=suite.admin_key, project=project, max_retries=0
    )
    with pytest.raises(openai.InternalServerError) as caught:  # 503: nothing serves it
        oc.chat.completions.create(model="broken", messages=CHAT)
    assert "failed verification" in caught.value.message
    client.serve.delete("broken")


def test_a_vllm_deployment_waits_for_a_process_that_has_vllm(bot: Deployed) -> None:
    version = bot.client.serve.get("bot").model_version
    waiting = bot.client.serve.create("on-gpu", version, engine="vllm")
    assert DEPLOYMENT_STATES[waiting.state] == "creating"
    assert waiting.state_reason == "waiting for a serving process with the vllm engine that can hold it"
    error = openai_error(bot.post("/chat/completions", {"model": "on-gpu", "messages": CHAT}), 503)
    assert "waiting for a serving process with the vllm engine" in error["message"]
    bot.client.serve.delete("on-gpu")
