"""SQL through SQLAlchemy 2: SQLite by default, PostgreSQL by URL, schema migrations by Alembic.

Each service owns its tables. On PostgreSQL they live in a schema named after the service (the
connection's `search_path` is set to it); on SQLite each service has its own database file.
Sessions are synchronous; async code runs them in a worker thread through `Database.run`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import DateTime, MetaData, Select, and_, create_engine, event, or_, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from services.kit.names import PageTokens, parse_order_by

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
                path = Path(self.url.database)
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                # Readable by its owner alone (API key hashes live in one); SQLite gives the WAL
                # and shared-memory files the database file's mode.
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
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


def keyset_page(
    session: Session,
    query: Select[Any],
    *,
    tokens: PageTokens,
    columns: dict[str, Any],
    order_by: str,
    default_order: str,
    tie: Any,
    size: int,
    token: str,
    context: str,
) -> tuple[list[Any], str]:
    """One page of `query` by keyset pagination on (order column, tie-breaker).

    `columns` maps the names `order_by` may use to columns; the token is signed and bound to
    `context` (method, parent, filter) and the order, so it cannot be altered or reused elsewhere.
    """
    key, desc = parse_order_by(order_by, set(columns), default_order)
    column = columns[key]
    context = f"{context}|{key}|{desc}"
    if token:
        last = tokens.decode(token, context)
        value = last["v"]
        if isinstance(value, str) and isinstance(getattr(column, "type", None), DateTime):
            value = datetime.fromisoformat(value)
        if desc:
            query = query.where(or_(column < value, and_(column == value, tie < last["t"])))
        else:
            query = query.where(or_(column > value, and_(column == value, tie > last["t"])))
    query = query.order_by(column.desc() if desc else column, tie.desc() if desc else tie).limit(size + 1)
    rows = list(session.scalars(query).unique())
    if len(rows) <= size:
        return rows, ""
    rows = rows[:size]
    value = getattr(rows[-1], column.key)
    if isinstance(value, datetime):
        value = value.isoformat()
    return rows, tokens.encode({"v": value, "t": getattr(rows[-1], tie.key)}, context)
