"""The data service's tables. Objects in S3 are keyed by the server-made uids stored here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from services.kit.outbox import add_kit_tables
from services.kit.uploads import UploadColumns


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
    warnings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Insights computed before they had rows of their own (read by migration 0002 only).
    insights: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    storage_prefix: Mapped[str] = mapped_column(String(200))
    request_id: Mapped[str | None] = mapped_column(String(160), nullable=True)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # What the data worker must do to make a PROCESSING version (`services.data.tasks`).
    task: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    failure_reason: Mapped[str] = mapped_column(String(64), default="")
    failure_message: Mapped[str] = mapped_column(Text, default="")
    update_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    dataset: Mapped[DatasetRow] = relationship(lazy="joined", innerjoin=True)


class DatasetInsightRow(Base):
    """An insight of a version for one tokenizer and length; its files live under the version."""

    __tablename__ = "dataset_insights"
    __table_args__ = (UniqueConstraint("version_uid", "key", name="uq_dataset_insights_key"),)

    uid: Mapped[str] = mapped_column(String(32), primary_key=True)
    version_uid: Mapped[str] = mapped_column(
        ForeignKey("dataset_versions.uid", ondelete="CASCADE"), index=True
    )
    key: Mapped[str] = mapped_column(String(32))
    tokenizer: Mapped[str] = mapped_column(String(255), default="")
    max_sequence_length: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    charts: Mapped[list[str]] = mapped_column(JSON, default=list)
    failure_reason: Mapped[str] = mapped_column(String(64), default="")
    failure_message: Mapped[str] = mapped_column(Text, default="")
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    version: Mapped[DatasetVersionRow] = relationship(lazy="joined", innerjoin=True)


class MixtureRow(Base):
    """A mixture materialized as files for a training job (`services.data.mixtures`)."""

    __tablename__ = "mixtures"
    __table_args__ = (
        UniqueConstraint("project", "mixture_id", name="uq_mixtures_project_mixture_id"),
        UniqueConstraint("project", "request_id", name="uq_mixtures_project_request_id"),
    )

    uid: Mapped[str] = mapped_column(String(32), primary_key=True)
    project: Mapped[str] = mapped_column(String(63), index=True)
    mixture_id: Mapped[str] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(32))
    # [{"version_uid", "dataset_version", "label", "sampling_rate"}]
    sources: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    seed: Mapped[int] = mapped_column(BigInteger)
    validation_ratio: Mapped[float] = mapped_column(Float, default=0.0)
    state: Mapped[str] = mapped_column(String(16))
    plan: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    train_rows: Mapped[int] = mapped_column(BigInteger, default=0)
    validation_rows: Mapped[int] = mapped_column(BigInteger, default=0)
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    storage_prefix: Mapped[str] = mapped_column(String(200))
    failure_reason: Mapped[str] = mapped_column(String(64), default="")
    failure_message: Mapped[str] = mapped_column(Text, default="")
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DatasetUploadRow(UploadColumns, Base):
    """An upload waiting for its commit (`services.kit.uploads`): one file, its ingest options in
    `spec`. The version it becomes takes the upload's uid, so the file is already in place."""

    __tablename__ = "dataset_uploads"
    __table_args__ = (UniqueConstraint("dataset_uid", "request_id", name="uq_dataset_uploads_request_id"),)

    dataset_uid: Mapped[str] = mapped_column(ForeignKey("datasets.uid", ondelete="CASCADE"), index=True)
