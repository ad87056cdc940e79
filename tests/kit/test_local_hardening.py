"""The local suite's infrastructure is closed by default: NATS refuses anonymous connections, files
are the user's alone, and a revoked key stops working within about a second everywhere."""

from __future__ import annotations

import asyncio
import stat
import time

import nats
import pytest
from nats.errors import NoServersError

from services.kit.auth import ApiKeyStore
from services.kit.bus import EventBus
from services.suite.suite import LocalSuite
from tests.registry.test_registry_api import expect_error
from tuneforge import Client


def test_nats_refuses_anonymous_connections(suite: LocalSuite) -> None:
    async def attempt(url: str) -> str:
        errors: list[str] = []

        async def on_error(error: Exception) -> None:
            errors.append(str(error))

        with pytest.raises((NoServersError, OSError, nats.errors.Error)):
            await nats.connect(
                url, max_reconnect_attempts=0, allow_reconnect=False, error_cb=on_error, connect_timeout=3
            )
        return " ".join(errors).lower()

    seen = asyncio.run(attempt(suite.endpoints["nats"]))
    assert "authorization" in seen, seen
    wrong = suite.endpoints["nats"].replace("nats://", "nats://services:wrong@")
    assert "authorization" in asyncio.run(attempt(wrong))

    async def allowed() -> None:
        bus = await EventBus.connect(suite.bus_url, name="test-auth", ensure_streams=False)
        await bus.close()

    asyncio.run(allowed())


def test_suite_files_are_the_users_alone(suite: LocalSuite, client: Client) -> None:
    client.models.create("private")  # something written to every store
    root = suite.data_dir
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    wide = []
    for path in root.rglob("*"):
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            if path.suffix == ".vif" and stat.S_IMODE(path.parent.stat().st_mode) == 0o700:
                # SeaweedFS writes its volume-info files 0644 whatever the umask (no data in them);
                # the 0700 folder keeps them from other users.
                continue
            wide.append(f"{path.relative_to(root)} {oct(mode)}")
    assert not wide, f"readable by others: {wide[:10]} ({len(wide)} in all)"
    for name in ("auth.db", "registry.db"):
        assert stat.S_IMODE((root / "db" / name).stat().st_mode) == 0o600


def test_a_revoked_key_stops_working_within_a_second(
    suite: LocalSuite, keys: ApiKeyStore, project: str
) -> None:
    key, token = keys.create(project, "member", "to revoke")
    with Client(suite.endpoints, api_key=token, project=project) as member:
        for _ in range(3):  # warm every cache
            list(member.models.list())
            list(member.data.list())
        keys.revoke(key.key_id)
        revoked_at = time.monotonic()
        refused: dict[str, float] = {}
        while len(refused) < 2 and time.monotonic() - revoked_at < 15:
            for service, call in (
                ("registry", lambda: list(member.models.list())),
                ("data", lambda: list(member.data.list())),
            ):
                if service in refused:
                    continue
                try:
                    call()
                except Exception as error:
                    assert "REVOKED_API_KEY" in str(getattr(error, "reason", "")) + str(error)
                    refused[service] = time.monotonic() - revoked_at
            time.sleep(0.05)
        print(f"revocation took effect after: {', '.join(f'{k} {v:.2f} s' for k, v in refused.items())}")
        assert set(refused) == {"registry", "data"} and max(refused.values()) < 2.5
        err = expect_error("UNAUTHENTICATED", lambda: list(member.models.list()))
        assert err.reason == "REVOKED_API_KEY"
