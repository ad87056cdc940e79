"""Migrations and API keys on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import inspect, text

from services.kit.auth import ApiKeyStore, Principal
from services.kit.db import Database
from services.kit.errors import InvalidArgument, PermissionDenied, Unauthenticated
from services.registry.server import MIGRATIONS


def test_migrations_are_idempotent_and_schema_scoped(database_url: str) -> None:
    db = Database(database_url, schema="registry")
    db.migrate(MIGRATIONS)
    db.migrate(MIGRATIONS)
    schema = None if db.is_sqlite else "registry"
    tables = set(inspect(db.engine).get_table_names(schema=schema))
    assert {
        "models",
        "model_versions",
        "model_aliases",
        "model_version_uploads",
        "outbox",
        "processed_events",
    } <= tables
    if not db.is_sqlite:
        assert "models" not in inspect(db.engine).get_table_names(schema="public"), (
            "tables live in the service's schema"
        )
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    with db.transaction() as session:
        assert session.execute(text("SELECT version_num FROM alembic_version_registry")).scalar() == head
    db.dispose()


def test_transaction_rolls_back_on_error(database_url: str) -> None:
    db = Database(database_url, schema="registry")
    db.migrate(MIGRATIONS)
    with pytest.raises(RuntimeError), db.transaction() as session:
        session.execute(
            text(
                "INSERT INTO models (uid, project, model_id, display_name, description, tags, next_version, create_time, update_time) "
                "VALUES ('u1', 'p', 'm', '', '', '{}', 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        raise RuntimeError("crash in the middle of a change")
    with db.transaction() as session:
        assert session.execute(text("SELECT count(*) FROM models")).scalar() == 0
    db.dispose()


def test_api_keys(database_url: str) -> None:
    keys = ApiKeyStore(Database(database_url, schema="auth"))
    keys.migrate()
    key, token = keys.create("team-a", "member", "ci")
    assert token.startswith(f"tf_{key.key_id}_")
    with keys.db.transaction() as session:
        stored = session.execute(text("SELECT secret_sha256 FROM api_keys")).scalar()
    assert token.split("_", 2)[2] not in stored, "only a hash of the secret is stored"

    principal = keys.authenticate(token)
    assert principal == Principal(key.key_id, "team-a", "member")
    principal.require_project("team-a")
    with pytest.raises(PermissionDenied):
        principal.require_project("team-b")

    admin_key, admin_token = keys.create("*", "admin")
    keys.authenticate(admin_token).require_project("anything")

    for bad in ("tf_x", f"tf_{key.key_id}_wrong", "nope", f"tf_{key.key_id}_"):
        with pytest.raises(Unauthenticated):
            keys.authenticate(bad)
    keys.revoke(key.key_id)
    with pytest.raises(Unauthenticated, match="revoked"):
        keys.authenticate(token)
    with pytest.raises(InvalidArgument):
        keys.create("*", "member")
    with pytest.raises(InvalidArgument):
        keys.create("Bad Project")
    assert {k.key_id for k in keys.list()} == {key.key_id, admin_key.key_id}
    keys.db.dispose()


def test_service_refuses_to_start_with_bad_settings() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.registry"],
        env={"PATH": "/usr/bin:/bin", "TUNEFORGE_LISTEN": "nowhere", "TUNEFORGE_SECRET_KEY": "short"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    for variable in (
        "TUNEFORGE_LISTEN",
        "TUNEFORGE_DATABASE_URL",
        "TUNEFORGE_S3_ACCESS_KEY",
        "TUNEFORGE_SECRET_KEY",
    ):
        assert variable in result.stderr
    assert "Traceback" not in result.stderr
