"""Derivations are bounded (issue: one key could stall the registry with a derive that grew without
limit): they use the stored tensors only, stop at their memory and time limits, and die with the call."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from safetensors import safe_open

from services.kit.errors import FailedPrecondition
from services.registry.deriving import run_bounded
from tests.conftest import running, write_model_folder
from tests.registry.test_registry_api import expect_error
from tuneforge import Client
from tuneforge.registry.v1 import model_pb2, registry_service_pb2, registry_service_pb2_grpc


def derive_children() -> list[int]:
    """Pids of derivation children running on this host."""
    return running("services.registry.derive")


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


def test_a_derivation_is_a_resource_made_by_a_registry_worker(client: Client, suite, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = bare_config_version(client, tmp_path)
    suite.processes["registry-worker-0"].stop(grace=5)
    try:
        queued = client.models.start_derivation(source.name, "convert_dtype", "float16")
        assert queued.state == model_pb2.DERIVATION_STATE_QUEUED and "/derivations/" in queued.name
        time.sleep(1.0)
        assert client.models.get_derivation(queued.name).state == model_pb2.DERIVATION_STATE_QUEUED
        assert client.models.get(source.name.split("/versions/")[0]).name, "the registry answers meanwhile"
        assert not derive_children(), "the registry service never derives itself"
    finally:
        suite.start_worker(0, kind="registry")
    done = client.models.wait_derivation(queued.name)
    assert done.state == model_pb2.DERIVATION_STATE_SUCCEEDED, done.failure
    assert done.result_version and done.peak_memory_bytes > 0 and done.HasField("end_time")
    made = client.models.get_version(done.result_version)
    assert made.catalog.derivation == "convert_dtype:float16" and made.lineage.parent_version == source.name
    again = client.models.start_derivation(source.name, "convert_dtype", "float16")
    assert again.name == queued.name, "the same derivation again is the same resource"
    print(f"convert_dtype by the registry worker: peak {done.peak_memory_bytes / 1e6:.0f} MB")


def test_a_running_derivation_is_cancelled(client: Client, tmp_path: Path) -> None:
    source = bare_config_version(client, tmp_path)
    started = client.models.start_derivation(source.name, "quantize", "int8")
    deadline = time.monotonic() + 30
    while not derive_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    cancelled = client.models.cancel_derivation(started.name)
    assert cancelled.state == model_pb2.DERIVATION_STATE_CANCELLED
    deadline = time.monotonic() + 5
    while derive_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not derive_children()
    time.sleep(1.5)
    final = client.models.get_derivation(started.name)
    assert final.state == model_pb2.DERIVATION_STATE_CANCELLED and not final.result_version
    error = expect_error("FAILED_PRECONDITION", client.models.derive, source.name, "merge_lora")
    assert error.reason == "NOT_AN_ADAPTER"
