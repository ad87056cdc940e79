"""The registry API over real gRPC against a real registry process, NATS and S3."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import field_mask_pb2

from tests.conftest import write_model_folder
from tuneforge import Client, TuneForgeError
from tuneforge.registry.v1 import model_pb2, registry_service_pb2


def expect_error(code: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> TuneForgeError:
    """Call `fn`, expecting a server error with `code`; every server error carries a request id."""
    with pytest.raises(TuneForgeError) as caught:
        fn(*args, **kwargs)
    assert caught.value.code == code, f"expected {code}, got {caught.value.code}: {caught.value.message}"
    assert caught.value.request_id, "every server error carries the request id"
    return caught.value


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_model_crud(client: Client, project: str) -> None:
    created = client.models.create(
        "llama-mini", display_name="Llama mini", description="a base", tags={"family": "llama"}
    )
    assert created.name == f"projects/{project}/models/llama-mini"
    assert created.display_name == "Llama mini" and created.tags["family"] == "llama"
    assert created.version_count == 0 and created.latest_version == ""

    fetched = client.models.get("llama-mini")
    assert fetched == created

    updated = client.models.update(
        "llama-mini", description="the base model", tags={"family": "llama", "size": "tiny"}
    )
    assert updated.description == "the base model"
    assert dict(updated.tags) == {"family": "llama", "size": "tiny"}
    assert updated.display_name == "Llama mini", "fields outside the mask are kept"
    assert updated.update_time.ToDatetime() >= created.update_time.ToDatetime()

    expect_error("ALREADY_EXISTS", client.models.create, "llama-mini")
    client.models.delete("llama-mini")
    expect_error("NOT_FOUND", client.models.get, "llama-mini")


def test_version_round_trip_streamed_and_presigned(client: Client, tmp_path: Path) -> None:
    client.models.create("rt")
    folder = write_model_folder(
        tmp_path / "m",
        tensor_bytes=5 * 1024 * 1024 + 3,
        extra={"tokenizer/tokenizer.json": b'{"v": 1}', "empty.txt": b""},
    )
    streamed = client.models.upload(
        "rt", folder, description="streamed", tags={"stage": "sft"}, metrics={"loss": 1.25}
    )
    presigned = client.models.upload("rt", folder, presigned=True)
    assert streamed.name.endswith("/versions/1") and presigned.name.endswith("/versions/2")
    for version in (streamed, presigned):
        assert version.kind == model_pb2.MODEL_VERSION_KIND_FULL
        manifest = {f.path: (f.size_bytes, f.sha256) for f in version.files}
        assert manifest == {
            rel: (p.stat().st_size, sha256(p))
            for rel, p in (
                ("config.json", folder / "config.json"),
                ("empty.txt", folder / "empty.txt"),
                ("model.safetensors", folder / "model.safetensors"),
                ("tokenizer/tokenizer.json", folder / "tokenizer" / "tokenizer.json"),
            )
        }
        assert version.total_size_bytes == sum(size for size, _ in manifest.values())
    assert streamed.metrics["loss"] == 1.25 and streamed.tags["stage"] == "sft"

    for ref, presigned_download in (("rt/1", False), ("rt/2", True), ("rt", False)):
        out = tmp_path / f"out-{ref.replace('/', '-')}-{presigned_download}"
        client.models.download(ref, out, presigned=presigned_download)
        for f in streamed.files:
            assert sha256(out / f.path) == f.sha256
        assert not [p for p in out.iterdir() if p.name.startswith(".")], "no staging folder is left behind"

    partial = tmp_path / "partial"
    client.models.download("rt/1", partial, paths=["config.json"])
    assert [p.name for p in partial.iterdir()] == ["config.json"]

    model = client.models.get("rt")
    assert model.version_count == 2 and model.latest_version == presigned.name


def test_lineage_aliases_and_delete_protection(
    client: Client, project: str, tmp_path: Path, real_job: Callable[[str], str]
) -> None:
    folder = write_model_folder(tmp_path / "m")
    client.models.create("base")
    base = client.models.upload("base", folder, lineage={"base_model": "hf://Qwen/Qwen2.5-0.5B"})
    client.models.create("tuned")
    tuned = client.models.upload(
        "tuned",
        folder,
        lineage={
            "base_model": base.name,
            "source_job": real_job("job-1"),
            "dataset_versions": [
                {
                    "dataset_version": f"projects/{project}/datasets/math-grading-train/versions/1",
                    "sampling_rate": 0.5,
                }
            ],
            "hyperparameters": {"learning_rate": 3e-4, "epochs": 3, "lora": {"rank": 8}},
        },
    )
    child = client.models.upload(
        "tuned", folder, lineage={"base_model": base.name, "parent_version": tuned.name}
    )

    assert base.lineage.base_model == "hf://Qwen/Qwen2.5-0.5B"
    assert tuned.lineage.base_model == base.name
    assert tuned.lineage.dataset_versions[0].sampling_rate == 0.5
    assert tuned.lineage.hyperparameters["lora"]["rank"] == 8
    assert child.lineage.parent_version == tuned.name

    by_parent = list(client.models.list_versions("tuned", filter=f'lineage.parent_version = "{tuned.name}"'))
    assert [v.name for v in by_parent] == [child.name]

    alias = client.models.set_alias("tuned", "production", tuned.name)
    assert alias.version == tuned.name
    assert list(client.models.get_version("tuned@production").aliases) == ["production"]
    moved = client.models.set_alias("tuned", "production", "tuned/2")
    assert moved.version == child.name and client.models.get_version("tuned@production").name == child.name
    client.models.set_alias("tuned", "staging", tuned.name)
    assert [a.name.rsplit("/", 1)[-1] for a in client.models.list_aliases("tuned")] == [
        "production",
        "staging",
    ]

    err = expect_error("FAILED_PRECONDITION", client.models.delete_version, "tuned/2")
    assert err.reason == "ALIASED" and "production" in err.message
    err = expect_error("FAILED_PRECONDITION", client.models.delete_version, "base/1")
    assert err.reason == "HAS_DESCENDANTS" and tuned.name in err.message
    err = expect_error("FAILED_PRECONDITION", client.models.delete, "base", force=True)
    assert err.reason == "HAS_DESCENDANTS"
    err = expect_error("FAILED_PRECONDITION", client.models.delete, "tuned", force=True)
    assert err.reason == "ALIASED"
    err = expect_error("FAILED_PRECONDITION", client.models.delete, "base")
    assert err.reason in ("HAS_VERSIONS", "HAS_DESCENDANTS")

    client.models.delete_alias("tuned", "production")
    client.models.delete_alias("tuned", "staging")
    expect_error("NOT_FOUND", client.models.get_alias, "tuned", "production")
    client.models.delete("tuned", force=True)
    client.models.delete_version("base/1")
    assert list(client.models.list_versions("base")) == []


def test_update_version_keeps_files_and_lineage(client: Client, tmp_path: Path) -> None:
    client.models.create("upd")
    version = client.models.upload(
        "upd", write_model_folder(tmp_path / "m"), lineage={"base_model": "local:///models/x"}
    )
    updated = client.models.update_version(
        "upd/1", description="evaluated", metrics={"bleu4": 41.5}, tags={"eval": "done"}
    )
    assert updated.metrics["bleu4"] == 41.5 and updated.description == "evaluated"
    assert updated.files == version.files and updated.lineage == version.lineage
    err = expect_error("INVALID_ARGUMENT", client.models.update_version, "upd/1", files=[])
    assert err.violations[0].field == "update_mask"


def test_pagination_to_the_end(client: Client, tmp_path: Path) -> None:
    ids = [f"m-{i:02d}" for i in range(23)]
    for model_id in ids:
        client.models.create(model_id, tags={"parity": "even" if int(model_id[2:]) % 2 == 0 else "odd"})
    assert [m.name.rsplit("/", 1)[-1] for m in client.models.list(page_size=5)] == ids
    assert [
        m.name.rsplit("/", 1)[-1] for m in client.models.list(page_size=4, order_by="model_id desc")
    ] == ids[::-1]
    evens = [
        m.name.rsplit("/", 1)[-1] for m in client.models.list(page_size=3, filter='tags.parity = "even"')
    ]
    assert evens == ids[::2]
    response = client.models._stub.ListModels(
        registry_service_pb2.ListModelsRequest(parent=f"projects/{client.project}", page_size=1000)
    )
    assert len(response.models) == 23 and response.next_page_token == ""

    folder = write_model_folder(tmp_path / "m", tensor_bytes=64)
    client.models.create("many")
    for _ in range(7):
        client.models.upload("many", folder)
    numbers = [int(v.name.rsplit("/", 1)[-1]) for v in client.models.list_versions("many", page_size=2)]
    assert numbers == list(range(1, 8))
    numbers = [
        int(v.name.rsplit("/", 1)[-1])
        for v in client.models.list_versions("many", page_size=3, order_by="version desc")
    ]
    assert numbers == list(range(7, 0, -1))


def test_idempotent_retries(client: Client, tmp_path: Path) -> None:
    first = client.models.create("idem", request_id="req-model-1")
    again = client.models.create("idem", request_id="req-model-1")
    assert first.uid == again.uid

    folder = write_model_folder(tmp_path / "m")
    v1 = client.models.upload("idem", folder, request_id="req-version-1")
    v1_again = client.models.upload("idem", folder, request_id="req-version-1")
    assert v1.uid == v1_again.uid
    p1 = client.models.upload("idem", folder, request_id="req-version-2", presigned=True)
    p1_again = client.models.upload("idem", folder, request_id="req-version-2", presigned=True)
    assert p1.uid == p1_again.uid
    assert [v.name for v in client.models.list_versions("idem")] == [v1.name, p1.name]


def test_raw_update_mask_and_filter_errors(client: Client) -> None:
    client.models.create("masks")
    stub = client.models._stub
    err = expect_error(
        "INVALID_ARGUMENT",
        lambda: client.models.update("masks", uid="x"),
    )
    assert err.violations[0].field == "update_mask"
    try:
        stub.UpdateModel(
            registry_service_pb2.UpdateModelRequest(
                model=model_pb2.Model(name=client.models.model_name("masks"), description="d"),
                update_mask=field_mask_pb2.FieldMask(paths=["name"]),
            )
        )
    except Exception as exc:
        assert "cannot update name" in str(exc.details())  # type: ignore[attr-defined]
    else:
        raise AssertionError("updating the name must fail")
    err = expect_error("INVALID_ARGUMENT", lambda: list(client.models.list(filter="owner = bob")))
    assert err.violations[0].field == "filter" and "owner" in err.violations[0].description
    err = expect_error("INVALID_ARGUMENT", lambda: list(client.models.list(filter="model_id ~ x")))
    assert err.violations[0].field == "filter"
    err = expect_error("INVALID_ARGUMENT", lambda: list(client.models.list(order_by="size")))
    assert err.violations[0].field == "order_by"


def test_uid_is_stable_and_names_are_unique_per_project(suite: Any, tmp_path: Path) -> None:
    a = Client(suite.endpoints["registry"], api_key=suite.admin_key, project="proj-a-" + uuid.uuid4().hex[:6])
    b = Client(suite.endpoints["registry"], api_key=suite.admin_key, project="proj-b-" + uuid.uuid4().hex[:6])
    ma = a.models.create("same-name")
    mb = b.models.create("same-name")
    assert ma.uid != mb.uid
    assert [m.uid for m in a.models.list()] == [ma.uid]
