"""SQL through SQLAlchemy 2: SQLite by default, PostgreSQL by URL, schema migrations by Alembic.

Each service owns its tables. On PostgreSQL they live in a schema named after the service (the
connection's `search_path` is set to it); on SQLite each service has its own database file.
Sessions are synchronous; async code runs them in a worker thread through `Database.run`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
T = TypeVar("T")


class Database:
    """One service's database: an engine, sessions, and its Alembic migrations."""

    def __init__(self, url: str, *, schema: str) -> None:
        self.url = make_url(url)
        self.schema = schema
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.engine = self._make_engine()
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _make_engine(self) -> Engine:
        if self.is_sqlite:
            if self.url.database and self.url.database != ":memory:":
                Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(self.url, connect_args={"timeout": 30})

            @event.listens_for(engine, "connect")
            def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
                # WAL lets readers run beside one writer; foreign keys are off by default in SQLite.
                cursor = dbapi_conn.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.close()

            return engine
        engine = create_engine(
            self.url, pool_pre_ping=True, connect_args={"options": f"-csearch_path={self.schema}"}
        )
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
        return engine

    def migrate(self, script_location: Path) -> None:
        """Upgrade the schema to the newest migration under `script_location` (idempotent)."""
        config = Config()
        config.set_main_option("script_location", str(script_location))
        config.set_main_option("version_table", f"alembic_version_{self.schema}")
        with self.engine.begin() as conn:
            config.attributes["connection"] = conn
            config.attributes["schema"] = None if self.is_sqlite else self.schema
            command.upgrade(config, "head")

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session inside one transaction: committed on success, rolled back on any error."""
        with self._sessions.begin() as session:
            yield session

    async def run(self, fn: Callable[[Session], T]) -> T:
        """Run `fn(session)` in one transaction on a worker thread, so the event loop never blocks."""

        def _call() -> T:
            with self.transaction() as session:
                return fn(session)

        return await asyncio.to_thread(_call)

    def dispose(self) -> None:
        self.engine.dispose()


def run_migrations(target_metadata: MetaData) -> None:
    """Body of every service's Alembic `env.py`: migrate on the connection `Database.migrate` passes."""
    from alembic import context

    config = context.config
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=config.get_main_option("version_table") or "alembic_version",
        version_table_schema=config.attributes.get("schema"),
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
