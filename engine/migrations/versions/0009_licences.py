"""Electronic licences issued by service tasks.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tb_licence",
        sa.Column("id", _ID, nullable=False),
        sa.Column("licence_no", sa.String(length=40), nullable=False),
        sa.Column("licence_id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("type_code", sa.String(length=40), nullable=False),
        sa.Column("prefix", sa.String(length=20), nullable=False),
        sa.Column("serial_year", sa.Integer(), nullable=False),
        sa.Column("serial", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=300), nullable=False),
        sa.Column("holder_code", sa.String(length=100), nullable=False),
        sa.Column("holder_code_type", sa.String(length=20), nullable=False),
        sa.Column("issuer", sa.String(length=200), nullable=False),
        sa.Column("issuer_code", sa.String(length=60), nullable=False),
        sa.Column("jurisdiction", sa.String(length=20), nullable=False),
        sa.Column("address", sa.String(length=500), nullable=True),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=True),
        sa.Column("verify_code", sa.String(length=32), nullable=False),
        sa.Column("instance_id", _ID, nullable=False),
        sa.Column("task_ref", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("licence_no"),
        sa.UniqueConstraint("instance_id", "task_ref", name="uq_licence_task"),
        sa.UniqueConstraint("prefix", "serial_year", "serial", name="uq_licence_serial"),
    )
    op.create_index("ix_licence_instance", "tb_licence", ["instance_id"])
    op.create_index("ix_licence_holder_code", "tb_licence", ["holder_code"])


def downgrade() -> None:
    op.drop_index("ix_licence_holder_code", table_name="tb_licence")
    op.drop_index("ix_licence_instance", table_name="tb_licence")
    op.drop_table("tb_licence")
