"""teachers, augmentation runs and their reply cache, annotation tasks with items and reviews

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _times() -> list[sa.Column]:
    return [
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "teachers",
        sa.Column("uid", sa.String(length=32), primary_key=True),
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("teacher_id", sa.String(length=63), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("deployment", sa.String(length=255), nullable=False),
        sa.Column("base_url", sa.String(length=1000), nullable=False),
        sa.Column("model", sa.String(length=300), nullable=False),
        sa.Column("sealed_api_key", sa.Text(), nullable=False),
        sa.Column("limits", sa.JSON(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        *_times(),
        sa.UniqueConstraint("project", "teacher_id", name="uq_teachers_project_teacher_id"),
        sa.UniqueConstraint("project", "request_id", name="uq_teachers_project_request_id"),
    )
    op.create_index("ix_teachers_project", "teachers", ["project"])
    op.create_table(
        "augmentation_runs",
        sa.Column("uid", sa.String(length=32), primary_key=True),
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("run_id", sa.String(length=63), nullable=False),
        sa.Column("source_uid", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=1024), nullable=False),
        sa.Column("output_dataset_uid", sa.String(length=32), nullable=False),
        sa.Column("output_dataset", sa.String(length=255), nullable=False),
        sa.Column("operation", sa.String(length=32), nullable=False),
        sa.Column("teacher_uid", sa.String(length=32), nullable=False),
        sa.Column("judge_uid", sa.String(length=32), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("errors_by_reason", sa.JSON(), nullable=False),
        sa.Column("error_examples", sa.JSON(), nullable=False),
        sa.Column("output_version_uid", sa.String(length=32), nullable=False),
        sa.Column("output_version", sa.String(length=1024), nullable=False),
        sa.Column("rejects", sa.JSON(), nullable=False),
        sa.Column("storage_prefix", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("failure_reason", sa.String(length=64), nullable=False),
        sa.Column("failure_message", sa.Text(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        *_times(),
        sa.UniqueConstraint("project", "run_id", name="uq_augmentation_runs_project_run_id"),
        sa.UniqueConstraint("project", "request_id", name="uq_augmentation_runs_project_request_id"),
    )
    op.create_index("ix_augmentation_runs_project", "augmentation_runs", ["project"])
    op.create_index("ix_augmentation_runs_create_time", "augmentation_runs", ["create_time"])
    op.create_table(
        "teacher_replies",
        sa.Column("key", sa.String(length=64), primary_key=True),
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("teacher_uid", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("finish_reason", sa.String(length=32), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_teacher_replies_project", "teacher_replies", ["project"])
    op.create_index("ix_teacher_replies_teacher_uid", "teacher_replies", ["teacher_uid"])
    op.create_table(
        "annotation_tasks",
        sa.Column("uid", sa.String(length=32), primary_key=True),
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("task_id", sa.String(length=63), nullable=False),
        sa.Column("source_uid", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=1024), nullable=False),
        sa.Column("source_kind", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("instructions", sa.Text(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("score_min", sa.Integer(), nullable=False),
        sa.Column("score_max", sa.Integer(), nullable=False),
        sa.Column("teacher_uid", sa.String(length=32), nullable=False),
        sa.Column("teacher", sa.String(length=255), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("max_rows", sa.Integer(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("output_version_uid", sa.String(length=32), nullable=False),
        sa.Column("output_version", sa.String(length=1024), nullable=False),
        sa.Column("failure_reason", sa.String(length=64), nullable=False),
        sa.Column("failure_message", sa.Text(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        *_times(),
        sa.UniqueConstraint("project", "task_id", name="uq_annotation_tasks_project_task_id"),
        sa.UniqueConstraint("project", "request_id", name="uq_annotation_tasks_project_request_id"),
    )
    op.create_index("ix_annotation_tasks_project", "annotation_tasks", ["project"])
    op.create_index("ix_annotation_tasks_create_time", "annotation_tasks", ["create_time"])
    op.create_table(
        "annotation_items",
        sa.Column("uid", sa.String(length=32), primary_key=True),
        sa.Column("task_uid", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("row_id", sa.Text(), nullable=False),
        sa.Column("row", sa.JSON(), nullable=False),
        sa.Column("candidates", sa.JSON(), nullable=False),
        sa.Column("model_value", sa.JSON(), nullable=False),
        sa.Column("model_output", sa.Text(), nullable=False),
        sa.Column("model_error", sa.Text(), nullable=False),
        sa.Column("labelled", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["task_uid"], ["annotation_tasks.uid"], ondelete="CASCADE"),
        sa.UniqueConstraint("task_uid", "position", name="uq_annotation_items_position"),
    )
    op.create_index("ix_annotation_items_task_uid", "annotation_items", ["task_uid"])
    op.create_table(
        "annotation_reviews",
        sa.Column("item_uid", sa.String(length=32), primary_key=True),
        sa.Column("annotator", sa.String(length=100), primary_key=True),
        sa.Column("task_uid", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("review_time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["item_uid"], ["annotation_items.uid"], ondelete="CASCADE"),
    )
    op.create_index("ix_annotation_reviews_task_uid", "annotation_reviews", ["task_uid"])


def downgrade() -> None:
    for table in (
        "annotation_reviews",
        "annotation_items",
        "annotation_tasks",
        "teacher_replies",
        "augmentation_runs",
        "teachers",
    ):
        op.drop_table(table)
