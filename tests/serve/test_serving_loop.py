"""The whole loop through serving (模型服务 → 数据回流 → 增量训练): a tuned adapter deployed and called
through the official `openai` client, every call logged with its statistics, corrections sent back
as feedback, turned into a dataset, trained on incrementally with replay, and the deployment rolled
over to the new version while clients keep calling it — with no failed request."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx2 as httpx
import openai
from google.protobuf import json_format

from services.suite.suite import LocalSuite
from tuneforge import Client
from tuneforge.api.serving import DEPLOYMENT_STATES
from tuneforge.api.training import STATE_NAMES

FAST = {"learning_rate": 2e-3, "batch_size": 8, "epochs": 1}


def openai_client(suite: LocalSuite, project: str) -> openai.OpenAI:
    # The admin key covers every project: OpenAI-Project names the one whose deployments `model` means.
    return openai.OpenAI(base_url=suite.endpoints["openai"], api_key=suite.admin_key, project=project)


def train(client: Client, base: str, data: dict[str, float], **extra: object) -> str:
    job = client.train.create(base_model=base, training_data=data, hyperparameters=FAST, **extra)
    done = client.train.wait(job.name, timeout=300)
    assert STATE_NAMES[done.state] == "succeeded", done.error
    return done.final_model_version


def ask(oc: openai.OpenAI, prompt: list[dict], *, stream: bool) -> tuple[str, str, str]:
    """(response id, answer, model version) of one chat."""
    if not stream:
        r = oc.chat.completions.create(model="grader", messages=prompt, max_tokens=24, temperature=0)
        assert r.object == "chat.completion" and r.choices[0].finish_reason in ("stop", "length")
        assert r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 0
        return r.id, r.choices[0].message.content, r.system_fingerprint
    chunks = list(
        oc.chat.completions.create(
            model="grader",
            messages=prompt,
            max_tokens=24,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert len({c.id for c in chunks}) == 1 and chunks[-1].usage.completion_tokens > 0
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish in (["stop"], ["length"]), finish
    version = next(c.system_fingerprint for c in chunks if c.system_fingerprint)
    return chunks[0].id, text, version


def test_serve_feedback_backflow_retrain_and_roll_over(
    client: Client, suite: LocalSuite, project: str, base_model: str, tmp_path: Path
) -> None:
    client.data.install_preset("essay-grading")
    tuned = train(client, base_model, {"essay-grading-train": 0.2})

    client.serve.create("grader", tuned, max_tokens=24, temperature=0.0)
    deployment = client.serve.wait("grader", timeout=120)
    assert DEPLOYMENT_STATES[deployment.state] == "ready", deployment.state_reason
    assert deployment.serving_version == tuned and deployment.base_model_version == base_model
    oc = openai_client(suite, project)
    assert [m.id for m in oc.models.list()] == ["grader"]

    # 30 chats, every other one streamed, on prompts the model never trained on.
    held_out = list(client.data.rows("essay-grading-eval/1"))[:30]
    calls = []
    for i, row in enumerate(held_out):
        prompt = [{"role": m["role"], "content": m["content"]} for m in row["prompt"]]
        call_id, answer, version = ask(oc, prompt, stream=i % 2 == 1)
        assert version == tuned
        calls.append((call_id, prompt, answer, row["reference"]))

    logged = {log.id: log for log in client.serve.logs("grader", page_size=7)}
    assert set(logged) == {c[0] for c in calls}, "every call is logged under the id its client saw"
    for call_id, prompt, answer, _ in calls:
        log = logged[call_id]
        assert log.answer == answer and [m.content for m in log.messages] == [m["content"] for m in prompt]
        assert log.status == "OK" and log.model_version == tuned and log.usage.completion_tokens > 0
        assert log.parameters["max_tokens"] == 24 and log.parameters["temperature"] == 0
    stats = client.serve.stats("grader")
    assert stats.total.requests == 30 and not stats.total.errors
    assert stats.total.latency_ms_p50 > 0 and stats.total.latency_ms_p99 >= stats.total.latency_ms_p50
    assert stats.total.time_to_first_token_ms_p50 > 0, "streamed calls report their first token"
    assert stats.total.completion_tokens == sum(log.usage.completion_tokens for log in logged.values())

    # Corrections on 10 answers (the reference grading), over the OpenAI-style HTTP endpoint.
    http = httpx.Client(
        base_url=suite.endpoints["openai"],
        headers={"Authorization": f"Bearer {suite.admin_key}"},
        timeout=30,
    )
    for call_id, _, _, reference in calls[:10]:
        response = http.post(
            "/feedback",
            json={"id": call_id, "rating": "down", "correction": reference, "tags": ["wrong-score"]},
        )
        assert response.status_code == 200, response.text
    for call_id, *_ in calls[10:15]:
        assert http.post("/feedback", json={"id": call_id, "rating": "up"}).status_code == 200
    badcases = list(client.serve.logs("grader", filter='has_correction = "true"'))
    assert {b.id for b in badcases} == {c[0] for c in calls[:10]}
    assert all(b.feedback.correction and list(b.feedback.tags) == ["wrong-score"] for b in badcases)
    assert len(list(client.serve.logs("grader", filter='rating = "up"'))) == 5

    # Backflow: SFT rows from the corrections; DPO pairs and KTO rows from the same feedback.
    sft = client.serve.backflow("grader", "from-traffic", kind="sft")
    assert sft.rows == 10 and sft.duplicates == 0
    version = client.data.wait(client.data.get_version(sft.dataset_version))
    assert version.row_count == 10
    provenance = json_format.MessageToDict(version.recipe)["provenance"]
    assert provenance["deployment"].endswith("/deployments/grader") and provenance["model_versions"] == [
        tuned
    ]
    rows = {r["id"]: r for r in client.data.rows(sft.dataset_version)}
    for call_id, prompt, _, reference in calls[:10]:
        assert rows[call_id]["messages"] == [*prompt, {"role": "assistant", "content": reference}]
    again = client.serve.backflow("grader", "from-traffic", kind="sft", include_thumbs_up=True)
    assert again.rows == 15, "thumbs-up answers are taken as they are when asked"
    dpo = client.serve.backflow("grader", "traffic-pairs", kind="dpo")
    kto = client.serve.backflow("grader", "traffic-labels", kind="kto")
    assert dpo.rows == 10 and kto.rows == 25, "10 pairs; 15 rated answers and 10 corrections"

    # Incremental training on the backflow, replaying the parent's data.
    child = train(client, tuned, {"from-traffic": 1.0}, replay_share=0.5)
    report = json_format.MessageToDict(
        client.train.report(client.models.get_version(child).lineage.source_job).report
    )
    assert report["mixture"]["replay"]["parent"] == tuned and report["mixture"]["new_rows"] == again.rows

    # The rolling switch: clients keep calling while the deployment moves to the new version.
    failures: list[str] = []
    versions_seen: list[str] = []
    stop = threading.Event()

    def keep_calling(worker: int) -> None:
        prompt = calls[worker][1]
        while not stop.is_set():
            try:
                versions_seen.append(ask(oc, prompt, stream=worker % 2 == 0)[2])
            except Exception as error:  # every failure is the test's finding
                failures.append(repr(error))

    threads = [threading.Thread(target=keep_calling, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        while len(versions_seen) < 8:
            time.sleep(0.05)
        updated = client.serve.update("grader", model_version=child)
        assert DEPLOYMENT_STATES[updated.state] == "updating"
        rolled = client.serve.wait("grader", timeout=120)
        assert DEPLOYMENT_STATES[rolled.state] == "ready" and rolled.serving_version == child
        settled = len(versions_seen)
        while len(versions_seen) < settled + 8:
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert not failures, failures[:3]
    assert versions_seen[0] == tuned and versions_seen[-1] == child
    switch = versions_seen.index(child)
    assert set(versions_seen[switch + 4 :]) == {child}, "once switched, the old version takes no new calls"
    stats = client.serve.stats("grader")
    assert stats.total.requests == 30 + len(versions_seen) and not stats.total.errors
    print(f"{len(versions_seen)} calls during the switch, {switch} of them answered by {tuned}")

    # Multi-LoRA: the old adapter deployed again beside the new one runs on the same loaded base.
    client.serve.create("grader-previous", tuned, max_tokens=24, temperature=0.0)
    assert DEPLOYMENT_STATES[client.serve.wait("grader-previous", timeout=120).state] == "ready"
    previous = oc.chat.completions.create(
        model="grader-previous", messages=calls[0][1], max_tokens=24, temperature=0
    )
    assert previous.system_fingerprint == tuned and previous.choices[0].message.content == calls[0][2]
    loads = [
        json.loads(line)
        for line in (suite.data_dir / "logs" / "serve-worker-0.log").read_text().splitlines()
        if '"model loaded"' in line
    ]
    assert [entry["model_version"] for entry in loads].count(base_model) == 1, "one copy of the base"
    client.serve.delete("grader")
    client.serve.delete("grader-previous")
