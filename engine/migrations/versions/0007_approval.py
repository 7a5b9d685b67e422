"""Chinese approval operations: opinions, phrases, added signers / delegates, carbon copies.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tb_opinion",
        sa.Column("id", _ID, nullable=False),
        sa.Column("instance_id", _ID, nullable=False),
        sa.Column("human_task_id", _ID, nullable=True),
        sa.Column("bpmn_id", sa.String(length=200), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("decision", sa.String(length=100), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("target", sa.String(length=300), nullable=True),
        sa.Column("at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["instance_id"], ["tb_instance.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_opinion_instance", "tb_opinion", ["instance_id", "id"], unique=False)
    op.create_index("ix_opinion_task", "tb_opinion", ["human_task_id", "kind"], unique=False)
    op.create_table(
        "tb_phrase",
        sa.Column("id", _ID, nullable=False),
        sa.Column("user_name", sa.String(length=100), nullable=False),
        sa.Column("text", sa.String(length=500), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_name", "text", name="uq_phrase_user_text"),
    )
    op.create_table(
        "tb_task_sign",
        sa.Column("id", _ID, nullable=False),
        sa.Column("human_task_id", _ID, nullable=False),
        sa.Column("instance_id", _ID, nullable=False),
        sa.Column("user_name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("owner", sa.String(length=100), nullable=False),
        sa.Column("added_by", sa.String(length=100), nullable=False),
        sa.Column("added_at", _TS, nullable=False),
        sa.Column("decided_at", _TS, nullable=True),
        sa.Column("decision", sa.String(length=100), nullable=True),
        sa.Column("opinion", sa.Text(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["human_task_id"], ["tb_human_task.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_task_sign_task", "tb_task_sign", ["human_task_id", "status"], unique=False)
    op.create_table(
        "tb_cc",
        sa.Column("id", _ID, nullable=False),
        sa.Column("instance_id", _ID, nullable=False),
        sa.Column("human_task_id", _ID, nullable=True),
        sa.Column("user_name", sa.String(length=100), nullable=False),
        sa.Column("sent_by", sa.String(length=100), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("sent_at", _TS, nullable=False),
        sa.Column("read_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(["instance_id"], ["tb_instance.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_cc_user", "tb_cc", ["user_name", "read_at"], unique=False)
    op.create_index("ix_cc_instance", "tb_cc", ["instance_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_cc_instance", table_name="tb_cc")
    op.drop_index("ix_cc_user", table_name="tb_cc")
    op.drop_table("tb_cc")
    op.drop_index("ix_task_sign_task", table_name="tb_task_sign")
    op.drop_table("tb_task_sign")
    op.drop_table("tb_phrase")
    op.drop_index("ix_opinion_task", table_name="tb_opinion")
    op.drop_index("ix_opinion_instance", table_name="tb_opinion")
    op.drop_table("tb_opinion")
