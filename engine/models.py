"""Tables of the engine (SQLAlchemy 2.0 typed models).

Every schema change goes through an Alembic migration in ``engine/migrations``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# integer primary keys that autoincrement on SQLite and PostgreSQL alike
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "tb_user"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(300), nullable=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # designer | clerk | monitor | admin (a user may hold several)
    roles: Mapped[list | None] = mapped_column(JSON, default=list, nullable=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("tb_department.id"), nullable=True)
    groups: Mapped[list[Group]] = relationship(secondary="tb_membership", lazy="selectin")


class Department(Base):
    """A node of the org tree: 省 / 市 / 区县 / 街镇 / 村社区 (level 1..5)."""

    __tablename__ = "tb_department"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[int] = mapped_column(Integer)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("tb_department.id"), nullable=True)


class ApiToken(Base):
    """A bearer token an administrator issued; only its SHA-256 is stored."""

    __tablename__ = "tb_api_token"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_name: Mapped[str] = mapped_column(String(100))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class LoginFailure(Base):
    """Failed sign-ins, for rate limiting across web worker processes."""

    __tablename__ = "tb_login_failure"
    __table_args__ = (Index("ix_login_failure_key", "key", "at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class Group(Base):
    __tablename__ = "tb_group"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    department_id: Mapped[int | None] = mapped_column(ForeignKey("tb_department.id"), nullable=True)


class Membership(Base):
    __tablename__ = "tb_membership"
    user_id: Mapped[int] = mapped_column(ForeignKey("tb_user.id", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("tb_group.id", ondelete="CASCADE"), primary_key=True)


class ProcessDefinition(Base):
    """One deployed version of one process key. The parsed spec is stored once, here."""

    __tablename__ = "tb_definition"
    __table_args__ = (
        UniqueConstraint("key", "version", name="uq_definition_key_version"),
        Index("ix_definition_key_checksum", "key", "checksum"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(300), default="")
    checksum: Mapped[str] = mapped_column(String(64))
    spec: Mapped[str] = mapped_column(Text)  # serialized SpiffWorkflow specs (JSON)
    manifest: Mapped[dict] = mapped_column(JSON)
    sources: Mapped[dict] = mapped_column(JSON)  # {file name: file text} as uploaded
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deployed_by: Mapped[str] = mapped_column(String(100), default="system")


class Instance(Base):
    __tablename__ = "tb_instance"
    __table_args__ = (
        Index("ix_instance_status", "status"),
        Index("ix_instance_business_key", "business_key"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("tb_definition.id"))
    process_key: Mapped[str] = mapped_column(String(200))
    business_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(20))  # running | completed | error | terminated
    version: Mapped[int] = mapped_column(Integer, default=1)  # optimistic lock
    state: Mapped[str] = mapped_column(Text, deferred=True)  # SpiffWorkflow state JSON without the spec
    data: Mapped[dict] = mapped_column(JSON, default=dict)  # data snapshot for reading
    started_by: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    # UPDATE ... WHERE id = ? AND version = ?; a stale writer gets StaleDataError -> Conflict
    __mapper_args__ = {"version_id_col": version}


class HumanTask(Base):
    """Mirror of a READY user/manual task; the inbox reads this, never the workflow."""

    __tablename__ = "tb_human_task"
    __table_args__ = (
        Index("ix_human_task_instance", "instance_id", "status"),
        Index("ix_human_task_assignee", "status", "assignee"),
        Index("ix_human_task_due", "status", "due_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("tb_instance.id", ondelete="CASCADE"))
    spiff_task_id: Mapped[str] = mapped_column(String(36), unique=True)
    process_key: Mapped[str] = mapped_column(String(200))
    bpmn_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(300), default="")
    lane: Mapped[str | None] = mapped_column(String(200), nullable=True)
    candidate_groups: Mapped[list] = mapped_column(JSON, default=list)
    candidate_users: Mapped[list] = mapped_column(JSON, default=list)
    assignee: Mapped[str | None] = mapped_column(String(100), nullable=True)
    owner: Mapped[str | None] = mapped_column(String(100), nullable=True)
    status: Mapped[str] = mapped_column(String(20))  # open | completed | cancelled
    priority: Mapped[int] = mapped_column(Integer, default=50)
    form_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    warn_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    decision: Mapped[str | None] = mapped_column(String(100), nullable=True)
    opinion: Mapped[str | None] = mapped_column(Text, nullable=True)


class TaskCandidate(Base):
    """One row per candidate group or user of an open task, so inbox queries use an index."""

    __tablename__ = "tb_task_candidate"
    __table_args__ = (Index("ix_task_candidate_lookup", "kind", "name", "task_id"),)
    task_id: Mapped[int] = mapped_column(ForeignKey("tb_human_task.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(5), primary_key=True)  # group | user
    name: Mapped[str] = mapped_column(String(100), primary_key=True)


class Job(Base):
    """Anything that must happen later: timers, retries, SLA points."""

    __tablename__ = "tb_job"
    __table_args__ = (
        Index("ix_job_due", "status", "due_at"),
        Index("ix_job_instance", "instance_id"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending | done | incident
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    instance_id: Mapped[int | None] = mapped_column(
        ForeignKey("tb_instance.id", ondelete="CASCADE"), nullable=True
    )
    task_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    locked_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class EventSubscription(Base):
    """An instance waiting for a message; the correlation values are what a sender must match."""

    __tablename__ = "tb_subscription"
    __table_args__ = (Index("ix_subscription_lookup", "event_name", "correlation"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("tb_instance.id", ondelete="CASCADE"))
    spiff_task_id: Mapped[str] = mapped_column(String(36))
    event_name: Mapped[str] = mapped_column(String(200))
    correlation: Mapped[str] = mapped_column(String(500), default="{}")
    business_key: Mapped[str | None] = mapped_column(String(200), nullable=True)


class Incident(Base):
    __tablename__ = "tb_incident"
    __table_args__ = (Index("ix_incident_instance", "instance_id", "resolved_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    instance_id: Mapped[int | None] = mapped_column(
        ForeignKey("tb_instance.id", ondelete="CASCADE"), nullable=True
    )
    job_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    kind: Mapped[str] = mapped_column(String(40))
    element_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AuditEvent(Base):
    """Append-only, hash-chained record of every state change."""

    __tablename__ = "tb_audit"
    __table_args__ = (Index("ix_audit_instance", "instance_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(60))
    instance_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    definition_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    task_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
