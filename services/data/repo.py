"""The data service's tables. Objects in S3 are keyed by the server-made uids stored here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from services.kit.outbox import add_kit_tables


class Base(DeclarativeBase):
    metadata = MetaData()


OUTBOX, PROCESSED_EVENTS = add_kit_tables(Base.metadata)


class DatasetRow(Base):
    __tablename__ = "datasets"
    __table_args__ = (
        UniqueConstraint("project", "dataset_id", name="uq_datasets_project_dataset_id"),
        UniqueConstraint("project", "request_id", name="uq_datasets_project_request_id"),
    )

    uid: Mapped[str] = mapped_column(String(32), primary_key=True)
    project: Mapped[str] = mapped_column(String(63), index=True)
    dataset_id: Mapped[str] = mapped_column(String(63))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(32))
    tags: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    next_version: Mapped[int] = mapped_column(Integer, default=1)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DatasetVersionRow(Base):
    __tablename__ = "dataset_versions"
    __table_args__ = (
        UniqueConstraint("dataset_uid", "number", name="uq_dataset_versions_number"),
        UniqueConstraint("dataset_uid", "request_id", name="uq_dataset_versions_request_id"),
    )

    uid: Mapped[str] = mapped_column(String(32), primary_key=True)
    dataset_uid: Mapped[str] = mapped_column(ForeignKey("datasets.uid", ondelete="RESTRICT"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    row_count: Mapped[int] = mapped_column(BigInteger, default=0)
    character_count: Mapped[int] = mapped_column(BigInteger, default=0)
    skipped_row_count: Mapped[int] = mapped_column(BigInteger, default=0)
    error_count: Mapped[int] = mapped_column(BigInteger, default=0)
    errors_by_reason: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    error_examples: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    source_file: Mapped[str] = mapped_column(String(255), default="")
    source_format: Mapped[str] = mapped_column(String(16), default="")
    source_schema: Mapped[str] = mapped_column(String(16), default="")
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    recipe: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    cleaning: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    insights: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    storage_prefix: Mapped[str] = mapped_column(String(200))
    request_id: Mapped[str | None] = mapped_column(String(160), nullable=True)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    dataset: Mapped[DatasetRow] = relationship(lazy="joined", innerjoin=True)


class DatasetUploadRow(Base):
    """A presigned upload waiting for its commit."""

    __tablename__ = "dataset_uploads"
    __table_args__ = (UniqueConstraint("dataset_uid", "request_id", name="uq_dataset_uploads_request_id"),)

    uid: Mapped[str] = mapped_column(String(32), primary_key=True)
    dataset_uid: Mapped[str] = mapped_column(ForeignKey("datasets.uid", ondelete="CASCADE"), index=True)
    options: Mapped[bytes] = mapped_column(default=b"")
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(200))
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    version_uid: Mapped[str | None] = mapped_column(String(32), nullable=True)
    expire_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
