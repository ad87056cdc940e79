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


class TeacherRow(Base):
    """A model that writes or labels data (`services.data.teachers`); its key sealed (`kit.sealing`)."""

    __tablename__ = "teachers"
    __table_args__ = (
        UniqueConstraint("project", "teacher_id", name="uq_teachers_project_teacher_id"),
        UniqueConstraint("project", "request_id", name="uq_teachers_project_request_id"),
    )

    uid: Mapped[str] = mapped_column(String(32), primary_key=True)
    project: Mapped[str] = mapped_column(String(63), index=True)
    teacher_id: Mapped[str] = mapped_column(String(63))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    deployment: Mapped[str] = mapped_column(String(255), default="")
    base_url: Mapped[str] = mapped_column(String(1000), default="")
    model: Mapped[str] = mapped_column(String(300), default="")
    sealed_api_key: Mapped[str] = mapped_column(Text, default="")
    # max_concurrency, requests_per_minute, timeout_seconds, max_retries, input/output cost.
    limits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AugmentationRunRow(Base):
    """An augmentation run (`services.data.augmentations`, done by `services.data.augment_runs`)."""

    __tablename__ = "augmentation_runs"
    __table_args__ = (
        UniqueConstraint("project", "run_id", name="uq_augmentation_runs_project_run_id"),
        UniqueConstraint("project", "request_id", name="uq_augmentation_runs_project_request_id"),
    )

    uid: Mapped[str] = mapped_column(String(32), primary_key=True)
    project: Mapped[str] = mapped_column(String(63), index=True)
    run_id: Mapped[str] = mapped_column(String(63))
    source_uid: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(1024))
    output_dataset_uid: Mapped[str] = mapped_column(String(32))
    output_dataset: Mapped[str] = mapped_column(String(255))
    operation: Mapped[str] = mapped_column(String(32))
    teacher_uid: Mapped[str] = mapped_column(String(32))
    judge_uid: Mapped[str] = mapped_column(String(32))
    # The run's whole recipe: templates, parameters, filters, teacher and judge names.
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    errors_by_reason: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    error_examples: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    output_version_uid: Mapped[str] = mapped_column(String(32), default="")
    output_version: Mapped[str] = mapped_column(String(1024), default="")
    rejects: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    storage_prefix: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    failure_reason: Mapped[str] = mapped_column(String(64), default="")
    failure_message: Mapped[str] = mapped_column(Text, default="")
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TeacherReplyRow(Base):
    """A teacher's reply, under the hash of the exact request (project included): the cache that
    lets a restarted run, or a later one asking the same, skip the call."""

    __tablename__ = "teacher_replies"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    project: Mapped[str] = mapped_column(String(63), index=True)
    teacher_uid: Mapped[str] = mapped_column(String(32), index=True)
    text: Mapped[str] = mapped_column(Text)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    finish_reason: Mapped[str] = mapped_column(String(32), default="")
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AnnotationTaskRow(Base):
    """An annotation task (`services.data.annotations`; pre-labelled by `services.data.annotating`)."""

    __tablename__ = "annotation_tasks"
    __table_args__ = (
        UniqueConstraint("project", "task_id", name="uq_annotation_tasks_project_task_id"),
        UniqueConstraint("project", "request_id", name="uq_annotation_tasks_project_request_id"),
    )

    uid: Mapped[str] = mapped_column(String(32), primary_key=True)
    project: Mapped[str] = mapped_column(String(63), index=True)
    task_id: Mapped[str] = mapped_column(String(63))
    source_uid: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(1024))
    source_kind: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    instructions: Mapped[str] = mapped_column(Text, default="")
    labels: Mapped[list[str]] = mapped_column(JSON, default=list)
    score_min: Mapped[int] = mapped_column(Integer, default=1)
    score_max: Mapped[int] = mapped_column(Integer, default=5)
    teacher_uid: Mapped[str] = mapped_column(String(32), default="")
    teacher: Mapped[str] = mapped_column(String(255), default="")
    template: Mapped[str] = mapped_column(Text, default="")
    max_rows: Mapped[int] = mapped_column(Integer, default=0)
    seed: Mapped[int] = mapped_column(BigInteger, default=0)
    state: Mapped[str] = mapped_column(String(16))
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    output_version_uid: Mapped[str] = mapped_column(String(32), default="")
    output_version: Mapped[str] = mapped_column(String(1024), default="")
    failure_reason: Mapped[str] = mapped_column(String(64), default="")
    failure_message: Mapped[str] = mapped_column(Text, default="")
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AnnotationItemRow(Base):
    """One row of an annotation task, with the model's label."""

    __tablename__ = "annotation_items"
    __table_args__ = (UniqueConstraint("task_uid", "position", name="uq_annotation_items_position"),)

    uid: Mapped[str] = mapped_column(String(32), primary_key=True)
    task_uid: Mapped[str] = mapped_column(ForeignKey("annotation_tasks.uid", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    row_id: Mapped[str] = mapped_column(Text)
    row: Mapped[dict[str, Any]] = mapped_column(JSON)
    candidates: Mapped[list[str]] = mapped_column(JSON, default=list)
    # {"score": 4} / {"label": "spam"} / {"answer": "..."} / {"choice": "A"}; {} when none.
    model_value: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    model_output: Mapped[str] = mapped_column(Text, default="")
    model_error: Mapped[str] = mapped_column(Text, default="")
    labelled: Mapped[bool] = mapped_column(default=False)


class AnnotationReviewRow(Base):
    """One annotator's decision on an item (the latest replaces the earlier)."""

    __tablename__ = "annotation_reviews"

    item_uid: Mapped[str] = mapped_column(
        ForeignKey("annotation_items.uid", ondelete="CASCADE"), primary_key=True
    )
    annotator: Mapped[str] = mapped_column(String(100), primary_key=True)
    task_uid: Mapped[str] = mapped_column(String(32), index=True)
    action: Mapped[str] = mapped_column(String(8))
    value: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    review_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
