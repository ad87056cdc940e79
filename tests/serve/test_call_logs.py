"""Call logs as a deployment's settings say: PII masked before anything is stored, nothing but the
counts when logging is off, and payloads read back the same once compacted into Parquet in S3."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import openai

from services.kit.db import Database
from services.serve.logs import CallLogs
from services.suite.suite import LocalSuite
from tests.registry.test_registry_bad_input import suite_store
from tuneforge import Client
from tuneforge.api.serving import DEPLOYMENT_STATES

SECRET = "我的邮箱是 zhang.san@example.com，电话 13812345678，请批改作文"


def compact_everything(suite: LocalSuite) -> int:
    """The serve service's own compactor, run now over every hour (it normally waits an hour)."""
    env = suite.service_env("serve")
    db = Database(env["TUNEFORGE_DATABASE_URL"], schema="serve")
    logs = CallLogs(db, suite_store(suite), None, None)  # type: ignore[arg-type]
    try:
        return asyncio.run(logs.compact(timedelta(hours=-1)))
    finally:
        db.dispose()


def test_masking_logging_off_and_compaction(
    client: Client, suite: LocalSuite, project: str, base_model: str
) -> None:
    client.serve.create("masked", base_model, max_tokens=6, pii_masking=True)
    client.serve.create("quiet", base_model, max_tokens=6, logging=False)
    for name in ("masked", "quiet"):
        assert DEPLOYMENT_STATES[client.serve.wait(name, timeout=120).state] == "ready"
    oc = openai.OpenAI(base_url=suite.endpoints["openai"], api_key=suite.admin_key, project=project)
    masked = oc.chat.completions.create(model="masked", messages=[{"role": "user", "content": SECRET}])
    quiet = oc.chat.completions.create(model="quiet", messages=[{"role": "user", "content": SECRET}])
    completion = oc.completions.create(model="masked", prompt="联系 li@example.org 获取", max_tokens=4)
    assert completion.object == "text_completion" and completion.choices[0].text is not None

    logs = {log.id: log for log in client.serve.logs("masked")}
    assert logs[masked.id].messages[0].content == "我的邮箱是 [EMAIL]，电话 [PHONE]，请批改作文"
    assert logs[completion.id].messages[0].content == "联系 [EMAIL] 获取", "a prompt is one user message"
    assert "example" not in str(logs)
    (log,) = client.serve.logs("quiet")
    assert log.id == quiet.id and not log.messages and not log.answer, "logging off keeps no text"
    assert log.usage.completion_tokens == quiet.usage.completion_tokens, "…but still the counts"
    assert client.serve.stats("quiet").total.requests == 1

    assert compact_everything(suite) >= 2
    store = suite_store(suite)
    uid = client.serve.get("masked").uid
    parts = list(store.client.list_objects("tuneforge", prefix=f"calls/{uid}/", recursive=True))
    assert parts and all(p.object_name.endswith(".parquet") for p in parts)
    again = {log.id: log for log in client.serve.logs("masked")}
    assert (
        again[masked.id].messages == logs[masked.id].messages
        and again[masked.id].answer == masked.choices[0].message.content
    )
    client.serve.feedback(again[masked.id].name, rating="down", correction="请删除个人信息后再提交。")
    sft = client.serve.backflow("masked", "masked-traffic")
    rows = list(client.data.rows(client.data.wait(client.data.get_version(sft.dataset_version)).name))
    assert rows[0]["messages"][0]["content"].startswith("我的邮箱是 [EMAIL]"), "backflow reads compacted logs"

    client.serve.delete("masked")
    client.serve.delete("quiet")
    assert not list(store.client.list_objects("tuneforge", prefix=f"calls/{uid}/", recursive=True)), (
        "a deleted deployment's log parts go with it"
    )
