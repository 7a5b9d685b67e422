"""Sign-in and organisation: departments (org tree), user roles and department,
group department, API tokens, failed sign-ins.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tb_department",
        sa.Column("id", _ID, nullable=False),
        sa.Column("code", sa.String(length=60), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("parent_id", _ID, nullable=True),
        sa.ForeignKeyConstraint(["parent_id"], ["tb_department.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    with op.batch_alter_table("tb_user") as b:
        b.add_column(sa.Column("roles", sa.JSON(), nullable=True))
        b.add_column(sa.Column("department_id", _ID, nullable=True))
        b.create_foreign_key("fk_user_department", "tb_department", ["department_id"], ["id"])
    with op.batch_alter_table("tb_group") as b:
        b.add_column(sa.Column("department_id", _ID, nullable=True))
        b.create_foreign_key("fk_group_department", "tb_department", ["department_id"], ["id"])
    op.create_table(
        "tb_api_token",
        sa.Column("id", _ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_name", sa.String(length=100), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "tb_login_failure",
        sa.Column("id", _ID, nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_login_failure_key", "tb_login_failure", ["key", "at"])


def downgrade() -> None:
    op.drop_index("ix_login_failure_key", table_name="tb_login_failure")
    op.drop_table("tb_login_failure")
    op.drop_table("tb_api_token")
    with op.batch_alter_table("tb_group") as b:
        b.drop_constraint("fk_group_department", type_="foreignkey")
        b.drop_column("department_id")
    with op.batch_alter_table("tb_user") as b:
        b.drop_constraint("fk_user_department", type_="foreignkey")
        b.drop_column("department_id")
        b.drop_column("roles")
    op.drop_table("tb_department")
