"""Connectors: connector configuration (with secrets) and the pull log.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tb_connector_config",
        sa.Column("id", _ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("secrets", sa.JSON(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "tb_pull_log",
        sa.Column("id", _ID, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("instance_id", _ID, nullable=True),
        sa.Column("human_task_id", _ID, nullable=True),
        sa.Column("task_ref", sa.String(length=200), nullable=True),
        sa.Column("spiff_task_id", sa.String(length=36), nullable=True),
        sa.Column("job_id", _ID, nullable=True),
        sa.Column("connector", sa.String(length=100), nullable=False),
        sa.Column("operation", sa.String(length=100), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("purpose", sa.String(length=500), nullable=False),
        sa.Column("basis", sa.String(length=500), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("request_id", sa.String(length=100), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("result_hash", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_pull_log_instance", "tb_pull_log", ["instance_id", "at"])
    op.create_index("ix_pull_log_task", "tb_pull_log", ["human_task_id"])
    op.create_index("ix_pull_log_at", "tb_pull_log", ["at"])
    op.create_table(
        "tb_task_pulled",
        sa.Column("human_task_id", _ID, nullable=False),
        sa.Column("instance_id", _ID, nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["human_task_id"], ["tb_human_task.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("human_task_id"),
    )
    op.create_index("ix_task_pulled_instance", "tb_task_pulled", ["instance_id"])


def downgrade() -> None:
    op.drop_index("ix_task_pulled_instance", table_name="tb_task_pulled")
    op.drop_table("tb_task_pulled")
    op.drop_index("ix_pull_log_at", table_name="tb_pull_log")
    op.drop_index("ix_pull_log_task", table_name="tb_pull_log")
    op.drop_index("ix_pull_log_instance", table_name="tb_pull_log")
    op.drop_table("tb_pull_log")
    op.drop_table("tb_connector_config")
