"""Projects as resources, key expiry and last use, the audit log, storage used per project.

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
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("expire_time", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_used_time", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "projects",
        sa.Column("project_id", sa.String(63), primary_key=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("quota", sa.JSON(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("project", sa.String(63), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("key_project", sa.String(63), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("method", sa.String(200), nullable=False),
        sa.Column("resource", sa.String(1024), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
    )
    op.create_index("ix_audit_log_project_time", "audit_log", ["project", "time"])
    op.create_table(
        "storage_usage",
        sa.Column("project", sa.String(63), primary_key=True),
        sa.Column("service", sa.String(32), primary_key=True),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("storage_usage")
    op.drop_table("audit_log")
    op.drop_table("projects")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("last_used_time")
        batch.drop_column("expire_time")
