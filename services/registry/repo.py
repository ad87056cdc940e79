"""The registry's tables. Objects in S3 are keyed by the server-made uids stored here."""

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
from services.kit.uploads import UploadColumns


class Base(DeclarativeBase):
    metadata = MetaData()


OUTBOX, PROCESSED_EVENTS = add_kit_tables(Base.metadata)


class ModelRow(Base):
    __tablename__ = "models"
    __table_args__ = (
        UniqueConstraint("project", "model_id", name="uq_models_project_model_id"),
        UniqueConstraint("project", "request_id", name="uq_models_project_request_id"),
    )

    uid: Mapped[str] = mapped_column(String(32), primary_key=True)
    project: Mapped[str] = mapped_column(String(63), index=True)
    model_id: Mapped[str] = mapped_column(String(63))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    next_version: Mapped[int] = mapped_column(Integer, default=1)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class VersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_uid", "number", name="uq_versions_model_number"),
        UniqueConstraint("model_uid", "request_id", name="uq_versions_model_request_id"),
    )

    uid: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_uid: Mapped[str] = mapped_column(ForeignKey("models.uid", ondelete="RESTRICT"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    kind: Mapped[int] = mapped_column(Integer)
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    total_size_bytes: Mapped[int] = mapped_column(BigInteger)
    base_model_ref: Mapped[str] = mapped_column(String(500), default="")
    base_version_uid: Mapped[str | None] = mapped_column(
        ForeignKey("model_versions.uid", ondelete="RESTRICT"), nullable=True, index=True
    )
    parent_version_uid: Mapped[str | None] = mapped_column(
        ForeignKey("model_versions.uid", ondelete="RESTRICT"), nullable=True, index=True
    )
    source_job: Mapped[str] = mapped_column(String(255), default="")
    dataset_versions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    storage_prefix: Mapped[str] = mapped_column(String(200))
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    catalog: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    model: Mapped[ModelRow] = relationship(lazy="joined", innerjoin=True)
    base_version: Mapped[VersionRow | None] = relationship(
        foreign_keys=[base_version_uid], remote_side=[uid], lazy="selectin"
    )
    parent_version: Mapped[VersionRow | None] = relationship(
        foreign_keys=[parent_version_uid], remote_side=[uid], lazy="selectin"
    )


class AliasRow(Base):
    __tablename__ = "model_aliases"

    model_uid: Mapped[str] = mapped_column(ForeignKey("models.uid", ondelete="RESTRICT"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(63), primary_key=True)
    version_uid: Mapped[str] = mapped_column(
        ForeignKey("model_versions.uid", ondelete="RESTRICT"), index=True
    )
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    model: Mapped[ModelRow] = relationship(lazy="joined", innerjoin=True)
    version: Mapped[VersionRow] = relationship(lazy="joined", innerjoin=True)


class UploadRow(UploadColumns, Base):
    """A version upload in progress (presigned or streamed, `services.kit.uploads`); the version it
    becomes takes its uid and storage prefix. Expired uncommitted ones are swept."""

    __tablename__ = "model_version_uploads"
    __table_args__ = (UniqueConstraint("model_uid", "request_id", name="uq_uploads_model_request_id"),)

    model_uid: Mapped[str] = mapped_column(ForeignKey("models.uid", ondelete="CASCADE"), index=True)

    model: Mapped[ModelRow] = relationship(lazy="joined", innerjoin=True)


class AliasHistoryRow(Base):
    """Every move of an alias, kept while the model exists."""

    __tablename__ = "alias_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_uid: Mapped[str] = mapped_column(ForeignKey("models.uid", ondelete="CASCADE"), index=True)
    alias: Mapped[str] = mapped_column(String(63))
    from_version: Mapped[str] = mapped_column(String(255), default="")
    to_version: Mapped[str] = mapped_column(String(255), default="")
    actor: Mapped[str] = mapped_column(String(64), default="")
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DerivationRow(Base):
    """A derivation (merge, dtype conversion, quantization), queued for a registry worker."""

    __tablename__ = "derivations"
    __table_args__ = (
        UniqueConstraint("project", "derivation_id", name="uq_derivations_project_id"),
        UniqueConstraint("project", "request_key", name="uq_derivations_project_request_key"),
    )

    uid: Mapped[str] = mapped_column(String(32), primary_key=True)
    project: Mapped[str] = mapped_column(String(63), index=True)
    derivation_id: Mapped[str] = mapped_column(String(63))
    source_uid: Mapped[str] = mapped_column(String(32))
    source_name: Mapped[str] = mapped_column(String(255))
    operation: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(32))
    output_model_uid: Mapped[str] = mapped_column(String(32))
    output_model_name: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), index=True)
    result_version_uid: Mapped[str | None] = mapped_column(String(32), nullable=True)
    failure_reason: Mapped[str] = mapped_column(String(64), default="")
    failure_message: Mapped[str] = mapped_column(Text, default="")
    peak_memory_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    request_key: Mapped[str | None] = mapped_column(String(160), nullable=True)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
