"""What may go into a model version: every file checked by kind and content (safetensors validated
whole against their headers), the files checked against each other, on their own and through the
registry's two upload paths (a gRPC stream and presigned PUTs) — refused with the reason, nothing
stored."""

from __future__ import annotations

import hashlib
import urllib.request
from collections.abc import Iterator

import grpc
import pytest

from services.kit.errors import InvalidArgument
from services.registry.validation import detect_kind
from services.registry.weights import FileFacts, check_file, check_path, check_version
from tests.registry.weights_cases import KEPT, REFUSED, VALID, Case, config, tiny_llama
from tuneforge import Client, TuneForgeError
from tuneforge.common.v1 import common_pb2
from tuneforge.registry.v1 import model_pb2, registry_service_pb2


@pytest.mark.parametrize(
    "path", ["model.safetensors", "tokenizer/tokenizer.json", "a_b-c.1/x.txt", "README.md", "LICENSE"]
)
def test_plain_paths_pass(path: str) -> None:
    assert check_path(path, "f") == path


@pytest.mark.parametrize(
    "path",
    ["", "/etc/passwd", "../x", "a/../b", "a//b", "a/./b", "dir/", "sp ace", "ü.txt", "x" * 256, "w.BIN",
     "m.Pt", "a.ckpt", "notes", ".gitattributes"],
)  # fmt: skip
def test_unsafe_or_odd_paths_are_refused(path: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_path(path, "files[0].path")
    assert caught.value.violations[0].field == "files[0].path"


@pytest.mark.parametrize("case", REFUSED, ids=[c.name for c in REFUSED])
def test_each_unsafe_or_invalid_file_is_refused_naming_it(case: Case) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_file(case.path, case.data, "files[0].path")
    assert caught.value.reason == case.reason, caught.value.message
    assert case.words in caught.value.message and caught.value.violations[0].field == "files[0].path"


@pytest.mark.parametrize(("path", "data"), KEPT, ids=[p for p, _ in KEPT])
def test_the_files_a_model_holds_are_kept(path: str, data: bytes) -> None:
    facts = check_file(path, data, "f")
    assert facts.size == len(data)


def test_bytes_fed_in_any_chunks_are_judged_the_same() -> None:
    from services.registry.weights import FileCheck

    for case in [c for c in REFUSED if c.path.endswith(".safetensors")]:
        check = FileCheck(case.path, "f")
        with pytest.raises(InvalidArgument) as caught:
            for i in range(0, len(case.data), 3):
                check.feed(case.data[i : i + 3])
            check.finish()
        assert caught.value.reason == case.reason and case.words in caught.value.message, case.name
    check = FileCheck("model.safetensors", "f")
    for i in range(0, len(VALID), 5):
        check.feed(VALID[i : i + 5])
    assert set(check.finish().tensors) == {"a", "b"}


def facts(*files: tuple[str, bytes]) -> list[FileFacts]:
    return [check_file(path, data, "files") for path, data in files]


def test_config_is_checked_against_the_tensors() -> None:
    check_version(facts(("config.json", config(num_hidden_layers=2, hidden_size=4, vocab_size=8)),
                        ("model.safetensors", tiny_llama())))  # fmt: skip
    for values, words in [
        ({"num_hidden_layers": 1000, "hidden_size": 65536}, "says 1000 layers; the weights hold 2"),
        ({"hidden_size": 65536}, "hidden size 65536, but the embedding is 4 wide"),
        ({"vocab_size": 151936}, "vocab_size 151936, but the embedding has 8 rows"),
        ({"num_hidden_layers": -1}, "layers -1 is not a positive integer"),
    ]:
        with pytest.raises(InvalidArgument, match=r"config\.json does not match the weights") as caught:
            check_version(facts(("config.json", config(**values)), ("model.safetensors", tiny_llama())))
        assert words in caught.value.message and caught.value.reason == "CONFIG_MISMATCH"


def test_a_shard_index_must_point_at_the_shards_tensors() -> None:
    index = b'{"weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors"}}'
    check_version(
        facts(("model.safetensors.index.json", index), ("model-00001-of-00002.safetensors", tiny_llama()))
    )
    with pytest.raises(InvalidArgument, match="which does not hold it"):
        check_version(facts(("model.safetensors.index.json", index.replace(b"00001", b"00002"))))


def test_kind_detection() -> None:
    assert detect_kind(["config.json", "model.safetensors"]) == model_pb2.MODEL_VERSION_KIND_FULL
    assert (
        detect_kind(["adapter_config.json", "adapter_model.safetensors"])
        == model_pb2.MODEL_VERSION_KIND_LORA_ADAPTER
    )
    assert detect_kind(["tokenizer.json"]) == model_pb2.MODEL_VERSION_KIND_OTHER


# Through the registry: the stream and presigned uploads refuse the same files, store nothing.


def stream(client: Client, model: str, files: list[tuple[str, bytes]]) -> model_pb2.ModelVersion:
    def requests() -> Iterator[registry_service_pb2.UploadModelVersionRequest]:
        yield registry_service_pb2.UploadModelVersionRequest(
            header=registry_service_pb2.UploadModelVersionHeader(parent=client.models.model_name(model))
        )
        for path, data in files:
            yield registry_service_pb2.UploadModelVersionRequest(
                chunk=common_pb2.FileChunk(
                    path=path, data=data, eof=True, sha256=hashlib.sha256(data).hexdigest()
                )
            )
        yield registry_service_pb2.UploadModelVersionRequest(
            finish=registry_service_pb2.UploadModelVersionFinish(file_count=len(files))
        )

    try:
        return client.models._stub.UploadModelVersion(requests())
    except grpc.RpcError as error:
        raise TuneForgeError.from_rpc_error(error) from None


def presigned(client: Client, model: str, files: list[tuple[str, bytes]]) -> model_pb2.ModelVersion:
    try:
        upload = client.models._stub.CreateModelVersionUpload(
            registry_service_pb2.CreateModelVersionUploadRequest(
                parent=client.models.model_name(model),
                files=[
                    common_pb2.FileEntry(path=p, size_bytes=len(d), sha256=hashlib.sha256(d).hexdigest())
                    for p, d in files
                ],
            )
        )
        data = dict(files)
        for url in upload.urls:
            request = urllib.request.Request(url.url, data=data[url.path], method="PUT")
            urllib.request.urlopen(request).read()
        return client.models._stub.CommitModelVersionUpload(
            registry_service_pb2.CommitModelVersionUploadRequest(name=upload.name)
        )
    except grpc.RpcError as error:
        raise TuneForgeError.from_rpc_error(error) from None


def test_the_registry_refuses_every_case_on_both_upload_paths(client: Client) -> None:
    client.models.create("probe")
    refused: dict[str, int] = {"stream": 0, "presigned": 0}
    for case in REFUSED:
        for path_name, send in (("stream", stream), ("presigned", presigned)):
            with pytest.raises(TuneForgeError) as caught:
                send(client, "probe", [(case.path, case.data), ("README.md", b"a model\n")])
            error = caught.value
            assert error.code == "INVALID_ARGUMENT", (case.name, path_name, error.code, error.message)
            assert error.reason == case.reason and case.words in error.message, (
                case.name,
                path_name,
                error.message,
            )
            refused[path_name] += 1
    bad_config = [
        ("config.json", config(num_hidden_layers=1000, hidden_size=65536)),
        ("model.safetensors", tiny_llama()),
    ]
    for send in (stream, presigned):
        with pytest.raises(TuneForgeError, match="says 1000 layers"):
            send(client, "probe", bad_config)
    print("refused:", refused, "of", len(REFUSED), "cases on each path")
    assert list(client.models.list_versions("probe")) == [], "nothing refused was stored"
    kept = stream(client, "probe", KEPT)
    assert {f.path for f in kept.files} == {p for p, _ in KEPT}
    assert {f.path for f in presigned(client, "probe", KEPT).files} == {f.path for f in kept.files}


def test_symlinks_leaving_the_upload_folder_are_refused_not_followed(client: Client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import write_model_folder

    secret = tmp_path / "outside" / "id_rsa.txt"
    secret.parent.mkdir()
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    folder = write_model_folder(tmp_path / "model")
    (folder / "notes.txt").symlink_to(secret)
    client.models.create("links")
    with pytest.raises(TuneForgeError) as caught:
        client.models.upload("links", folder)
    assert (
        caught.value.reason == "SYMLINK_OUTSIDE_FOLDER"
        and "notes.txt is a symlink to" in caught.value.message
    )
    (folder / "notes.txt").unlink()
    (folder / "shared").symlink_to(secret.parent, target_is_directory=True)
    with pytest.raises(TuneForgeError, match="outside"):
        client.models.upload("links", folder, presigned=True)
    (folder / "shared").unlink()
    (folder / "docs").mkdir()
    (folder / "docs" / "card.md").write_text("a model\n")
    (folder / "again").symlink_to(folder / "docs", target_is_directory=True)
    with pytest.raises(TuneForgeError, match="symlink to a folder"):
        client.models.upload("links", folder)
    (folder / "again").unlink()
    (folder / "copy.json").symlink_to(folder / "config.json")  # inside the folder: followed
    version = client.models.upload("links", folder)
    assert {f.path for f in version.files} == {
        "config.json",
        "copy.json",
        "docs/card.md",
        "model.safetensors",
    }
    assert len(list(client.models.list_versions("links"))) == 1
