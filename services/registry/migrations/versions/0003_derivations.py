"""Derivations: merged, converted and quantized versions made by registry workers.

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
        "derivations",
        sa.Column("uid", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(63), nullable=False, index=True),
        sa.Column("derivation_id", sa.String(63), nullable=False),
        sa.Column("source_uid", sa.String(32), nullable=False),
        sa.Column("source_name", sa.String(255), nullable=False),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("target", sa.String(32), nullable=False),
        sa.Column("output_model_uid", sa.String(32), nullable=False),
        sa.Column("output_model_name", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("result_version_uid", sa.String(32), nullable=True),
        sa.Column("failure_reason", sa.String(64), nullable=False, server_default=""),
        sa.Column("failure_message", sa.Text(), nullable=False, server_default=""),
        sa.Column("peak_memory_bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("request_key", sa.String(160), nullable=True),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("project", "derivation_id", name="uq_derivations_project_id"),
        sa.UniqueConstraint("project", "request_key", name="uq_derivations_project_request_key"),
    )


def downgrade() -> None:
    op.drop_table("derivations")
