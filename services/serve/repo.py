"""The serve service's tables: deployments, the serving processes and which of them hold which
deployment, and the call logs with their feedback. Serving processes share these tables (as
training workers share the train service's)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.kit.outbox import add_kit_tables


class Base(DeclarativeBase):
    metadata = MetaData()


OUTBOX, PROCESSED_EVENTS = add_kit_tables(Base.metadata)


class DeploymentRow(Base):
    __tablename__ = "deployments"
    __table_args__ = (
        UniqueConstraint("project", "deployment_id", name="uq_deployments_project_deployment_id"),
        UniqueConstraint("project", "request_id", name="uq_deployments_project_request_id"),
    )

    uid: Mapped[str] = mapped_column(String(32), primary_key=True)
    project: Mapped[str] = mapped_column(String(63), index=True)
    deployment_id: Mapped[str] = mapped_column(String(63))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    # As given (a version or an alias), and what it resolved to: the version to serve.
    model_ref: Mapped[str] = mapped_column(String(255))
    desired_version: Mapped[str] = mapped_column(String(255))
    # A LoRA adapter's base model version ("" for a full model), and the files to load.
    base_version: Mapped[str] = mapped_column(String(255), default="")
    serving_version: Mapped[str] = mapped_column(String(255), default="")
    replicas: Mapped[int] = mapped_column(Integer, default=1)
    engine: Mapped[str] = mapped_column(String(16), default="auto")
    generation: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    max_context: Mapped[int] = mapped_column(Integer, default=0)
    max_concurrent_requests: Mapped[int] = mapped_column(Integer, default=8)
    logging: Mapped[bool] = mapped_column(Boolean, default=True)
    pii_masking: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(16))
    state_reason: Mapped[str] = mapped_column(Text, default="")
    ready_replicas: Mapped[int] = mapped_column(Integer, default=0)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WorkerRow(Base):
    """A serving process: where its engine listens, what it can hold, when it was last alive."""

    __tablename__ = "serve_workers"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    address: Mapped[str] = mapped_column(String(255))
    engines: Mapped[list[str]] = mapped_column(JSON, default=list)
    device: Mapped[str] = mapped_column(String(32), default="cpu")
    capacity: Mapped[int] = mapped_column(Integer, default=4)
    heartbeat_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReplicaRow(Base):
    """A deployment held by a serving process, and the version it serves there."""

    __tablename__ = "replicas"

    deployment_uid: Mapped[str] = mapped_column(
        ForeignKey("deployments.uid", ondelete="CASCADE"), primary_key=True
    )
    worker: Mapped[str] = mapped_column(String(128), primary_key=True)
    # `loading`, `ready` or `failed` (for `version`).
    state: Mapped[str] = mapped_column(String(16))
    version: Mapped[str] = mapped_column(String(255), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CallRow(Base):
    """One call: its index columns, and its payload until the compactor moves it to Parquet."""

    __tablename__ = "call_logs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    deployment_uid: Mapped[str] = mapped_column(ForeignKey("deployments.uid", ondelete="CASCADE"), index=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    model_version: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[str] = mapped_column(String(32))
    error: Mapped[str] = mapped_column(Text, default="")
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    ttft_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    stream: Mapped[bool] = mapped_column(Boolean, default=False)
    # {"messages", "answer", "parameters"} (masked when the deployment asks), or None once compacted
    # (then `part` names the Parquet object that holds it) or when logging is off.
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    part: Mapped[str] = mapped_column(String(255), default="")


class FeedbackRow(Base):
    __tablename__ = "call_feedback"

    call_id: Mapped[str] = mapped_column(ForeignKey("call_logs.id", ondelete="CASCADE"), primary_key=True)
    rating: Mapped[str] = mapped_column(String(8), default="")
    correction: Mapped[str] = mapped_column(Text, default="")
    comment: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
