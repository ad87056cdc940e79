"""long work as resources: version tasks and failures, insights and mixtures with state, upload
sessions in the kit's shape

Revision ID: 0002
Revises: 0001
"""

import json
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dataset_versions") as batch:
        batch.add_column(sa.Column("task", sa.JSON(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("failure_reason", sa.String(length=64), nullable=False, server_default=""))
        batch.add_column(sa.Column("failure_message", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("update_time", sa.DateTime(timezone=True), nullable=True))

    op.create_table(
        "dataset_insights",
        sa.Column("uid", sa.String(length=32), nullable=False),
        sa.Column("version_uid", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("tokenizer", sa.String(length=255), nullable=False),
        sa.Column("max_sequence_length", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("charts", sa.JSON(), nullable=False),
        sa.Column("failure_reason", sa.String(length=64), nullable=False),
        sa.Column("failure_message", sa.Text(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["version_uid"], ["dataset_versions.uid"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("uid"),
        sa.UniqueConstraint("version_uid", "key", name="uq_dataset_insights_key"),
    )
    op.create_index("ix_dataset_insights_version_uid", "dataset_insights", ["version_uid"])
    op.create_table(
        "mixtures",
        sa.Column("uid", sa.String(length=32), nullable=False),
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("mixture_id", sa.String(length=63), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("validation_ratio", sa.Float(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("train_rows", sa.BigInteger(), nullable=False),
        sa.Column("validation_rows", sa.BigInteger(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("storage_prefix", sa.String(length=200), nullable=False),
        sa.Column("failure_reason", sa.String(length=64), nullable=False),
        sa.Column("failure_message", sa.Text(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("uid"),
        sa.UniqueConstraint("project", "mixture_id", name="uq_mixtures_project_mixture_id"),
        sa.UniqueConstraint("project", "request_id", name="uq_mixtures_project_request_id"),
    )
    op.create_index("ix_mixtures_project", "mixtures", ["project"])

    connection = op.get_bind()
    # Insights cached on the version row become rows of their own (their report says which
    # tokenizer and length they were computed for).
    versions = connection.execute(sa.text("SELECT uid, insights FROM dataset_versions")).all()
    now = datetime.now(UTC)
    for version_uid, insights in versions:
        cached = json.loads(insights) if isinstance(insights, str) else (insights or {})
        for key, value in cached.items():
            connection.execute(
                sa.text(
                    "INSERT INTO dataset_insights (uid, version_uid, key, tokenizer, max_sequence_length,"
                    " state, charts, failure_reason, failure_message, create_time, update_time) VALUES"
                    " (:uid, :version_uid, :key, '', 0, 'ready', :charts, '', '', :now, :now)"
                ),
                {
                    "uid": uuid.uuid4().hex,
                    "version_uid": version_uid,
                    "key": key,
                    "charts": json.dumps(value.get("charts", [])),
                    "now": now,
                },
            )

    # Upload sessions take the kit's shape: declared files under a storage prefix, options as spec.
    uploads = connection.execute(
        sa.text("SELECT uid, options, size_bytes, sha256, storage_key FROM dataset_uploads")
    ).all()
    with op.batch_alter_table("dataset_uploads") as batch:
        batch.add_column(sa.Column("mode", sa.String(length=16), nullable=False, server_default="presigned"))
        batch.add_column(sa.Column("spec", sa.LargeBinary(), nullable=False, server_default=""))
        batch.add_column(sa.Column("files", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(
            sa.Column("storage_prefix", sa.String(length=200), nullable=False, server_default="")
        )
    for uid, options, size_bytes, sha256, storage_key in uploads:
        prefix, _, path = storage_key.rpartition("/")
        connection.execute(
            sa.text(
                "UPDATE dataset_uploads SET spec = :spec, files = :files, storage_prefix = :prefix WHERE uid = :uid"
            ),
            {
                "spec": options,
                "files": json.dumps([{"path": path, "size_bytes": size_bytes, "sha256": sha256}]),
                "prefix": prefix + "/",
                "uid": uid,
            },
        )
    with op.batch_alter_table("dataset_uploads") as batch:
        batch.drop_column("options")
        batch.drop_column("size_bytes")
        batch.drop_column("sha256")
        batch.drop_column("storage_key")


def downgrade() -> None:
    raise NotImplementedError("0002 moves upload sessions and insights; restore a backup to go back")
