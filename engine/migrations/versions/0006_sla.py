"""SLA: legal clocks, pauses, extensions, the escalation log, supervision cards, notices.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tb_sla_clock",
        sa.Column("id", _ID, nullable=False),
        sa.Column("instance_id", _ID, nullable=False),
        sa.Column("human_task_id", _ID, nullable=True),
        sa.Column("scope", sa.String(length=10), nullable=False),
        sa.Column("process_key", sa.String(length=200), nullable=False),
        sa.Column("bpmn_id", sa.String(length=200), nullable=True),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("region", sa.String(length=40), nullable=False),
        sa.Column("unit", sa.String(length=10), nullable=False),
        sa.Column("statutory", sa.Float(), nullable=True),
        sa.Column("promised", sa.Float(), nullable=True),
        sa.Column("warn", sa.Float(), nullable=True),
        sa.Column("warn_before", sa.Float(), nullable=True),
        sa.Column("approver_group", sa.String(length=100), nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("start_day", sa.Date(), nullable=False),
        sa.Column("base_due_at", _TS, nullable=True),
        sa.Column("paused_at", _TS, nullable=True),
        sa.Column("pause_reason", sa.String(length=200), nullable=True),
        sa.Column("pause_source", sa.String(length=200), nullable=True),
        sa.Column("paused_units", sa.Float(), nullable=False),
        sa.Column("extended", sa.Float(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("due_at", _TS, nullable=True),
        sa.Column("statutory_due_at", _TS, nullable=True),
        sa.Column("warn_at", _TS, nullable=True),
        sa.Column("provisional", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("ended_at", _TS, nullable=True),
        sa.Column("end_reason", sa.String(length=40), nullable=True),
        sa.Column("department_id", _ID, nullable=True),
        sa.Column("raised_department_id", _ID, nullable=True),
        sa.Column("chain", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["instance_id"], ["tb_instance.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sla_clock_instance", "tb_sla_clock", ["instance_id", "status"], unique=False)
    op.create_index("ix_sla_clock_task", "tb_sla_clock", ["human_task_id"], unique=False)
    op.create_index("ix_sla_clock_due", "tb_sla_clock", ["status", "due_at"], unique=False)
    op.create_table(
        "tb_sla_pause",
        sa.Column("id", _ID, nullable=False),
        sa.Column("instance_id", _ID, nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("paused_by", sa.String(length=100), nullable=False),
        sa.Column("ended_at", _TS, nullable=True),
        sa.Column("resumed_by", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(["instance_id"], ["tb_instance.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sla_pause_instance", "tb_sla_pause", ["instance_id", "ended_at"], unique=False)
    op.create_table(
        "tb_sla_extension",
        sa.Column("id", _ID, nullable=False),
        sa.Column("clock_id", _ID, nullable=False),
        sa.Column("instance_id", _ID, nullable=False),
        sa.Column("human_task_id", _ID, nullable=True),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("requested_by", sa.String(length=100), nullable=False),
        sa.Column("requested_at", _TS, nullable=False),
        sa.Column("approver_group", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("decided_at", _TS, nullable=True),
        sa.Column("decision_note", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(["clock_id"], ["tb_sla_clock.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sla_extension_clock", "tb_sla_extension", ["clock_id", "status"], unique=False)
    op.create_table(
        "tb_sla_event",
        sa.Column("id", _ID, nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("job_id", _ID, nullable=True),
        sa.Column("clock_id", _ID, nullable=False),
        sa.Column("instance_id", _ID, nullable=False),
        sa.Column("human_task_id", _ID, nullable=True),
        sa.Column("point", sa.String(length=40), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sla_event_at", "tb_sla_event", ["at"], unique=False)
    op.create_index("ix_sla_event_instance", "tb_sla_event", ["instance_id"], unique=False)
    op.create_table(
        "tb_supervision_card",
        sa.Column("id", _ID, nullable=False),
        sa.Column("color", sa.String(length=10), nullable=False),
        sa.Column("clock_id", _ID, nullable=False),
        sa.Column("instance_id", _ID, nullable=False),
        sa.Column("human_task_id", _ID, nullable=True),
        sa.Column("scope", sa.String(length=10), nullable=False),
        sa.Column("process_key", sa.String(length=200), nullable=False),
        sa.Column("bpmn_id", sa.String(length=200), nullable=True),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("point", sa.String(length=40), nullable=False),
        sa.Column("department_id", _ID, nullable=True),
        sa.Column("holder", sa.String(length=300), nullable=True),
        sa.Column("due_at", _TS, nullable=True),
        sa.Column("issued_at", _TS, nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedupe_key"),
    )
    op.create_index("ix_supervision_card_issued", "tb_supervision_card", ["issued_at"], unique=False)
    op.create_index("ix_supervision_card_department", "tb_supervision_card", ["department_id", "color"],
                    unique=False)
    op.create_table(
        "tb_notice",
        sa.Column("id", _ID, nullable=False),
        sa.Column("user_name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("instance_id", _ID, nullable=True),
        sa.Column("human_task_id", _ID, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("read_at", _TS, nullable=True),
        sa.Column("email", sa.String(length=300), nullable=True),
        sa.Column("email_status", sa.String(length=10), nullable=False),
        sa.Column("emailed_at", _TS, nullable=True),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedupe_key"),
    )
    op.create_index("ix_notice_user", "tb_notice", ["user_name", "read_at"], unique=False)
    op.create_table(
        "tb_notify_address",
        sa.Column("id", _ID, nullable=False),
        sa.Column("user_name", sa.String(length=100), nullable=False),
        sa.Column("email", sa.String(length=300), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_name"),
    )


def downgrade() -> None:
    op.drop_table("tb_notify_address")
    op.drop_index("ix_notice_user", table_name="tb_notice")
    op.drop_table("tb_notice")
    op.drop_index("ix_supervision_card_department", table_name="tb_supervision_card")
    op.drop_index("ix_supervision_card_issued", table_name="tb_supervision_card")
    op.drop_table("tb_supervision_card")
    op.drop_index("ix_sla_event_instance", table_name="tb_sla_event")
    op.drop_index("ix_sla_event_at", table_name="tb_sla_event")
    op.drop_table("tb_sla_event")
    op.drop_index("ix_sla_extension_clock", table_name="tb_sla_extension")
    op.drop_table("tb_sla_extension")
    op.drop_index("ix_sla_pause_instance", table_name="tb_sla_pause")
    op.drop_table("tb_sla_pause")
    op.drop_index("ix_sla_clock_due", table_name="tb_sla_clock")
    op.drop_index("ix_sla_clock_task", table_name="tb_sla_clock")
    op.drop_index("ix_sla_clock_instance", table_name="tb_sla_clock")
    op.drop_table("tb_sla_clock")
