"""A registry killed with SIGKILL mid-upload leaves no version; what it stored is swept after restart."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc

from services.suite.suite import LocalSuite
from tests.conftest import write_model_folder
from tests.registry.test_registry_bad_input import stored_keys
from tuneforge import Client
from tuneforge.common.v1 import common_pb2
from tuneforge.registry.v1 import model_pb2, registry_service_pb2


def test_kill_during_upload_then_restart(tmp_path: Path) -> None:
    env = {"TUNEFORGE_REGISTRY_UPLOAD_TTL_SECONDS": "3", "TUNEFORGE_REGISTRY_SWEEP_INTERVAL_SECONDS": "1"}
    with LocalSuite(tmp_path / "suite", services=("registry",), extra_env=env) as suite:
        client = Client(suite.endpoints["registry"], api_key=suite.admin_key, project="crash")
        model = client.models.create("victim")
        sent = threading.Event()

        def slow_upload() -> Iterator[registry_service_pb2.UploadModelVersionRequest]:
            yield registry_service_pb2.UploadModelVersionRequest(
                header=registry_service_pb2.UploadModelVersionHeader(
                    parent=model.name, model_version=model_pb2.ModelVersion()
                )
            )
            yield registry_service_pb2.UploadModelVersionRequest(
                chunk=common_pb2.FileChunk(
                    path="config.json", data=b"{}", eof=True, sha256=hashlib.sha256(b"{}").hexdigest()
                )
            )
            for i in range(200):
                if i == 24:
                    sent.set()
                yield registry_service_pb2.UploadModelVersionRequest(
                    chunk=common_pb2.FileChunk(path="big.txt", data=b"\x01" * (1024 * 1024))
                )
                time.sleep(0.01)

        failures: list[grpc.RpcError] = []

        def upload() -> None:
            try:
                client.models._stub.UploadModelVersion(slow_upload())
            except grpc.RpcError as exc:
                failures.append(exc)

        uploader = threading.Thread(target=upload)
        uploader.start()
        assert sent.wait(30)
        time.sleep(0.3)  # a multipart part (16 MiB) is in S3 by now
        suite.processes["registry"].kill()
        uploader.join(60)
        assert failures, "the client sees the failed call"
        client.close()
        orphans = stored_keys(suite, f"models/{model.uid}/")
        assert [key.rsplit("/", 1)[-1] for key in orphans] == ["config.json"], (
            "the finished file outlived the crash"
        )

        suite.start_service("registry")
        with Client(suite.endpoints["registry"], api_key=suite.admin_key, project="crash") as again:
            assert list(again.models.list_versions("victim")) == []
            deadline = time.monotonic() + 30
            while stored_keys(suite, f"models/{model.uid}/") and time.monotonic() < deadline:
                time.sleep(0.5)
            assert stored_keys(suite, f"models/{model.uid}/") == [], "the swept upload left nothing in S3"
            version = again.models.upload("victim", write_model_folder(tmp_path / "m"))
            assert version.name.endswith("/versions/1"), "numbering is untouched by the crash"
