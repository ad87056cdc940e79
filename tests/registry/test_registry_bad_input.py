"""Bad input and access control: every mistake is a clear error, and nothing half-made is stored."""

from __future__ import annotations

import hashlib
import io
import pickle
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from services.kit.auth import ApiKeyStore
from services.kit.store import ObjectStore
from services.suite.suite import LocalSuite
from tests.conftest import write_model_folder
from tests.registry.test_registry_api import expect_error
from tuneforge import Client, TuneForgeError
from tuneforge.common.v1 import common_pb2
from tuneforge.registry.v1 import model_pb2, registry_service_pb2


def suite_store(suite: LocalSuite) -> ObjectStore:
    env = suite.service_env("registry")
    return ObjectStore(
        env["TUNEFORGE_S3_ENDPOINT"],
        env["TUNEFORGE_S3_ACCESS_KEY"],
        env["TUNEFORGE_S3_SECRET_KEY"],
        "tuneforge",
    )


def stored_keys(suite: LocalSuite, prefix: str) -> list[str]:
    store = suite_store(suite)
    return [o.object_name for o in store.client.list_objects("tuneforge", prefix=prefix, recursive=True)]


@pytest.mark.parametrize(
    ("model_id", "fragment"),
    [
        ("", "required"),
        ("Upper", "not a valid model id"),
        ("9lives", "not a valid"),
        ("a" * 64, "not a valid"),
        ("ends-", "not a valid"),
    ],
)
def test_invalid_model_ids(client: Client, model_id: str, fragment: str) -> None:
    err = expect_error("INVALID_ARGUMENT", client.models.create, model_id)
    assert err.violations[0].field == "model_id" and fragment in err.violations[0].description


@pytest.mark.parametrize(
    "name",
    [
        "",
        "projects",
        "projects/x/models",
        "projects/x/models/Bad_Name",
        "models/x",
        "projects/x/datasets/y",
        "projects//models/x",
    ],
)
def test_invalid_names(client: Client, name: str) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        client.models._stub.GetModel(registry_service_pb2.GetModelRequest(name=name))
    error = TuneForgeError.from_rpc_error(caught.value)
    assert error.code == "INVALID_ARGUMENT", error
    assert error.violations and error.violations[0].field == "name"


def test_missing_fields_and_bad_lineage(client: Client, project: str, tmp_path: Path) -> None:
    client.models.create("lin")
    folder = write_model_folder(tmp_path / "m")
    err = expect_error(
        "INVALID_ARGUMENT", client.models.upload, "lin", folder, lineage={"base_model": "gpt-4"}
    )
    assert err.violations[0].field == "header.model_version.lineage.base_model"
    err = expect_error(
        "INVALID_ARGUMENT",
        client.models.upload,
        "lin",
        folder,
        lineage={"parent_version": f"projects/{project}/models/lin/versions/7"},
    )
    assert err.violations[0].field == "header.model_version.lineage.parent_version"
    err = expect_error(
        "INVALID_ARGUMENT",
        client.models.upload,
        "lin",
        folder,
        lineage={"dataset_versions": [{"dataset_version": "essays", "sampling_rate": 20}]},
    )
    fields = {v.field for v in err.violations}
    assert fields == {
        "header.model_version.lineage.dataset_versions[0].dataset_version",
        "header.model_version.lineage.dataset_versions[0].sampling_rate",
    }
    err = expect_error(
        "INVALID_ARGUMENT", client.models.upload, "lin", folder, metrics={"loss": float("nan")}
    )
    assert err.violations[0].field == "header.model_version.metrics.loss"
    err = expect_error("INVALID_ARGUMENT", client.models.set_alias, "lin", "latest", "lin/1")
    assert err.violations[0].field == "alias"
    expect_error("NOT_FOUND", client.models.upload, "no-such-model", folder)
    assert list(client.models.list_versions("lin")) == []


