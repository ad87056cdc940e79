"""What may go into a model version: paths and content checks, without a server."""

from __future__ import annotations

import json
import pickle

import pytest

from services.kit.errors import InvalidArgument
from services.registry.validation import detect_kind
from services.registry.weights import check_content, check_path
from tuneforge.registry.v1 import model_pb2


def safetensors_bytes(header: dict) -> bytes:
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + b"\x00" * 16


@pytest.mark.parametrize(
    "path", ["model.safetensors", "tokenizer/tokenizer.json", "a_b-c.1/x.txt", "README.md"]
)
def test_plain_paths_pass(path: str) -> None:
    assert check_path(path, "f") == path


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/etc/passwd",
        "../x",
        "a/../b",
        "a//b",
        "a/./b",
        "dir/",
        "sp ace",
        "ü.txt",
        "x" * 256,
        "w.BIN",
        "m.Pt",
        "a.ckpt",
    ],
)
def test_unsafe_or_odd_paths_are_refused(path: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_path(path, "files[0].path")
    assert caught.value.violations[0].field == "files[0].path"


def test_content_checks() -> None:
    check_content(
        "model.safetensors",
        safetensors_bytes({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}),
        "f",
    )
    check_content("config.json", b'{"a": 1}', "f")
    check_content(
        "model.safetensors", safetensors_bytes({"w": {}})[:20], "f"
    )  # header longer than the head: accepted
    for protocol in range(2, 6):
        with pytest.raises(InvalidArgument, match="pickle"):
            check_content("anything.json", pickle.dumps({"x": 1}, protocol=protocol), "f")
    with pytest.raises(InvalidArgument, match="not a valid safetensors"):
        check_content("model.safetensors", b"\x02\x00\x00\x00\x00\x00\x00\x00[]", "f")
    with pytest.raises(InvalidArgument, match="out of range"):
        check_content("model.safetensors", b"\xff" * 16, "f")
    with pytest.raises(InvalidArgument, match="shorter"):
        check_content("model.safetensors", b"\x01", "f")


def test_kind_detection() -> None:
    assert detect_kind(["config.json", "model.safetensors"]) == model_pb2.MODEL_VERSION_KIND_FULL
    assert (
        detect_kind(["adapter_config.json", "adapter_model.safetensors"])
        == model_pb2.MODEL_VERSION_KIND_LORA_ADAPTER
    )
    assert detect_kind(["tokenizer.json"]) == model_pb2.MODEL_VERSION_KIND_OTHER
