"""The iam service's own tables: only the kit's outbox. Projects, keys and the audit log live in the
auth database every service reads (`services.kit.auth`, `services.kit.access`)."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from services.kit.outbox import add_kit_tables


class Base(DeclarativeBase):
    metadata = MetaData()


OUTBOX, PROCESSED_EVENTS = add_kit_tables(Base.metadata)
