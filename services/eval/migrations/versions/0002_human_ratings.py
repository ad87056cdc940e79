"""Human rating tasks and ratings.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rating_tasks",
        sa.Column("uid", sa.String(length=32), nullable=False),
        sa.Column("evaluation_uid", sa.String(length=32), nullable=False),
        sa.Column("task_id", sa.String(length=63), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("model_versions", sa.JSON(), nullable=False),
        sa.Column("scale", sa.Integer(), nullable=False),
        sa.Column("items", sa.BigInteger(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["evaluation_uid"], ["evaluations.uid"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("uid"),
        sa.UniqueConstraint("evaluation_uid", "task_id", name="uq_rating_tasks_id"),
    )
    op.create_index("ix_rating_tasks_evaluation_uid", "rating_tasks", ["evaluation_uid"])
    op.create_table(
        "ratings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_uid", sa.String(length=32), nullable=False),
        sa.Column("sample_id", sa.String(length=255), nullable=False),
        sa.Column("rater", sa.String(length=200), nullable=False),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("preference", sa.String(length=8), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["task_uid"], ["rating_tasks.uid"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("task_uid", "sample_id", "rater", name="uq_ratings_one_per_rater"),
    )
    op.create_index("ix_ratings_task_uid", "ratings", ["task_uid"])


def downgrade() -> None:
    op.drop_table("ratings")
    op.drop_table("rating_tasks")
