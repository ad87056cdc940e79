"""method metrics and batch sample ids on metric points; job priority and preemptions

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
    with op.batch_alter_table("metric_points") as batch:
        batch.add_column(sa.Column("extra", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("sample_ids", sa.JSON(), nullable=True))
    with op.batch_alter_table("training_jobs") as batch:
        batch.add_column(sa.Column("priority", sa.String(length=16), nullable=False, server_default="normal"))
        batch.add_column(sa.Column("preemptions", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("training_jobs") as batch:
        batch.drop_column("preemptions")
        batch.drop_column("priority")
    with op.batch_alter_table("metric_points") as batch:
        batch.drop_column("sample_ids")
        batch.drop_column("extra")