def test_negative_page_size_and_tampered_tokens(client: Client) -> None:
    for i in range(3):
        client.models.create(f"pg-{i}")
    stub = client.models._stub
    parent = f"projects/{client.project}"
    with pytest.raises(grpc.RpcError) as caught:
        stub.ListModels(registry_service_pb2.ListModelsRequest(parent=parent, page_size=-1))
    err = TuneForgeError.from_rpc_error(caught.value)
    assert err.code == "INVALID_ARGUMENT" and err.violations[0].field == "page_size"

    token = stub.ListModels(
        registry_service_pb2.ListModelsRequest(parent=parent, page_size=1)
    ).next_page_token
    assert token
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    for bad, filter_text in ((flipped, ""), ("not-a-token", ""), (token, 'model_id = "pg-1"')):
        with pytest.raises(grpc.RpcError) as caught:
            stub.ListModels(
                registry_service_pb2.ListModelsRequest(
                    parent=parent, page_size=1, page_token=bad, filter=filter_text
                )
            )
        err = TuneForgeError.from_rpc_error(caught.value)
        assert err.code == "INVALID_ARGUMENT" and err.violations[0].field == "page_token"


def test_unknown_alias_and_version(client: Client, tmp_path: Path) -> None:
    client.models.create("al")
    err = expect_error("NOT_FOUND", client.models.get_version, "al@production")
    assert err.reason == "ALIAS_NOT_FOUND"
    expect_error("NOT_FOUND", client.models.get_version, "al")  # latest of a model with no versions
    client.models.upload("al", write_model_folder(tmp_path / "m"))
    expect_error("NOT_FOUND", client.models.get_version, "al/5")
    expect_error("NOT_FOUND", client.models.set_alias, "al", "prod", "al/5")
    expect_error("NOT_FOUND", client.models.delete_alias, "al", "prod")
    err = expect_error("INVALID_ARGUMENT", client.models.set_alias, "al", "prod", "other/1")
    assert err.violations[0].field == "version"


def _torch_like_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"w": [1, 2]}))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "payload", "fragment"),
    [
        ("pytorch_model.bin", b"\x80\x04junk", "pickle checkpoint"),
        ("weights.pt", b"anything", "pickle checkpoint"),
        ("state.pkl", pickle.dumps([1]), "Python pickle"),
        ("modeling_evil.py", b"import os", "Python code"),
        ("model-renamed.safetensors", pickle.dumps({"a": 1}), "holds a Python pickle"),
        ("checkpoint.data", _torch_like_zip(), "not a kind of file a model version holds"),
        ("pytorch_model.safetensors.json", _torch_like_zip(), "zip archive"),
        ("broken.safetensors", b"\x05\x00\x00\x00\x00\x00\x00\x00[1,2]", "not a valid safetensors"),
    ],
)
def test_pickles_and_code_are_refused(
    client: Client, tmp_path: Path, name: str, payload: bytes, fragment: str
) -> None:
    client.models.create("unsafe")
    model = client.models.get("unsafe")
    folder = write_model_folder(tmp_path / "m", extra={name: payload})
    for presigned in (False, True):
        err = expect_error("INVALID_ARGUMENT", client.models.upload, "unsafe", folder, presigned=presigned)
        assert fragment in err.message, err.message
        assert err.reason in ("UNSAFE_FILE", "INVALID_SAFETENSORS")
    assert list(client.models.list_versions("unsafe")) == []
    assert model.uid


