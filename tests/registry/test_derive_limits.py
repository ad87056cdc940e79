"""Derivations are bounded (issue: one key could stall the registry with a derive that grew without
limit): they use the stored tensors only, stop at their memory and time limits, and die with the call."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from safetensors import safe_open

from services.kit.errors import FailedPrecondition
from services.registry.derivations import run_bounded
from tests.conftest import write_model_folder
from tests.registry.test_registry_api import expect_error
from tuneforge import Client
from tuneforge.registry.v1 import registry_service_pb2, registry_service_pb2_grpc


def derive_children() -> list[int]:
    """Pids of derivation children running on this host."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                command = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if b"services.registry.derive\x00" in command:
                found.append(int(entry))
    return found


def bare_config_version(client: Client, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A tiny upload whose config.json says nothing of the model's size: transformers would build a
    default-size (7B) llama from it."""
    folder = write_model_folder(tmp_path / "bare")
    (folder / "config.json").write_text('{"model_type": "llama"}')
    client.models.create("bare")
    return client.models.upload("bare", folder)


def test_convert_dtype_uses_the_stored_tensors_only(client: Client, tmp_path: Path) -> None:
    source = bare_config_version(client, tmp_path)
    started = time.monotonic()
    converted = client.models.derive(source.name, "convert_dtype", "bfloat16")
    seconds = time.monotonic() - started
    client.models.download(converted.name, tmp_path / "out")
    with safe_open(str(tmp_path / "out" / "model.safetensors"), "pt") as handle:
        assert list(handle.keys()) == ["weight"]
        assert str(handle.get_tensor("weight").dtype) == "torch.bfloat16"
    print(f"convert_dtype of a bare-config upload: {seconds:.1f} s, {converted.total_size_bytes} bytes")
    assert converted.total_size_bytes < source.total_size_bytes + 1024


def test_a_config_describing_tensors_not_stored_is_refused(client: Client, tmp_path: Path) -> None:
    source = bare_config_version(client, tmp_path)
    error = expect_error("FAILED_PRECONDITION", client.models.derive, source.name, "quantize", "int8")
    assert error.reason == "DERIVATION_REFUSED"
    assert "do not all hold" in error.message and "model.embed_tokens.weight" in error.message
    assert not derive_children()


def test_the_child_is_stopped_at_its_memory_limit(tmp_path: Path) -> None:
    (tmp_path / "source").mkdir()
    with pytest.raises(FailedPrecondition) as caught:
        # importing torch alone passes 64 MB of resident memory
        asyncio.run(run_bounded("quantize", "int8", tmp_path, memory_bytes=64 * 1024**2, time_limit=600))
    assert caught.value.reason == "DERIVATION_MEMORY_LIMIT"
    assert not derive_children()


def test_the_child_is_stopped_at_its_time_limit(tmp_path: Path) -> None:
    (tmp_path / "source").mkdir()
    started = time.monotonic()
    with pytest.raises(FailedPrecondition) as caught:
        asyncio.run(run_bounded("quantize", "int8", tmp_path, memory_bytes=8 * 1024**3, time_limit=0.5))
    assert caught.value.reason == "DERIVATION_TIMEOUT" and time.monotonic() - started < 5
    assert not derive_children()


def test_a_cancelled_call_kills_its_child(client: Client, tmp_path: Path) -> None:
    source = bare_config_version(client, tmp_path)
    stub = registry_service_pb2_grpc.RegistryServiceStub(client.channel("registry"))
    request = registry_service_pb2.DeriveModelVersionRequest(
        name=source.name, operation="quantize", target="int8"
    )
    call = stub.DeriveModelVersion.future(request)
    deadline = time.monotonic() + 30
    while not derive_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert derive_children(), "the derivation started"
    call.cancel()
    deadline = time.monotonic() + 5
    while derive_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not derive_children(), "the derivation child outlives the cancelled call"
