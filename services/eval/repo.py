"""The eval service's tables. Predictions live in S3 (`evaluations/{uid}/predictions.jsonl`)."""

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
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.kit.outbox import add_kit_tables


class Base(DeclarativeBase):
    metadata = MetaData()


OUTBOX, PROCESSED_EVENTS = add_kit_tables(Base.metadata)


class EvaluationRow(Base):
    __tablename__ = "evaluations"
    __table_args__ = (
        UniqueConstraint("project", "evaluation_id", name="uq_evaluations_project_id"),
        UniqueConstraint("project", "request_id", name="uq_evaluations_project_request_id"),
    )

    uid: Mapped[str] = mapped_column(String(32), primary_key=True)
    project: Mapped[str] = mapped_column(String(63), index=True)
    evaluation_id: Mapped[str] = mapped_column(String(63))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[str] = mapped_column(String(16), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error: Mapped[str] = mapped_column(Text, default="")
    total_samples: Mapped[int] = mapped_column(BigInteger, default=0)
    done_samples: Mapped[int] = mapped_column(BigInteger, default=0)
    predictions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # {"key", "sha256", "size_bytes"}
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class RatingTaskRow(Base):
    __tablename__ = "rating_tasks"
    __table_args__ = (UniqueConstraint("evaluation_uid", "task_id", name="uq_rating_tasks_id"),)

    uid: Mapped[str] = mapped_column(String(32), primary_key=True)
    evaluation_uid: Mapped[str] = mapped_column(ForeignKey("evaluations.uid", ondelete="CASCADE"), index=True)
    task_id: Mapped[str] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(16))
    model_versions: Mapped[list[str]] = mapped_column(JSON)
    scale: Mapped[int] = mapped_column(Integer, default=5)
    items: Mapped[int] = mapped_column(BigInteger, default=0)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RatingRow(Base):
    __tablename__ = "ratings"
    __table_args__ = (UniqueConstraint("task_uid", "sample_id", "rater", name="uq_ratings_one_per_rater"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_uid: Mapped[str] = mapped_column(ForeignKey("rating_tasks.uid", ondelete="CASCADE"), index=True)
    sample_id: Mapped[str] = mapped_column(String(255))
    rater: Mapped[str] = mapped_column(String(200))
    score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    preference: Mapped[str] = mapped_column(String(8), default="")
    comment: Mapped[str] = mapped_column(Text, default="")
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
