"""A serving process killed mid-answer: the stream it was writing ends with an error event (never
a hang, never a silently cut answer), the call is logged as failed, and the deployment moves to
another serving process, which answers from then on."""

from __future__ import annotations

import time
from pathlib import Path

import openai
import pytest

from services.suite.suite import LocalSuite
from tuneforge import Client
from tuneforge.api.serving import DEPLOYMENT_STATES

CHAT = [{"role": "user", "content": "写一首很长的诗"}]


def test_a_process_killed_mid_stream_ends_the_stream_and_another_takes_over(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    with (
        LocalSuite(tmp_path / "suite", services=("registry", "serve")) as suite,
        Client(suite.endpoints, api_key=suite.admin_key, project="recovery") as client,
    ):
        client.models.create("tiny")
        version = client.models.upload("tiny", tiny_model_dir).name
        client.serve.create("bot", version, max_tokens=8)
        assert DEPLOYMENT_STATES[client.serve.wait("bot", timeout=120).state] == "ready"
        suite.start_worker(1, kind="serve")  # a second process, idle: `bot` is held by the first
        oc = openai.OpenAI(
            base_url=suite.endpoints["openai"], api_key=suite.admin_key, project="recovery", max_retries=0
        )

        received: list[str] = []
        stream = oc.chat.completions.create(model="bot", messages=CHAT, max_tokens=450, stream=True)
        with pytest.raises(openai.APIError) as caught:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    received.append(chunk.choices[0].delta.content)
                # Killed at the first token, so the tiny model (hundreds of tokens a second) cannot
                # finish the answer before the kill lands.
                if len(received) == 1:
                    suite.processes["serve-worker-0"].kill()
        assert "stopped mid-answer" in caught.value.message and len(received) < 450
        killed = time.monotonic()

        # Until the dead process's heartbeat lapses its calls fail fast (503), then the other one
        # claims the deployment and loads the model.
        refusals: list[int] = []
        while True:
            assert time.monotonic() - killed < 60, "the deployment never recovered"
            try:
                answer = oc.chat.completions.create(model="bot", messages=CHAT, max_tokens=4)
                break
            except openai.APIStatusError as error:
                refusals.append(error.status_code)
                time.sleep(0.5)
        recovered = time.monotonic() - killed
        print(f"recovered in {recovered:.1f} s after {len(refusals)} refused calls")
        assert set(refusals) <= {503}, refusals
        assert answer.choices[0].finish_reason == "length" and answer.system_fingerprint == version
        deployment = client.serve.get("bot")
        assert DEPLOYMENT_STATES[deployment.state] == "ready" and deployment.ready_replicas == 1

        lost = list(client.serve.logs("bot", filter='status = "UNAVAILABLE"'))
        assert len(lost) == 1 + refusals.count(503)
        cut = min(lost, key=lambda log: log.time.ToDatetime())
        assert cut.stream and cut.answer.startswith("".join(received)), "the log keeps what was sent"
        stats = client.serve.stats("bot").total
        assert stats.errors["UNAVAILABLE"] == len(lost) and stats.requests == len(lost) + 1
