"""The data service over real gRPC, NATS and S3: formats, kinds, validation, derived versions, presets."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.protobuf import json_format

from services.kit.auth import ApiKeyStore
from services.kit.bus import EventBus
from services.suite.suite import LocalSuite
from tests.registry.test_registry_api import expect_error
from tuneforge import Client, TuneForgeError
from tuneforge.data.v1 import data_service_pb2, dataset_pb2
from tuneforge.events.v1 import data_events_pb2, event_pb2

BAD = Path(__file__).parent / "bad_inputs"
READY = dataset_pb2.DATASET_VERSION_STATE_READY
FAILED = dataset_pb2.DATASET_VERSION_STATE_FAILED


def jsonl(records: list[object]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def chat(i: int) -> dict:
    return {
        "messages": [
            {"role": "user", "content": f"问题 {i}：北京的天气？"},
            {"role": "assistant", "content": f"第{i}天：晴，25度。"},
        ]
    }


def test_dataset_crud_and_paging(client: Client) -> None:
    kinds = ["text", "sft", "preference", "unpaired_preference", "prompt_only", "eval"]
    for i, kind in enumerate(kinds):
        created = client.data.create(f"ds-{i}", kind, tags={"team": "nlp"})
        assert created.kind == i + 1
    assert [d.name.rsplit("/", 1)[-1] for d in client.data.list(page_size=4)] == [f"ds-{i}" for i in range(6)]
    assert [d.name.rsplit("/", 1)[-1] for d in client.data.list(filter='kind = "eval"')] == ["ds-5"]
    updated = client.data.update("ds-1", description="chats", tags={"team": "cv"})
    assert updated.description == "chats" and updated.tags["team"] == "cv"
    expect_error("ALREADY_EXISTS", client.data.create, "ds-1", "sft")
    err = expect_error("INVALID_ARGUMENT", _raw_create_without_kind, client)
    assert err.violations[0].field == "dataset.kind"
    client.data.delete("ds-0")
    expect_error("NOT_FOUND", client.data.get, "ds-0")


def _raw_create_without_kind(client: Client) -> None:
    from tuneforge.api._calls import call

    call(
        client.data._stub.CreateDataset,
        data_service_pb2.CreateDatasetRequest(parent=f"projects/{client.project}", dataset_id="nokind"),
    )


def _files(tmp_path: Path) -> dict[str, tuple[str, bytes, str, str]]:
    """name -> (kind, content, expected format, expected schema)"""
    table = pa.Table.from_pylist([{"prompt": f"p{i}", "completion": f"c{i}"} for i in range(5)])
    parquet = io.BytesIO()
    pq.write_table(table, parquet)
    return {
        "chat.jsonl": ("sft", jsonl([chat(i) for i in range(5)]).encode(), "jsonl", "openai_chat"),
        "alpaca.json": (
            "sft",
            json.dumps(
                [{"instruction": f"翻译{i}", "input": "", "output": "ok"} for i in range(5)],
                ensure_ascii=False,
            ).encode(),
            "json",
            "alpaca",
        ),
        "pairs.csv": (
            "sft",
            ("prompt,completion\n" + "".join(f"q{i},a{i}\n" for i in range(5))).encode(),
            "csv",
            "trl",
        ),
        "pairs.parquet": ("sft", parquet.getvalue(), "parquet", "trl"),
        "corpus.txt": ("text", "\n\n".join(f"第{i}篇。" for i in range(5)).encode(), "text", "text"),
        "chat.jsonl.gz": (
            "sft",
            gzip.compress(jsonl([chat(i) for i in range(5)]).encode()),
            "jsonl",
            "openai_chat",
        ),
        "dpo.jsonl": (
            "preference",
            jsonl([{"prompt": f"p{i}", "chosen": "good", "rejected": "bad"} for i in range(5)]).encode(),
            "jsonl",
            "trl",
        ),
        "kto.jsonl": (
            "unpaired_preference",
            jsonl([{"prompt": f"p{i}", "completion": "c", "label": i % 2 == 0} for i in range(5)]).encode(),
            "jsonl",
            "trl",
        ),
        "rl.jsonl": (
            "prompt_only",
            jsonl([{"prompt": f"{i}+{i}=?", "answer": str(2 * i)} for i in range(5)]).encode(),
            "jsonl",
            "trl",
        ),
        "eval.jsonl": (
            "eval",
            jsonl([{"prompt": f"q{i}", "reference": f"r{i}"} for i in range(5)]).encode(),
            "jsonl",
            "trl",
        ),
        "qianfan.jsonl": (
            "sft",
            jsonl([[{"prompt": f"问{i}", "response": [["答"]]}] for i in range(5)]).encode(),
            "jsonl",
            "qianfan",
        ),
    }


@pytest.mark.parametrize("presigned", [False, True])
def test_every_format_and_kind_through_the_service(client: Client, tmp_path: Path, presigned: bool) -> None:
    formats = {"jsonl": 1, "json": 2, "csv": 3, "parquet": 4, "text": 5}
    schemas = {"openai_chat": 2, "alpaca": 3, "trl": 6, "qianfan": 5, "text": 7}
    for i, (name, (kind, content, fmt, schema)) in enumerate(_files(tmp_path).items()):
        dataset = f"f{i}"
        client.data.create(dataset, kind)
        path = tmp_path / name
        path.write_bytes(content)
        version = client.data.upload(dataset, path, presigned=presigned)
        assert version.state == READY, (name, version.errors)
        assert (version.row_count, version.source_format, version.source_schema) == (
            5,
            formats[fmt],
            schemas[schema],
        ), name
        assert {f.path for f in version.files} == {"data.parquet", "manifest.json", f"source/{name}"}
        rows = list(client.data.rows(f"{dataset}/1", page_size=2))
        assert len(rows) == 5 and all("id" in r for r in rows)
        out = tmp_path / f"download-{i}"
        client.data.download(f"{dataset}/1", out)
        assert (out / "source" / name).read_bytes() == content
        stored = pq.read_table(out / "data.parquet").to_pylist()
        assert [r["id"] for r in stored] == [r["id"] for r in rows]
        assert json.loads((out / "manifest.json").read_text())["rows"] == 5


def test_bad_input_corpus(client: Client) -> None:
    expected = json.loads((BAD / "expected.json").read_text())
    assert len(expected) >= 30
    kinds = {e["kind"] for e in expected.values()}
    for kind in kinds:
        client.data.create(f"bad-{kind.replace('_', '-')}", kind)
    for name, want in expected.items():
        dataset = f"bad-{want['kind'].replace('_', '-')}"
        version = client.data.upload(dataset, BAD / name)
        assert version.state == FAILED, name
        located = {(e.reason, e.line, e.field) for e in version.errors.examples}
        assert (want["reason"], want["line"], want["field"]) in located, (name, located)
        assert all(e.file == name and e.message for e in version.errors.examples)
        assert version.errors.counts_by_reason[want["reason"]] >= 1
        assert version.row_count == 0 and "data.parquet" not in {f.path for f in version.files}, (
            "nothing usable is stored"
        )
        err = expect_error("FAILED_PRECONDITION", lambda v=version: list(client.data.rows(v.name)))
        assert err.reason == "VERSION_NOT_READY"
    for kind in kinds:
        expect_error(
            "NOT_FOUND", client.data.get_version, f"bad-{kind.replace('_', '-')}"
        )  # no ready `latest`


def test_skip_policy_and_errors_file(client: Client, tmp_path: Path) -> None:
    client.data.create("skippy", "sft")
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        jsonl([chat(1), {"messages": [{"role": "user", "content": "q"}]}, chat(2)]) + "not json\n"
    )
    version = client.data.upload("skippy", path, error_policy="skip")
    assert (version.state, version.row_count, version.skipped_row_count) == (READY, 2, 2)
    assert dict(version.errors.counts_by_reason) == {"MISSING_ASSISTANT_TURN": 1, "INVALID_JSON": 1}
    client.data.download("skippy/1", tmp_path / "out")
    errors = [json.loads(line) for line in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    assert [(e["line"], e["reason"]) for e in errors] == [(2, "MISSING_ASSISTANT_TURN"), (4, "INVALID_JSON")]


def test_interrupted_oversized_and_corrupted_uploads_leave_nothing(client: Client, tmp_path: Path) -> None:
    client.data.create("cut", "sft")
    stub = client.data._stub
    header = data_service_pb2.UploadDatasetVersionRequest(
        header=data_service_pb2.UploadDatasetVersionHeader(
            parent=client.data.dataset_name("cut"), options=data_service_pb2.IngestOptions(filename="x.jsonl")
        )
    )

    def no_finish() -> Iterator[data_service_pb2.UploadDatasetVersionRequest]:
        yield header
        yield data_service_pb2.UploadDatasetVersionRequest(data=jsonl([chat(1)]).encode())

    with pytest.raises(grpc.RpcError) as caught:
        stub.UploadDatasetVersion(no_finish())
    assert (
        caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        and "before the finish" in caught.value.details()
    )

    def too_big() -> Iterator[data_service_pb2.UploadDatasetVersionRequest]:
        yield header
        block = jsonl([chat(i) for i in range(2000)]).encode()
        for _ in range(80):
            yield data_service_pb2.UploadDatasetVersionRequest(data=block)
        yield data_service_pb2.UploadDatasetVersionRequest(
            finish=data_service_pb2.UploadDatasetVersionFinish()
        )

    with pytest.raises(grpc.RpcError) as caught:
        stub.UploadDatasetVersion(too_big())
    error = TuneForgeError.from_rpc_error(caught.value)
    assert error.code == "RESOURCE_EXHAUSTED" and error.reason == "FILE_TOO_LARGE"

    def wrong_sha() -> Iterator[data_service_pb2.UploadDatasetVersionRequest]:
        yield header
        yield data_service_pb2.UploadDatasetVersionRequest(data=jsonl([chat(1)]).encode())
        yield data_service_pb2.UploadDatasetVersionRequest(
            finish=data_service_pb2.UploadDatasetVersionFinish(sha256="0" * 64)
        )

    with pytest.raises(grpc.RpcError) as caught:
        stub.UploadDatasetVersion(wrong_sha())
    assert TuneForgeError.from_rpc_error(caught.value).reason == "CHECKSUM_MISMATCH"

    path = tmp_path / "good.jsonl"
    path.write_text(jsonl([chat(1)]))
    upload = stub.CreateDatasetVersionUpload(
        data_service_pb2.CreateDatasetVersionUploadRequest(
            parent=client.data.dataset_name("cut"),
            options=data_service_pb2.IngestOptions(filename="good.jsonl"),
            size_bytes=path.stat().st_size,
            sha256="1" * 64,
        )
    )
    urllib.request.urlopen(
        urllib.request.Request(upload.url.url, data=path.read_bytes(), method="PUT")
    ).read()
    with pytest.raises(grpc.RpcError) as caught:
        stub.CommitDatasetVersionUpload(data_service_pb2.CommitDatasetVersionUploadRequest(name=upload.name))
    assert TuneForgeError.from_rpc_error(caught.value).reason == "CHECKSUM_MISMATCH"
    assert list(client.data.list_versions("cut")) == []


def test_derived_versions_through_the_service(client: Client, tmp_path: Path) -> None:
    client.data.create("raw", "sft")
    records = [chat(i % 40) for i in range(50)]  # ten exact duplicates
    records.append(
        {
            "messages": [
                {"role": "user", "content": "我的邮箱 zhang.san@example.com"},
                {"role": "assistant", "content": "收到。"},
            ]
        }
    )
    path = tmp_path / "raw.jsonl"
    path.write_text(jsonl(records))
    client.data.upload("raw", path)

    cleaned = client.data.clean(
        "raw/1", ["exact_dedup", {"mask_pii": {"kinds": ["email"]}}], request_id="clean-1"
    )
    again = client.data.clean(
        "raw/1", ["exact_dedup", {"mask_pii": {"kinds": ["email"]}}], request_id="clean-1"
    )
    assert again.uid == cleaned.uid, "idempotent"
    reused = expect_error(
        "INVALID_ARGUMENT", client.data.clean, "raw/1", ["exact_dedup"], request_id="clean-1"
    )
    assert reused.reason == "REQUEST_ID_REUSED" and reused.violations[0].field == "request_id"
    assert cleaned.row_count == 41 and [
        (s.operation, s.rows_removed, s.rows_changed) for s in cleaned.cleaning
    ] == [
        ("exact_dedup", 10, 0),
        ("mask_pii", 0, 1),
    ]
    assert cleaned.recipe["type"] == "cleaning" and cleaned.recipe["source"].endswith("/raw/versions/1")
    masked = [r for r in client.data.rows(cleaned.name) if "[EMAIL]" in r["messages"][0]["content"]]
    assert len(masked) == 1 and masked[0]["messages"][0]["content"] == "我的邮箱 [EMAIL]"

    split = client.data.split(cleaned.name, 0.25, seed=5)
    again = client.data.split(cleaned.name, 0.25, seed=5)
    assert (split.train.row_count, split.validation.row_count) == (31, 10)
    assert [r["id"] for r in client.data.rows(split.validation.name)] == [
        r["id"] for r in client.data.rows(again.validation.name)
    ]
    assert split.validation.tags["split"] == "validation"
    assert set(r["id"] for r in client.data.rows(split.train.name)).isdisjoint(
        r["id"] for r in client.data.rows(split.validation.name)
    )

    client.data.create("general", "sft")
    general = tmp_path / "general.jsonl"
    general.write_text(
        jsonl(
            [
                {
                    "messages": [
                        {"role": "user", "content": f"g{i}"},
                        {"role": "assistant", "content": "x" * 20},
                    ]
                }
                for i in range(20)
            ]
        )
    )
    client.data.upload("general", general)
    plan = client.data.plan_mixture({split.train.name: 2.0, "general/1": 0.5}, seed=1)
    assert [(s.samples, s.sampled_samples) for s in plan.sources] == [(31, 62), (20, 10)]
    assert abs(sum(s.share for s in plan.sources) - 1) < 1e-9
    assert plan.sources[0].sampled_characters == 2 * plan.sources[0].characters
    mixture = client.data.create_mixture("raw", {split.train.name: 2.0, "general/1": 0.5}, seed=1)
    assert mixture.row_count == 72 and mixture.recipe["type"] == "mixture"
    ids = [r["id"] for r in client.data.rows(mixture.name)]
    assert sum(i.startswith("general/v1:") for i in ids) == 10 and len(set(ids)) == 72

    client.data.create("texts", "text")
    corpus = tmp_path / "t.txt"
    corpus.write_text("doc\n")
    client.data.upload("texts", corpus)
    err = expect_error("INVALID_ARGUMENT", client.data.plan_mixture, {"texts/1": 1.0, "general/1": 1.0})
    assert err.violations[0].field == "sources"
    err = expect_error("INVALID_ARGUMENT", client.data.plan_mixture, {"general/1": 20})
    assert err.violations[0].field == "sources[0].sampling_rate"
    err = expect_error("INVALID_ARGUMENT", client.data.clean, "raw/1", [{"regex_filter": {"pattern": "("}}])
    assert err.violations[0].field == "operations[0].regex_filter.pattern"
    err = expect_error("INVALID_ARGUMENT", client.data.split, "raw/1", 0.9)
    assert err.violations[0].field == "validation_ratio"


def test_insight_with_a_registry_tokenizer(client: Client, tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.train_from_iterator(
        ["北京的天气晴朗", "问题 天气", "the weather is fine"] * 20,
        trainers.BpeTrainer(vocab_size=300, special_tokens=["[UNK]"]),
    )
    model_dir = tmp_path / "tok"
    model_dir.mkdir()
    tokenizer.save(str(model_dir / "tokenizer.json"))
    client.models.create("tok")
    version = client.models.upload("tok", model_dir)

    client.data.create("insight", "sft")
    path = tmp_path / "i.jsonl"
    rows = [chat(i % 30) for i in range(60)] + [
        {
            "messages": [
                {"role": "user", "content": "call 13812345678"},
                {"role": "assistant", "content": "ok " * 200},
            ]
        }
    ]
    path.write_text(jsonl(rows))
    client.data.upload("insight", path)
    result = client.data.insight("insight/1", tokenizer=version.name, max_sequence_length=64)
    report = json_format.MessageToDict(result.report)
    assert report["rows"] == 61 and report["length_unit"] == "tokens" and report["tokenizer"] == version.name
    assert report["exact_duplicates"] == 30 and report["near_duplicates"] >= 30
    assert report["rows_over_max_sequence_length"] == 1
    assert report["pii_rows"] == {"cn_mobile": 1}
    assert report["script_mix"]["cjk"] > 0.3 and report["turns"]["max"] == 1
    assert report["prompt_tokens"]["p50"] < report["prompt_characters"]["p50"] * 3
    charts = {c.path: urllib.request.urlopen(c.url).read() for c in result.charts}
    assert set(charts) == {"lengths.png", "turns.png"} and all(
        png.startswith(b"\x89PNG") for png in charts.values()
    )
    cached = client.data.insight("insight/1", tokenizer=version.name, max_sequence_length=64)
    assert dict(cached.report)["rows"] == 61
    err = expect_error("INVALID_ARGUMENT", client.data.insight, "insight/1", tokenizer="tok/99")
    assert err.violations[0].field == "tokenizer"


def test_presets_install_every_scenario(client: Client) -> None:
    presets = client.data.presets()
    assert len(presets) == 9 and {p.display_name for p in presets} >= {
        "作文批改",
        "劳动合同关键信息提取",
        "小说人物角色扮演",
    }
    essay = client.data.get_preset("essay-grading")
    assert (
        essay.method == "sft"
        and essay.hyperparameters["learning_rate"] == 3e-4
        and "score_mae" in essay.metrics
    )
    for preset in presets:
        installed = client.data.install_preset(preset.name, request_id=f"install-{preset.name}")
        assert all(v.state == READY for v in installed.dataset_versions)
        counts = {v.name.split("/")[3]: v.row_count for v in installed.dataset_versions}
        if preset.name.endswith("/general"):
            assert counts == {"general-instruct": 400, "general-text": 600}
        else:
            slug = preset.name.rsplit("/", 1)[-1]
            assert counts == {f"{slug}-train": 300, f"{slug}-eval": 60}
        again = client.data.install_preset(preset.name, request_id=f"install-{preset.name}")
        assert [v.uid for v in again.dataset_versions] == [v.uid for v in installed.dataset_versions]
    kto = list(client.data.rows("novel-role-play-train", page_size=1000))
    labels = [r["label"] for r in kto]
    assert 0.3 < sum(labels) / len(labels) < 0.7
    expect_error("NOT_FOUND", client.data.install_preset, "no-such-preset")


async def test_ready_and_failed_events(
    suite: LocalSuite, client: Client, project: str, tmp_path: Path
) -> None:
    bus = await EventBus.connect(suite.bus_url, name="test-data-events")
    seen: list[event_pb2.Event] = []

    async def handler(event: event_pb2.Event) -> None:
        if event.project == project:
            seen.append(event)

    bus.consume(f"data-{uuid.uuid4().hex[:8]}", "tuneforge.data.>", handler)
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    good.write_text(jsonl([chat(1)]))
    bad.write_text("{nope\n")

    def work() -> None:
        client.data.create("ev", "sft")
        client.data.upload("ev", good)
        client.data.upload("ev", bad)

    await asyncio.to_thread(work)
    for _ in range(100):
        if len(seen) >= 3:
            break
        await asyncio.sleep(0.1)
    await bus.close()
    assert [e.type for e in seen] == [
        "tuneforge.data.dataset.created",
        "tuneforge.data.dataset_version.ready",
        "tuneforge.data.dataset_version.failed",
    ]
    payload = data_events_pb2.DatasetVersionEvent()
    seen[2].data.Unpack(payload)
    assert payload.dataset_version.errors.counts_by_reason["INVALID_JSON"] == 1


def test_other_projects_are_forbidden(suite: LocalSuite, keys: ApiKeyStore, client: Client) -> None:
    client.data.create("private-data", "sft")
    _, token = keys.create("elsewhere", "member")
    with Client(suite.endpoints, api_key=token, project=client.project) as intruder:
        expect_error("PERMISSION_DENIED", intruder.data.get, "private-data")
        expect_error("PERMISSION_DENIED", lambda: list(intruder.data.list()))
        expect_error("PERMISSION_DENIED", intruder.data.install_preset, "essay-grading")
