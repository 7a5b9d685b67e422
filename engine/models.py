"""Tables of the engine (SQLAlchemy 2.0 typed models).

Every schema change goes through an Alembic migration in ``engine/migrations``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Float,
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


class SealedJSON(TypeDecorator):
    """A JSON object stored sealed (engine/sealing.py): connector secrets."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value, dialect):
        from . import sealing

        return None if value is None else sealing.seal(value)

    def process_result_value(self, value, dialect):
        from . import sealing

        return None if value is None else sealing.unseal(value)


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
    # web sessions carry the epoch they were signed in at; signing out, a new password or
    # deactivation moves it on, which ends every earlier session of the user
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
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


class EndedSession(Base):
    """A web session that was signed out (its id, from the session cookie): that browser, and any
    copy of its cookie, is signed out while the user's other sessions go on. Kept for as long as a
    session cookie can live."""

    __tablename__ = "tb_ended_session"
    __table_args__ = (Index("ix_ended_session_at", "ended_at"),)
    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(100))
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(String(20))


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
    spec: Mapped[str] = mapped_column(Text, deferred=True)  # serialized SpiffWorkflow specs (JSON)
    manifest: Mapped[dict] = mapped_column(JSON)
    sources: Mapped[dict] = mapped_column(JSON, deferred=True)  # {file name: file text} as uploaded
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


class ConnectorConfig(Base):
    """Configuration of one connector (base URL, timeouts, operations) and its secrets.

    Secrets (API keys, database URLs with passwords) are never returned by the engine, never
    logged and never written to audit details; outputs say only whether each one is set."""

    __tablename__ = "tb_connector_config"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    config: Mapped[dict] = mapped_column(JSON, default=dict)
    secrets: Mapped[dict] = mapped_column(SealedJSON, default=dict)  # sealed at rest: engine/sealing.py
    revision: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(100))


