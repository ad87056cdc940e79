"""workers' heartbeats; restarts of a job's processes

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("name", sa.String(length=128), primary_key=True),
        sa.Column("accelerator_kind", sa.String(length=16), nullable=False),
        sa.Column("accelerators", sa.Integer(), nullable=False),
        sa.Column("accelerator_memory_bytes", sa.BigInteger(), nullable=False),
        sa.Column("host_memory_bytes", sa.BigInteger(), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("current_job", sa.String(length=32), nullable=False),
        sa.Column("current_project", sa.String(length=63), nullable=False),
        sa.Column("current_job_name", sa.String(length=255), nullable=False),
        sa.Column("heartbeat_seconds", sa.Float(), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_time", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_workers_heartbeat_time", "workers", ["heartbeat_time"])
    with op.batch_alter_table("training_jobs") as batch:
        batch.add_column(sa.Column("restarts", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("training_jobs") as batch:
        batch.drop_column("restarts")
    op.drop_index("ix_workers_heartbeat_time", "workers")
    op.drop_table("workers")
