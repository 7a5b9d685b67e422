"""In-app notices and their e-mail copies.

A notice is a row (``tb_notice``) written in the transaction of the escalation that caused it,
so it exists exactly once. Its e-mail copy is an outbox job (kind ``email``) sent by the worker
through SMTP; SMTP is not transactional, so a worker killed between the send and the commit
sends that mail again on retry — every copy carries the same ``Message-ID``
(``<tongban-notice-ID@HOST>``) so mail systems and readers can tell.

SMTP settings: ``TONGBAN_SMTP_HOST`` (required), ``TONGBAN_SMTP_PORT`` (25),
``TONGBAN_SMTP_FROM`` (``tongban@localhost``), ``TONGBAN_SMTP_USER`` / ``TONGBAN_SMTP_PASSWORD``,
``TONGBAN_SMTP_STARTTLS`` (``1`` to use STARTTLS); or a ``tb_connector_config`` row named ``smtp``
(config ``host``, ``port``, ``from``, ``starttls``; secrets ``user``, ``password``). The environment wins.
"""

from __future__ import annotations

import os
import smtplib
import socket
from email.message import EmailMessage

from sqlalchemy import select

from .models import ConnectorConfig, Job, Notice, NotifyAddress


def smtp_settings(session) -> dict | None:
    if os.environ.get("TONGBAN_SMTP_HOST"):
        return {"host": os.environ["TONGBAN_SMTP_HOST"], "port": int(os.environ.get("TONGBAN_SMTP_PORT", "25")),
                "from": os.environ.get("TONGBAN_SMTP_FROM", "tongban@localhost"),
                "user": os.environ.get("TONGBAN_SMTP_USER") or None,
                "password": os.environ.get("TONGBAN_SMTP_PASSWORD") or None,
                "starttls": os.environ.get("TONGBAN_SMTP_STARTTLS") == "1"}
    cfg = session.scalars(select(ConnectorConfig).where(ConnectorConfig.name == "smtp")).first()
    if cfg is None or not (cfg.config or {}).get("host"):
        return None
    c, sec = cfg.config or {}, cfg.secrets or {}
    return {"host": c["host"], "port": int(c.get("port", 25)), "from": c.get("from", "tongban@localhost"),
            "user": sec.get("user"), "password": sec.get("password"), "starttls": bool(c.get("starttls"))}


def notice(session, *, user: str, kind: str, title: str, body: str, instance_id, task_id, now,
           dedupe_key: str, settings: dict | None) -> Notice:
    n = Notice(user_name=user, kind=kind, title=title[:300], body=body, instance_id=instance_id,
               human_task_id=task_id, created_at=now, email_status="none", dedupe_key=dedupe_key[:200])
    session.add(n)
    session.flush()
    if settings is not None:
        addr = session.scalar(select(NotifyAddress.email).where(NotifyAddress.user_name == user))
        if addr:
            n.email, n.email_status = addr, "pending"
            session.add(Job(kind="email", due_at=now, instance_id=instance_id, task_ref=f"notice:{n.id}",
                            payload={"notice_id": n.id}, created_at=now, dedupe_key=f"email:{n.id}"))
    return n


def message_id(notice_id: int) -> str:
    return f"<tongban-notice-{notice_id}@{socket.gethostname() or 'tongban'}>"


def send(settings: dict, to: str, subject: str, body: str, msg_id: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = settings["from"], to, subject, msg_id
    msg.set_content(body)
    with smtplib.SMTP(settings["host"], settings["port"], timeout=15) as smtp:
        if settings.get("starttls"):
            smtp.starttls()
        if settings.get("user"):
            smtp.login(settings["user"], settings.get("password") or "")
        smtp.send_message(msg)


def email_job(engine, session, job: Job) -> None:
    """The worker's handler for ``email`` jobs: send the notice's copy, mark it sent."""
    n = session.get(Notice, (job.payload or {}).get("notice_id"))
    if n is None or n.email_status == "sent" or not n.email:
        return
    settings = smtp_settings(session)
    if settings is None:
        raise RuntimeError("SMTP is not configured (TONGBAN_SMTP_HOST or a connector config named smtp)")
    send(settings, n.email, n.title, n.body, message_id(n.id))
    n.email_status, n.emailed_at = "sent", engine.clock.now()