class PullLog(Base):
    """One data pull, service call or unmasking: who, which case and step, which connector,
    operation and fields, for what purpose on which legal basis, how long, the outcome and a
    hash of the kept result. The raw answer and the values are never stored here. Kept at
    least 3 years (个人信息保护法)."""

    __tablename__ = "tb_pull_log"
    __table_args__ = (
        Index("ix_pull_log_instance", "instance_id", "at"),
        Index("ix_pull_log_task", "human_task_id"),
        Index("ix_pull_log_at", "at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(20))  # pull | service | unmask
    actor: Mapped[str] = mapped_column(String(100))
    instance_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    human_task_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    task_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    spiff_task_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    job_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    connector: Mapped[str] = mapped_column(String(100))
    operation: Mapped[str] = mapped_column(String(100))
    fields: Mapped[list] = mapped_column(JSON, default=list)
    purpose: Mapped[str] = mapped_column(String(500), default="")
    basis: Mapped[str] = mapped_column(String(500), default="")
    source: Mapped[str] = mapped_column(String(200), default="")
    request_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str] = mapped_column(String(20))  # ok | error
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    result_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class CalendarDay(Base):
    """A day an administrator loaded from a published schedule: a legal holiday (off) or a
    调休 working weekend (on), for the whole country (region ``CN``) or one region."""

    __tablename__ = "tb_calendar_day"
    __table_args__ = (UniqueConstraint("region", "day", name="uq_calendar_region_day"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    region: Mapped[str] = mapped_column(String(40))
    day: Mapped[date] = mapped_column(Date)
    workday: Mapped[bool] = mapped_column()
    name: Mapped[str] = mapped_column(String(100), default="")


class CalendarYear(Base):
    """A year whose schedule was loaded for a region (so its deadlines are not provisional)."""

    __tablename__ = "tb_calendar_year"
    __table_args__ = (UniqueConstraint("region", "year", name="uq_calendar_region_year"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    region: Mapped[str] = mapped_column(String(40))
    year: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(300), default="")
    loaded_by: Mapped[str] = mapped_column(String(100))
    loaded_at: Mapped[datetime] = mapped_column(UTCDateTime)


# ---- SLA: legal clocks, pauses, extensions, escalations, supervision, notices -----------


class SlaClock(Base):
    """The legal clock of one instance (``scope`` instance) or one human task (``scope`` task):
    statutory and promised limits, pauses and approved extensions, and the deadlines they give."""

    __tablename__ = "tb_sla_clock"
    __table_args__ = (
        Index("ix_sla_clock_instance", "instance_id", "status"),
        Index("ix_sla_clock_task", "human_task_id"),
        Index("ix_sla_clock_due", "status", "due_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("tb_instance.id", ondelete="CASCADE"))
    human_task_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    scope: Mapped[str] = mapped_column(String(10))  # instance | task
    process_key: Mapped[str] = mapped_column(String(200))
    bpmn_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    name: Mapped[str] = mapped_column(String(300), default="")
    region: Mapped[str] = mapped_column(String(40), default="CN")
    unit: Mapped[str] = mapped_column(String(10))  # workday | day | hour | fixed
    statutory: Mapped[float | None] = mapped_column(Float, nullable=True)
    promised: Mapped[float | None] = mapped_column(Float, nullable=True)
    warn: Mapped[float | None] = mapped_column(Float, nullable=True)  # fraction of the limit
    warn_before: Mapped[float | None] = mapped_column(Float, nullable=True)  # units before the deadline
    approver_group: Mapped[str] = mapped_column(String(100), default="leader")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    start_day: Mapped[date] = mapped_column(Date)
    base_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)  # unit fixed
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    pause_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    pause_source: Mapped[str | None] = mapped_column(String(200), nullable=True)
    paused_units: Mapped[float] = mapped_column(Float, default=0)  # workdays | days | seconds
    extended: Mapped[float] = mapped_column(Float, default=0)  # in the clock's unit (days for fixed)
    epoch: Mapped[int] = mapped_column(Integer, default=0)  # +1 per approved extension
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    statutory_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    warn_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    provisional: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(10), default="running")  # running | paused | stopped
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    department_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    raised_department_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    chain: Mapped[list] = mapped_column(JSON, default=list)


class SlaPause(Base):
    """A period in which an instance's clocks stood still (补正, expert review, hearing, ...)."""

    __tablename__ = "tb_sla_pause"
    __table_args__ = (Index("ix_sla_pause_instance", "instance_id", "ended_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("tb_instance.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(200))  # manual | element:<bpmn id>
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    paused_by: Mapped[str] = mapped_column(String(100))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resumed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)


class SlaExtension(Base):
    """A request to extend a limit (延期): by the handler, decided by the approver group."""

    __tablename__ = "tb_sla_extension"
    __table_args__ = (Index("ix_sla_extension_clock", "clock_id", "status"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    clock_id: Mapped[int] = mapped_column(ForeignKey("tb_sla_clock.id", ondelete="CASCADE"))
    instance_id: Mapped[int] = mapped_column(BigId)
    human_task_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    days: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(500))
    requested_by: Mapped[str] = mapped_column(String(100))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    approver_group: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(10), default="pending")  # pending | approved | refused
    decided_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decision_note: Mapped[str | None] = mapped_column(String(500), nullable=True)


class SlaEvent(Base):
    """The escalation log: one row per action fired at an SLA point."""

    __tablename__ = "tb_sla_event"
    __table_args__ = (Index("ix_sla_event_at", "at"), Index("ix_sla_event_instance", "instance_id"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    job_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    clock_id: Mapped[int] = mapped_column(BigId)
    instance_id: Mapped[int] = mapped_column(BigId)
    human_task_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    point: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(20))
    target: Mapped[str | None] = mapped_column(String(200), nullable=True)
    outcome: Mapped[str] = mapped_column(String(20))  # done | skipped
    detail: Mapped[dict] = mapped_column(JSON, default=dict)


class SupervisionCard(Base):
    """A yellow or red card for 电子监察: one per SLA point that fired."""

    __tablename__ = "tb_supervision_card"
    __table_args__ = (Index("ix_supervision_card_issued", "issued_at"),
                      Index("ix_supervision_card_department", "department_id", "color"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    color: Mapped[str] = mapped_column(String(10))  # yellow | red
    clock_id: Mapped[int] = mapped_column(BigId)
    instance_id: Mapped[int] = mapped_column(BigId)
    human_task_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    scope: Mapped[str] = mapped_column(String(10))
    process_key: Mapped[str] = mapped_column(String(200))
    bpmn_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    name: Mapped[str] = mapped_column(String(300), default="")
    point: Mapped[str] = mapped_column(String(40))
    department_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    holder: Mapped[str | None] = mapped_column(String(300), nullable=True)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)


class Notice(Base):
    """An in-app notice (通知, 催办) to one user; mailed when the user has an address and SMTP is set."""

    __tablename__ = "tb_notice"
    __table_args__ = (Index("ix_notice_user", "user_name", "read_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))  # notify | remind | reassign | raise | decide
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    instance_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    human_task_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    email: Mapped[str | None] = mapped_column(String(300), nullable=True)
    email_status: Mapped[str] = mapped_column(String(10), default="none")  # none | pending | sent
    emailed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)


class NotifyAddress(Base):
    """Where a user's notices are mailed."""

    __tablename__ = "tb_notify_address"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_name: Mapped[str] = mapped_column(String(100), unique=True)
    email: Mapped[str] = mapped_column(String(300))


class TaskPulled(Base):
    """The declared fields pulled for one human task (only those), written when the pull succeeds and
    merged into the task's workflow data when the task is completed. Keeping them beside the task,
    not in the workflow state, makes applying a pull a small transaction that never contends with
    the instance's row version; it is also the record of what the clerk was shown."""

    __tablename__ = "tb_task_pulled"
    __table_args__ = (Index("ix_task_pulled_instance", "instance_id"),)
    human_task_id: Mapped[int] = mapped_column(ForeignKey("tb_human_task.id", ondelete="CASCADE"), primary_key=True)
    instance_id: Mapped[int] = mapped_column(BigId)
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class Opinion(Base):
    """A typed approval opinion (审批意见) or record of a Chinese approval action on a task:
    approve, reject, return, transfer, delegate, answer, add_sign, remove_sign, withdraw, urge, cc, ..."""

    __tablename__ = "tb_opinion"
    __table_args__ = (Index("ix_opinion_instance", "instance_id", "id"), Index("ix_opinion_task", "human_task_id", "kind"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("tb_instance.id", ondelete="CASCADE"))
    human_task_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    bpmn_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    actor: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(30))
    decision: Mapped[str | None] = mapped_column(String(100), nullable=True)
    text: Mapped[str] = mapped_column(Text, default="")
    target: Mapped[str | None] = mapped_column(String(300), nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class Phrase(Base):
    """A user's common opinion phrase (常用语)."""

    __tablename__ = "tb_phrase"
    __table_args__ = (UniqueConstraint("user_name", "text", name="uq_phrase_user_text"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_name: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TaskSign(Base):
    """A temporary holder of a task: an added signer (加签, before or after the owner) or a delegate
    (委派). The active one holds the task; when the last one answers it goes back to the owner."""

    __tablename__ = "tb_task_sign"
    __table_args__ = (Index("ix_task_sign_task", "human_task_id", "status"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    human_task_id: Mapped[int] = mapped_column(ForeignKey("tb_human_task.id", ondelete="CASCADE"))
    instance_id: Mapped[int] = mapped_column(BigId)
    user_name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(10))  # before | after | delegate
    position: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(10))  # pending | active | done | removed
    owner: Mapped[str] = mapped_column(String(100))
    added_by: Mapped[str] = mapped_column(String(100))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decision: Mapped[str | None] = mapped_column(String(100), nullable=True)
    opinion: Mapped[str | None] = mapped_column(Text, nullable=True)
    payload: Mapped[dict] = mapped_column(JSON, default=dict)  # the owner's held completion (kind after)


class CarbonCopy(Base):
    """A read-only copy (抄送) of a task in a user's "to read" list, with its read receipt."""

    __tablename__ = "tb_cc"
    __table_args__ = (Index("ix_cc_user", "user_name", "read_at"), Index("ix_cc_instance", "instance_id"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("tb_instance.id", ondelete="CASCADE"))
    human_task_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    user_name: Mapped[str] = mapped_column(String(100))
    sent_by: Mapped[str] = mapped_column(String(100))
    note: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class DepartmentChain(Base):
    """The escalation chain of a department: used for tasks of that department's groups (and of
    the departments under it) when neither the task nor the process declares a chain."""

    __tablename__ = "tb_department_chain"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("tb_department.id", ondelete="CASCADE"), unique=True)
    chain: Mapped[list] = mapped_column(JSON, default=list)
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Licence(Base):
    """An electronic licence (电子证照, after GB/T 36903) issued by a ``tb:licence`` service task.
    One per (instance, task); the serial of its number counts per prefix and year."""

    __tablename__ = "tb_licence"
    __table_args__ = (
        UniqueConstraint("instance_id", "task_ref", name="uq_licence_task"),
        UniqueConstraint("prefix", "serial_year", "serial", name="uq_licence_serial"),
        Index("ix_licence_instance", "instance_id"),
        Index("ix_licence_holder_code", "holder_code"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    licence_no: Mapped[str] = mapped_column(String(40), unique=True)
    licence_id: Mapped[str] = mapped_column(String(200))  # 证照标识: type code . issuer code . number
    name: Mapped[str] = mapped_column(String(200))
    type_code: Mapped[str] = mapped_column(String(40))
    prefix: Mapped[str] = mapped_column(String(20))
    serial_year: Mapped[int] = mapped_column(Integer)
    serial: Mapped[int] = mapped_column(Integer)
    holder: Mapped[str] = mapped_column(String(300))
    holder_code: Mapped[str] = mapped_column(String(100))
    holder_code_type: Mapped[str] = mapped_column(String(20), default="")
    issuer: Mapped[str] = mapped_column(String(200))
    issuer_code: Mapped[str] = mapped_column(String(60))
    jurisdiction: Mapped[str] = mapped_column(String(20))
    address: Mapped[str | None] = mapped_column(String(500), nullable=True)
    items: Mapped[list] = mapped_column(JSON, default=list)
    issued_on: Mapped[date] = mapped_column(Date)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date, nullable=True)  # None: 长期
    status: Mapped[str] = mapped_column(String(10))  # valid | revoked
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoke_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    verify_code: Mapped[str] = mapped_column(String(32))
    instance_id: Mapped[int] = mapped_column(BigId)  # no foreign key: the licence outlives the case record
    task_ref: Mapped[str] = mapped_column(String(200))  # the BPMN id of the issuing task