def test_upload_cut_off_leaves_nothing(client: Client, suite: LocalSuite, tmp_path: Path) -> None:
    model = client.models.create("cut")
    stub = client.models._stub
    parent = client.models.model_name("cut")
    blob = b"\x00" * (1024 * 1024)

    def header() -> registry_service_pb2.UploadModelVersionRequest:
        return registry_service_pb2.UploadModelVersionRequest(
            header=registry_service_pb2.UploadModelVersionHeader(
                parent=parent, model_version=model_pb2.ModelVersion()
            )
        )

    def ends_early() -> Iterator[registry_service_pb2.UploadModelVersionRequest]:
        yield header()
        for _ in range(20):
            yield registry_service_pb2.UploadModelVersionRequest(
                chunk=common_pb2.FileChunk(path="data.txt", data=blob)
            )

    with pytest.raises(grpc.RpcError) as caught:
        stub.UploadModelVersion(ends_early())
    err = TuneForgeError.from_rpc_error(caught.value)
    assert err.code == "INVALID_ARGUMENT" and "ended in the middle of data.txt" in err.message

    class ClientCrash(Exception):
        pass

    def crashes() -> Iterator[registry_service_pb2.UploadModelVersionRequest]:
        yield header()
        for i in range(40):
            if i == 30:
                raise ClientCrash
            yield registry_service_pb2.UploadModelVersionRequest(
                chunk=common_pb2.FileChunk(path="big.txt", data=blob)
            )

    with pytest.raises((grpc.RpcError, ClientCrash)):
        stub.UploadModelVersion(crashes())

    x_sha = hashlib.sha256(b"x").hexdigest()

    def no_finish() -> Iterator[registry_service_pb2.UploadModelVersionRequest]:
        yield header()
        yield registry_service_pb2.UploadModelVersionRequest(
            chunk=common_pb2.FileChunk(path="a.txt", data=b"x", eof=True, sha256=x_sha)
        )

    with pytest.raises(grpc.RpcError) as caught:
        stub.UploadModelVersion(no_finish())
    assert "before the finish message" in caught.value.details()

    def no_sha() -> Iterator[registry_service_pb2.UploadModelVersionRequest]:
        yield header()
        yield registry_service_pb2.UploadModelVersionRequest(
            chunk=common_pb2.FileChunk(path="a.txt", data=b"x", eof=True)
        )
        yield registry_service_pb2.UploadModelVersionRequest(
            finish=registry_service_pb2.UploadModelVersionFinish(file_count=1)
        )

    with pytest.raises(grpc.RpcError) as caught:
        stub.UploadModelVersion(no_sha())
    err = TuneForgeError.from_rpc_error(caught.value)
    assert err.violations[0].field == "files[0].sha256" and "must carry the file's sha256" in err.message

    def after_finish() -> Iterator[registry_service_pb2.UploadModelVersionRequest]:
        yield header()
        yield registry_service_pb2.UploadModelVersionRequest(
            chunk=common_pb2.FileChunk(path="a.txt", data=b"x", eof=True, sha256=x_sha)
        )
        yield registry_service_pb2.UploadModelVersionRequest(
            finish=registry_service_pb2.UploadModelVersionFinish(file_count=1)
        )
        yield registry_service_pb2.UploadModelVersionRequest(
            chunk=common_pb2.FileChunk(path="b.txt", data=b"x", eof=True, sha256=x_sha)
        )

    with pytest.raises(grpc.RpcError) as caught:
        stub.UploadModelVersion(after_finish())
    assert "the finish message must be the last" in caught.value.details()

    def wrong_sha() -> Iterator[registry_service_pb2.UploadModelVersionRequest]:
        yield header()
        yield registry_service_pb2.UploadModelVersionRequest(
            chunk=common_pb2.FileChunk(path="a.txt", data=b"x", eof=True, sha256="0" * 64)
        )
        yield registry_service_pb2.UploadModelVersionRequest(
            finish=registry_service_pb2.UploadModelVersionFinish(file_count=1)
        )

    with pytest.raises(grpc.RpcError) as caught:
        stub.UploadModelVersion(wrong_sha())
    err = TuneForgeError.from_rpc_error(caught.value)
    assert err.reason == "CHECKSUM_MISMATCH" and err.violations[0].field == "files[0].sha256"

    assert list(client.models.list_versions("cut")) == []
    deadline = time.monotonic() + 15
    while stored_keys(suite, f"models/{model.uid}/") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stored_keys(suite, f"models/{model.uid}/") == [], "no object of a failed upload is left in S3"


