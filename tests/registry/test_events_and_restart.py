"""Events reach a durable subscriber; a restarted suite keeps every model, version, alias and key."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from services.kit.bus import EventBus
from services.suite.suite import LocalSuite
from tests.conftest import write_model_folder
from tuneforge import Client
from tuneforge.events.v1 import event_pb2, registry_events_pb2


async def test_every_change_emits_an_event(
    suite: LocalSuite, client: Client, project: str, tmp_path: Path
) -> None:
    bus = await EventBus.connect(suite.bus_url, name="test-subscriber")
    received: list[event_pb2.Event] = []

    async def handler(event: event_pb2.Event) -> None:
        if event.project == project:
            received.append(event)

    bus.consume(f"test-{uuid.uuid4().hex[:8]}", "tuneforge.registry.>", handler)
    folder = write_model_folder(tmp_path / "m")

    def changes() -> None:
        client.models.create("ev")
        client.models.upload("ev", folder)
        client.models.upload("ev", folder)
        client.models.set_alias("ev", "production", "ev/1")
        client.models.set_alias("ev", "production", "ev/2")
        client.models.update_version("ev/2", description="checked")
        client.models.delete_alias("ev", "production")
        client.models.update("ev", description="done")
        client.models.delete("ev", force=True)

    await asyncio.to_thread(changes)
    expected = [
        "model.created",
        "model_version.created",
        "model_version.created",
        "model_alias.set",
        "model_alias.set",
        "model_version.updated",
        "model_alias.deleted",
        "model.updated",
        "model_version.deleted",
        "model_version.deleted",
        "model.deleted",
    ]
    for _ in range(100):
        if len(received) >= len(expected):
            break
        await asyncio.sleep(0.1)
    await bus.close()
    assert [e.type.removeprefix("tuneforge.registry.") for e in received] == expected
    assert all(e.source == "tuneforge/registry" and e.id and e.request_id for e in received)
    moved = registry_events_pb2.ModelAliasEvent()
    received[4].data.Unpack(moved)
    assert moved.previous_version.endswith("/versions/1") and moved.alias.version.endswith("/versions/2")
    created = registry_events_pb2.ModelVersionEvent()
    received[1].data.Unpack(created)
    assert created.model_version.name == received[1].subject and len(created.model_version.files) == 2


def test_restart_keeps_data(tmp_path: Path) -> None:
    folder = write_model_folder(tmp_path / "m", tensor_bytes=2 * 1024 * 1024)
    data_dir = tmp_path / "suite"
    with LocalSuite(data_dir, services=("registry",)) as first:
        endpoint = first.endpoints["registry"]
        admin = first.admin_key
        with Client(endpoint, api_key=admin, project="keep") as client:
            client.models.create("kept", tags={"k": "v"})
            version = client.models.upload("kept", folder)
            client.models.set_alias("kept", "production", version.name)
    with LocalSuite(data_dir, services=("registry",)) as second:
        assert second.admin_key == admin
        with Client(second.endpoints["registry"], api_key=admin, project="keep") as client:
            assert client.models.get("kept").tags["k"] == "v"
            assert client.models.get_version("kept@production").uid == version.uid
            client.models.download("kept@production", tmp_path / "out")
            digest = hashlib.sha256((tmp_path / "out" / "model.safetensors").read_bytes()).hexdigest()
            assert digest == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
            assert client.models.upload("kept", folder).name.endswith("/versions/2"), "numbering continues"


@pytest.mark.skipif(shutil.which("npx") is None, reason="npx (Node.js) runs the buf CLI")
def test_reflection_serves_buf_curl(suite: LocalSuite, client: Client) -> None:
    buf_curl = ["npx", "--yes", "@bufbuild/buf", "curl", "--protocol", "grpc", "--http2-prior-knowledge"]
    base = f"http://{suite.endpoints['registry']}"
    listed = subprocess.run([*buf_curl, "--list-methods", base], capture_output=True, text=True, timeout=180)
    assert listed.returncode == 0, listed.stderr
    methods = set(listed.stdout.split())
    assert "tuneforge.registry.v1.RegistryService/UploadModelVersion" in methods
    assert "tuneforge.registry.v1.RegistryService/SetModelAlias" in methods
    assert "grpc.health.v1.Health/Check" in methods

    client.models.create("curl-me")
    called = subprocess.run(
        [
            *buf_curl,
            "-H",
            f"authorization: Bearer {suite.admin_key}",
            "-d",
            f'{{"name": "projects/{client.project}/models/curl-me"}}',
            f"{base}/tuneforge.registry.v1.RegistryService/GetModel",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert called.returncode == 0, called.stderr
    assert '"displayName": "curl-me"' in called.stdout
