"""TLS between clients and services, and mutual TLS between services: a suite serving with its
own CA, clients that verify it, and peers that present client certificates."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from services.suite.suite import LocalSuite
from tests.registry.test_registry_api import expect_error
from tuneforge import Client, TuneForgeError


def refused(call: Callable[[], object]) -> bool:
    """The connection itself fails (no server answer, so no request id): UNAVAILABLE."""
    with pytest.raises(TuneForgeError) as caught:
        call()
    return caught.value.code == "UNAVAILABLE" and not caught.value.request_id


def test_mutual_tls_suite_verifies_both_ways(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with LocalSuite(tmp_path / "suite", services=("registry", "iam"), tls="mtls") as suite:
        assert suite.endpoints["registry"].startswith("tls://")
        for variable, value in suite.tls_env().items():
            monkeypatch.setenv(variable, value)
        with Client(suite.endpoints, api_key=suite.admin_key, project="secure") as client:
            client.iam.create_project("secure")
            client.models.create("kept")
            assert [m.name for m in client.models.list()] == ["projects/secure/models/kept"]
            # The iam service asks the registry over mutual TLS what the project holds.
            error = expect_error("FAILED_PRECONDITION", client.iam.delete_project, "secure")
            assert "1 models" in error.message
        # No client certificate: the server refuses the handshake.
        monkeypatch.delenv("TUNEFORGE_TLS_CERT_FILE")
        monkeypatch.delenv("TUNEFORGE_TLS_KEY_FILE")
        with Client(suite.endpoints, api_key=suite.admin_key, project="secure") as client:
            assert refused(lambda: list(client.models.list()))
        # The system's roots do not know the suite's CA: the client refuses the server.
        monkeypatch.delenv("TUNEFORGE_TLS_CA_FILE")
        with Client(suite.endpoints, api_key=suite.admin_key, project="secure") as client:
            assert refused(lambda: list(client.models.list()))
        # Plaintext to a TLS port gets nowhere.
        plain = {k: v.removeprefix("tls://") for k, v in suite.endpoints.items()}
        with Client(plain, api_key=suite.admin_key, project="secure") as client:
            assert refused(lambda: list(client.models.list()))