def test_presigned_upload_with_wrong_bytes_is_refused(client: Client, tmp_path: Path) -> None:
    import hashlib
    import urllib.request

    client.models.create("pre")
    stub = client.models._stub
    data = b"hello world"
    upload = stub.CreateModelVersionUpload(
        registry_service_pb2.CreateModelVersionUploadRequest(
            parent=client.models.model_name("pre"),
            files=[
                common_pb2.FileEntry(
                    path="a.txt", size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest()
                )
            ],
        )
    )
    with pytest.raises(grpc.RpcError) as caught:
        stub.CommitModelVersionUpload(registry_service_pb2.CommitModelVersionUploadRequest(name=upload.name))
    err = TuneForgeError.from_rpc_error(caught.value)
    assert err.code == "FAILED_PRECONDITION" and err.reason == "FILE_MISSING"

    request = urllib.request.Request(upload.urls[0].url, data=b"HELLO WORLD", method="PUT")
    urllib.request.urlopen(request).read()
    with pytest.raises(grpc.RpcError) as caught:
        stub.CommitModelVersionUpload(registry_service_pb2.CommitModelVersionUploadRequest(name=upload.name))
    err = TuneForgeError.from_rpc_error(caught.value)
    assert err.reason == "CHECKSUM_MISMATCH" and "a.txt" in err.message

    for files, field in (
        ([], "files"),
        ([common_pb2.FileEntry(path="../x", size_bytes=1, sha256="a" * 64)], "files[0].path"),
        ([common_pb2.FileEntry(path="x.txt", size_bytes=1, sha256="nothex")], "files[0].sha256"),
        ([common_pb2.FileEntry(path="x.txt", size_bytes=-1, sha256="a" * 64)], "files[0].size_bytes"),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            stub.CreateModelVersionUpload(
                registry_service_pb2.CreateModelVersionUploadRequest(
                    parent=client.models.model_name("pre"), files=files
                )
            )
        assert TuneForgeError.from_rpc_error(caught.value).violations[0].field == field
    assert list(client.models.list_versions("pre")) == []


def test_corrupted_object_is_detected_on_download(client: Client, suite: LocalSuite, tmp_path: Path) -> None:
    client.models.create("corrupt")
    folder = write_model_folder(tmp_path / "m", tensor_bytes=3 * 1024 * 1024)
    version = client.models.upload("corrupt", folder)
    model = client.models.get("corrupt")
    key = f"models/{model.uid}/versions/{version.uid}/model.safetensors"
    store = suite_store(suite)
    original = store.client.get_object("tuneforge", key).read()
    tampered = bytearray(original)
    tampered[len(tampered) // 2] ^= 0xFF
    store.client.put_object("tuneforge", key, io.BytesIO(bytes(tampered)), len(tampered))

    # Streamed: the server verifies what it read and fails the call with DATA_LOSS.
    out = tmp_path / "streamed"
    err = expect_error("DATA_LOSS", client.models.download, "corrupt/1", out)
    assert (
        "model.safetensors is corrupted in storage" in err.message
        and err.metadata["path"] == "model.safetensors"
    )
    assert not (out / "model.safetensors").exists(), "a file that failed verification is never put in place"
    # Presigned: the bytes come straight from S3 and the client checks them against the manifest.
    out = tmp_path / "presigned"
    with pytest.raises(TuneForgeError) as caught:
        client.models.download("corrupt/1", out, presigned=True)
    assert caught.value.code == "DATA_LOSS" and "model.safetensors did not verify" in caught.value.message
    assert not (out / "model.safetensors").exists()


def test_api_keys_and_project_isolation(suite: LocalSuite, keys: ApiKeyStore, project: str) -> None:
    address = suite.endpoints["registry"]
    with Client(address, api_key=suite.admin_key, project=project) as admin:
        admin.models.create("private")

    for api_key, reason in (
        ("", "MISSING_API_KEY"),
        ("tf_nope_nope", "INVALID_API_KEY"),
        ("garbage", "MALFORMED_API_KEY"),
    ):
        with Client(address, api_key=api_key, project=project) as anonymous:
            err = expect_error("UNAUTHENTICATED", anonymous.models.get, "private")
            assert err.reason == reason

    _, token = keys.create(project, "member", "tests")
    with Client(address, api_key=token, project=project) as member:
        assert member.models.get("private").name.endswith("/private")
    _, other_token = keys.create("someone-else", "member", "tests")
    with Client(address, api_key=other_token, project=project) as intruder:
        err = expect_error("PERMISSION_DENIED", intruder.models.get, "private")
        assert err.reason == "PROJECT_FORBIDDEN"
        expect_error("PERMISSION_DENIED", lambda: list(intruder.models.list()))
        expect_error("PERMISSION_DENIED", intruder.models.create, "sneaky")
        expect_error("PERMISSION_DENIED", intruder.models.delete, "private")

    revoked, revoked_token = keys.create(project, "member", "to revoke")
    keys.revoke(revoked.key_id)
    with Client(address, api_key=revoked_token, project=project) as old:
        err = expect_error("UNAUTHENTICATED", old.models.get, "private")
        assert err.reason == "REVOKED_API_KEY"


def test_errors_name_no_internals(client: Client) -> None:
    err = expect_error("NOT_FOUND", client.models.get, "missing")
    assert "Traceback" not in err.message and "sqlalchemy" not in err.message.lower()
    assert err.message == f"model projects/{client.project}/models/missing does not exist"
