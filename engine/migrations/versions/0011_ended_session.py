"""Signed-out web sessions by id: signing out ends that browser's session (and copies of its
cookie) only; idle and over-long sessions end the same way.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tb_ended_session",
        sa.Column("sid", sa.String(64), primary_key=True),
        sa.Column("user_name", sa.String(100), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(20), nullable=False),
    )
    op.create_index("ix_ended_session_at", "tb_ended_session", ["ended_at"])


def downgrade() -> None:
    op.drop_index("ix_ended_session_at", table_name="tb_ended_session")
    op.drop_table("tb_ended_session")
