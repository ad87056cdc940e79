"""The train service's tables: jobs, kept checkpoints, metric history, the workers' heartbeats.
Workers share them."""

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


class JobRow(Base):
    __tablename__ = "training_jobs"
    __table_args__ = (
        UniqueConstraint("project", "job_id", name="uq_jobs_project_job_id"),
        UniqueConstraint("project", "request_id", name="uq_jobs_project_request_id"),
    )

    uid: Mapped[str] = mapped_column(String(32), primary_key=True)
    project: Mapped[str] = mapped_column(String(63), index=True)
    job_id: Mapped[str] = mapped_column(String(63))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[str] = mapped_column(String(16), index=True)
    method: Mapped[str] = mapped_column(String(32))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    error_reason: Mapped[str] = mapped_column(String(64), default="")
    error_message: Mapped[str] = mapped_column(Text, default="")
    current_step: Mapped[int] = mapped_column(BigInteger, default=0)
    total_steps: Mapped[int] = mapped_column(BigInteger, default=0)
    overlength_samples: Mapped[int] = mapped_column(BigInteger, default=0)
    final_model_version: Mapped[str] = mapped_column(String(255), default="")
    best_model_version: Mapped[str] = mapped_column(String(255), default="")
    metrics: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    preemptions: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker: Mapped[str] = mapped_column(String(128), default="")
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    start_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class CheckpointRow(Base):
    __tablename__ = "checkpoints"

    job_uid: Mapped[str] = mapped_column(
        ForeignKey("training_jobs.uid", ondelete="CASCADE"), primary_key=True
    )
    step: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    epoch: Mapped[float] = mapped_column(Float, default=0.0)
    validation_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    best: Mapped[bool] = mapped_column(Boolean, default=False)
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    storage_prefix: Mapped[str] = mapped_column(String(200))
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MetricRow(Base):
    __tablename__ = "metric_points"
    __table_args__ = (UniqueConstraint("job_uid", "step", "validation", name="uq_metric_points_step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_uid: Mapped[str] = mapped_column(ForeignKey("training_jobs.uid", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(BigInteger)
    validation: Mapped[bool] = mapped_column(Boolean, default=False)
    epoch: Mapped[float] = mapped_column(Float, default=0.0)
    loss: Mapped[float] = mapped_column(Float, default=0.0)
    validation_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    learning_rate: Mapped[float] = mapped_column(Float, default=0.0)
    grad_norm: Mapped[float] = mapped_column(Float, default=0.0)
    tokens_per_second: Mapped[float] = mapped_column(Float, default=0.0)
    extra: Mapped[dict[str, float] | None] = mapped_column(JSON, nullable=True)
    sample_ids: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WorkerRow(Base):
    """A training worker's heartbeat: what it has, and the job it runs."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    accelerator_kind: Mapped[str] = mapped_column(String(16))
    accelerators: Mapped[int] = mapped_column(Integer)
    accelerator_memory_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    host_memory_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    # {"backends": [...], "device_names": [...], "versions": {...}, "ray_nodes": n, ...}
    facts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    current_job: Mapped[str] = mapped_column(String(32), default="")  # the job's uid
    current_project: Mapped[str] = mapped_column(String(63), default="")
    current_job_name: Mapped[str] = mapped_column(String(255), default="")
    heartbeat_seconds: Mapped[float] = mapped_column(Float, default=5.0)
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    heartbeat_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
