"""Legal clocks (法定时限 / 承诺时限) of instances and human tasks, counted as 行政许可法 counts.

A clock starts on the day of acceptance and counts from the next day; working days come from
the loaded calendar (weekends and legal holidays off, 调休 working weekends on). Pauses (补正,
expert review, hearing, ...) are not counted: a pause from day P to day R adds the working days
after P up to R (the clock restarts the day after R). Approved extensions add to the limit.

Each clock has a warning point (yellow: default 80% of the limit, or N units before the
deadline), a deadline (red) and an escalation chain; every point of the chain is a row in
``tb_job`` (kind ``sla``) whose dedupe key names the clock, the extension epoch and the point,
so it fires once. ``reconcile`` keeps those rows in step with the clock: it moves pending ones,
holds them while the clock is paused and cancels them when the clock stops.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from . import audit
from .calendar import DEFAULT, NATIONAL, Calendar
from .models import Department, DepartmentChain, Group, HumanTask, Job, SlaClock, SlaPause

LOCAL = ZoneInfo("Asia/Shanghai")
UNITS = ("workday", "day", "hour")
DEFAULT_WARN = 0.8
DEFAULT_APPROVER = "leader"
# no chain declared: the clock still says green/yellow/red, but nothing is scheduled
DEFAULT_CHAIN: list[dict] = []
ACTIONS = ("notify", "remind", "reassign", "raise", "auto_decide", "card")
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")
_POINT = re.compile(r"^(yellow|warn|due|statutory)(?:([+-]\d+(?:\.\d+)?)(wd|d|h))?$")
_UNIT_ALIASES = {"workday": "workday", "workdays": "workday", "wd": "workday", "工作日": "workday",
                 "day": "day", "days": "day", "d": "day", "自然日": "day",
                 "hour": "hour", "hours": "hour", "h": "hour", "小时": "hour"}


def _duration(text: str) -> timedelta | None:
    m = _DURATION.match(text.strip())
    if not m or not any(m.groups()):
        return None
    d, h, mi, s = (int(x or 0) for x in m.groups())
    return timedelta(days=d, hours=h, minutes=mi, seconds=s)


def _fixed_due(entry: dict, now: datetime, data: dict) -> datetime | None:
    """``camunda:dueDate``: an ISO duration or date, or ``${var}`` naming either."""
    text = entry.get("due")
    if not text:
        return None
    if text.startswith("${") and text.endswith("}"):
        text = str(data.get(text[2:-1].strip()) or "")
    span = _duration(text) if text else None
    if span is not None:
        return now + span
    if text:
        try:
            due = datetime.fromisoformat(text)
        except ValueError:
            return None
        return due if due.tzinfo is not None else due.replace(tzinfo=LOCAL)
    return None


def due_times(entry: dict, now: datetime, data: dict,
              calendar: Calendar | None = None) -> tuple[datetime | None, datetime | None]:
    """(due, warn) of a task as declared, without pauses or extensions (what a new clock gives)."""
    c = new_clock(entry.get("sla"), entry, now, data)
    if c is None:
        return None, None
    compute(c, calendar or DEFAULT)
    return c.due_at, c.warn_at


def declaration_problem(attrs: dict) -> str | None:
    """What is wrong with a ``tb:sla`` declaration, in words (None: nothing): a unit the clock does not
    know, a limit that is not a positive number, a promise beyond the statutory limit."""
    unit = (attrs.get("unit") or "workday").strip().lower()
    if unit not in _UNIT_ALIASES:
        return f"unit='{attrs.get('unit')}' is not a unit of time limits: use workday, day or hour"
    numbers = {}
    for key in ("limit", "statutory", "promised", "warnBefore"):
        text = attrs.get(key)
        if text is None or not str(text).strip():
            continue
        value = _num(text)
        if value is None or value <= 0:
            return f"{key}='{text}' must be a positive number of {_UNIT_ALIASES[unit]}s"
        numbers[key] = value
    statutory = numbers.get("statutory", numbers.get("limit"))
    if statutory is not None and numbers.get("promised", 0) > statutory:
        return (f"promised={attrs.get('promised')} is beyond the statutory limit of {statutory:g}: a promised "
                "limit may only shorten the statutory one")
    warn = (attrs.get("warn") or "").strip()
    if warn and _num(re.sub(r"(wd|d|h)$", "", warn)) is None:
        return f"warn='{warn}' is not understood: use a share of the limit (0.8) or units before it (2wd, 1d, 4h)"
    return None


def _num(value) -> float | None:
    if value in (None, ""):
        return None
    try:
        n = float(value)
    except (TypeError, ValueError):
        return None
    return n if n >= 0 and math.isfinite(n) else None


def new_clock(sla: dict | None, entry: dict | None, now: datetime, data: dict | None = None) -> SlaClock | None:
    """An unsaved clock from a ``tb:sla`` declaration (statutory/promised/limit) or a dueDate."""
    sla = sla or {}
    statutory = _num(sla.get("statutory"))
    promised = _num(sla.get("promised"))
    limit = _num(sla.get("limit"))
    if statutory is None and limit is not None:
        statutory = limit
    promised = promised_from(sla, data, statutory, promised)
    base_due = None
    unit = _UNIT_ALIASES.get((sla.get("unit") or "workday").strip().lower(), "workday")
    if statutory is None and promised is None:
        base_due = _fixed_due(entry or {}, now, data or {})
        if base_due is None:
            return None
        unit = "fixed"
    warn_text = (sla.get("warn") or "").strip()
    warn_before = _num(sla.get("warnBefore"))
    warn = DEFAULT_WARN
    if warn_text.endswith(("wd", "d", "h")) and warn_before is None:
        warn_before = _num(re.sub(r"[a-z]+$", "", warn_text))  # warn="3wd": three units before
    elif warn_text:
        w = _num(warn_text)
        if w is not None and 0 < w <= 1:
            warn = w
        elif w is not None and w > 1:
            warn_before = w
    return SlaClock(
        unit=unit, statutory=statutory, promised=promised, warn=warn, warn_before=warn_before,
        region=sla.get("region") or NATIONAL, approver_group=sla.get("approver") or DEFAULT_APPROVER,
        started_at=now, start_day=now.astimezone(LOCAL).date(), base_due_at=base_due,
        paused_units=0.0, extended=0.0, epoch=0, status="running", provisional=False, chain=[], name="")


def promised_from(sla: dict, data: dict | None, statutory: float | None, default: float | None) -> float | None:
    """``promisedFrom="field"``: the promised limit of this case, a positive number in its data (e.g.
    set by the routing rules: 7 working days for a small shop, 14 with a fire check), never beyond
    the statutory limit; ``default`` (the declared ``promised``) while the field has no such number."""
    source = (sla or {}).get("promisedFrom")
    value = _num((data or {}).get(source)) if source else None
    if value is None or value <= 0:
        return default
    return min(value, statutory) if statutory is not None else value


# ---- arithmetic ---------------------------------------------------------------------------
def eod(day: date) -> datetime:
    """The last second of a local day, in UTC: a deadline on day D is missed at midnight after D."""
    return datetime.combine(day, time(23, 59, 59), LOCAL).astimezone(UTC)


def _local_day(when: datetime) -> date:
    return when.astimezone(LOCAL).date()


def shift_workdays(cal: Calendar, day: date, n: int, region: str) -> date:
    if n >= 0:
        return cal.add_workdays(day, n, region)
    counted = 0
    while counted < -n:
        day -= timedelta(days=1)
        if cal.is_workday(day, region):
            counted += 1
    return day


def workdays_between(cal: Calendar, after: date, through: date, region: str) -> int:
    """Working days d with after < d <= through."""
    n, day = 0, after
    while day < through:
        day += timedelta(days=1)
        if cal.is_workday(day, region):
            n += 1
    return n


def effective_limit(c: SlaClock) -> float | None:
    return c.promised if c.promised is not None else c.statutory


def _end(c: SlaClock, cal: Calendar, n: float) -> datetime:
    """The moment ``n`` units after the start, with pauses and extensions."""
    if c.unit == "workday":
        return eod(cal.add_workdays(c.start_day, math.ceil(n + c.paused_units + c.extended - 1e-9), c.region))
    if c.unit == "day":
        return eod(c.start_day + timedelta(days=math.ceil(n + c.paused_units + c.extended - 1e-9)))
    if c.unit == "hour":
        return c.started_at + timedelta(hours=n + c.extended, seconds=c.paused_units)
    return c.base_due_at + timedelta(seconds=c.paused_units, days=c.extended)  # fixed


def compute(c: SlaClock, cal: Calendar) -> SlaClock:
    """Set due_at (promised limit, else statutory), statutory_due_at, warn_at and provisional."""
    limit = effective_limit(c)
    if c.unit == "fixed":
        c.due_at = _end(c, cal, 0)
        c.statutory_due_at = c.due_at
        base = c.base_due_at - c.started_at
        if c.warn_before is not None:
            c.warn_at = c.due_at - timedelta(days=c.warn_before)
        else:
            c.warn_at = c.started_at + base * (c.warn or DEFAULT_WARN) + timedelta(seconds=c.paused_units)
        c.provisional = False
        return c
    c.due_at = _end(c, cal, limit)
    c.statutory_due_at = _end(c, cal, c.statutory) if c.statutory is not None else c.due_at
    if c.warn_before is not None:
        k = max(0.0, limit - c.warn_before)
    else:
        k = limit * (c.warn or DEFAULT_WARN)
        k = math.floor(k + 1e-9) if c.unit in ("workday", "day") else k
    c.warn_at = min(_end(c, cal, k), c.due_at)
    c.provisional = False
    if c.unit == "workday":
        last = _local_day(max(c.due_at, c.statutory_due_at))
        c.provisional = any(cal.year_status(y, c.region) == "missing" for y in range(c.start_day.year, last.year + 1))
    return c


def point_time(c: SlaClock, at: str, cal: Calendar) -> datetime | None:
    """When a chain point is reached: yellow, due, statutory, optionally ±N wd|d|h (e.g. due+2wd)."""
    m = _POINT.match(at.replace(" ", ""))
    if not m:
        return None
    base = {"yellow": c.warn_at, "warn": c.warn_at, "due": c.due_at,
            "statutory": c.statutory_due_at or c.due_at}[m.group(1)]
    if base is None or not m.group(2):
        return base
    k = float(m.group(2))
    if m.group(3) == "wd":
        return eod(shift_workdays(cal, _local_day(base), int(k), c.region))
    if m.group(3) == "d":
        return base + timedelta(days=k)
    return base + timedelta(hours=k)


def valid_point(at: str) -> bool:
    return bool(_POINT.match((at or "").replace(" ", "")))


def state(c: SlaClock, now: datetime) -> str:
    """green (正常) | yellow (预警) | red (超期), as of now (or when the clock paused or stopped)."""
    ref = c.paused_at if c.status == "paused" and c.paused_at else c.ended_at if c.status == "stopped" else now
    ref = ref or now
    if c.due_at is not None and ref > c.due_at:
        return "red"
    if c.warn_at is not None and ref > c.warn_at:
        return "yellow"
    return "green"


STATE_NAMES = {"green": "正常", "yellow": "预警", "red": "超期"}


# ---- the clock's jobs ----------------------------------------------------------------------
def job_ref(c: SlaClock) -> str:
    return f"clock:{c.id}"


def job_key(c: SlaClock, point: str) -> str:
    return f"sla:{c.id}:{c.epoch}:{point}"[:200]


def wanted_points(c: SlaClock, cal: Calendar) -> dict[str, datetime]:
    out = {}
    for step in c.chain or []:
        when = point_time(c, step["at"], cal)
        if when is not None:
            out[step["at"]] = when + timedelta(seconds=1)  # reached when the moment has passed
    return out


def reconcile(session, c: SlaClock, cal: Calendar, now: datetime) -> None:
    """Make the clock's pending jobs match its points: move, hold (paused), cancel (stopped)."""
    session.flush()
    wanted = wanted_points(c, cal) if c.status != "stopped" else {}
    keys = {job_key(c, p): (p, when) for p, when in wanted.items()}
    firing = session.info.get("tb_firing_job")
    rows = session.execute(select(Job.id, Job.status, Job.due_at, Job.dedupe_key).where(
        Job.instance_id == c.instance_id, Job.kind == "sla", Job.task_ref == job_ref(c))).all()
    seen = set()
    for job_id, status, due_at, key in rows:
        if job_id == firing:
            seen.add(key)
            continue
        live = status in ("pending", "held")
        if key in keys:
            seen.add(key)
            if not live:
                continue  # fired (or failed) already: once per point and epoch
            target = "held" if c.status == "paused" else "pending"
            when = keys[key][1]
            if status != target or due_at != when:
                # guarded by the status: a job a worker fired meanwhile stays fired; clearing the
                # lease makes a worker that claimed it at the old time skip it
                session.execute(update(Job).where(Job.id == job_id, Job.status.in_(("pending", "held")))
                                .values(status=target, due_at=when, locked_by=None, locked_until=None))
        elif live:
            session.execute(update(Job).where(Job.id == job_id, Job.status.in_(("pending", "held")))
                            .values(status="cancelled", locked_by=None, locked_until=None))
    for key, (point, when) in keys.items():
        if key in seen:
            continue
        session.add(Job(kind="sla", status="held" if c.status == "paused" else "pending", due_at=when,
                        instance_id=c.instance_id, task_ref=job_ref(c),
                        payload={"clock_id": c.id, "point": point, "epoch": c.epoch},
                        created_at=now, dedupe_key=key))


def refresh(session, c: SlaClock, cal: Calendar, now: datetime) -> None:
    """Recompute the deadlines, mirror them on the human task, and reconcile the jobs."""
    compute(c, cal)
    if c.human_task_id is not None:
        session.execute(update(HumanTask).where(HumanTask.id == c.human_task_id)
                        .values(due_at=c.due_at, warn_at=c.warn_at))
    reconcile(session, c, cal, now)


def stop(session, c: SlaClock, now: datetime, reason: str, cal: Calendar) -> None:
    if c.status == "stopped":
        return
    if c.status == "paused":
        _account_pause(c, now, cal)
    c.status, c.ended_at, c.end_reason = "stopped", now, reason
    reconcile(session, c, cal, now)


def _account_pause(c: SlaClock, now: datetime, cal: Calendar) -> None:
    if c.paused_at is None:
        return
    if c.unit == "workday":
        c.paused_units += workdays_between(cal, _local_day(c.paused_at), _local_day(now), c.region)
    elif c.unit == "day":
        c.paused_units += (_local_day(now) - _local_day(c.paused_at)).days
    else:
        c.paused_units += (now - c.paused_at).total_seconds()
    c.paused_at = None


def pause(session, c: SlaClock, now: datetime, reason: str, source: str, cal: Calendar) -> bool:
    if c.status != "running":
        return False
    c.status, c.paused_at, c.pause_reason, c.pause_source = "paused", now, reason[:200], source[:200]
    reconcile(session, c, cal, now)
    return True


def resume(session, c: SlaClock, now: datetime, cal: Calendar) -> bool:
    if c.status != "paused":
        return False
    _account_pause(c, now, cal)
    c.status, c.pause_reason, c.pause_source = "running", None, None
    refresh(session, c, cal, now)
    return True


def department_of_groups(session, groups) -> int | None:
    if not groups:
        return None
    rows = dict(session.execute(select(Group.name, Group.department_id).where(
        Group.name.in_(list(groups)), Group.department_id.is_not(None))).all())
    return next((rows[g] for g in groups if g in rows), None)


def department_chain(session, department_id: int | None) -> list[dict] | None:
    """The chain of the department, else of the nearest department above it that has one."""
    if department_id is None:
        return None
    chains = dict(session.execute(select(DepartmentChain.department_id, DepartmentChain.chain)).all())
    if not chains:
        return None
    parents = dict(session.execute(select(Department.id, Department.parent_id)).all())
    seen = set()
    while department_id is not None and department_id not in seen:
        if department_id in chains:
            return chains[department_id]
        seen.add(department_id)
        department_id = parents.get(department_id)
    return None


# ---- hooks called by the runtime inside the step transaction -------------------------------
def task_opened(runtime, session, row, h: HumanTask, entry: dict, manifest: dict, now: datetime, data) -> None:
    if not entry.get("sla") and not entry.get("due"):
        return
    c = new_clock(entry.get("sla"), entry, now, data)
    if c is None:
        return
    cal = runtime.calendar_provider() or DEFAULT
    c.instance_id, c.human_task_id, c.scope = row.id, h.id, "task"
    c.process_key, c.bpmn_id, c.name = row.process_key, h.bpmn_id, h.name or h.bpmn_id
    c.department_id = department_of_groups(session, h.candidate_groups)
    c.chain = (entry.get("escalations") or manifest.get("task_chain")
               or department_chain(session, c.department_id) or DEFAULT_CHAIN)
    paused = session.scalars(select(SlaPause).where(SlaPause.instance_id == row.id,
                                                    SlaPause.ended_at.is_(None)).limit(1)).first()
    session.add(c)
    session.flush()
    compute(c, cal)
    h.due_at, h.warn_at = c.due_at, c.warn_at
    if paused is not None and not paused.source.startswith("element:"):
        # an explicit pause (expert review, hearing) stops every clock of the case
        c.status, c.paused_at, c.pause_reason, c.pause_source = "paused", now, paused.reason, paused.source
    reconcile(session, c, cal, now)


def task_closed(runtime, session, h: HumanTask, now: datetime, reason: str) -> None:
    if h.due_at is None:
        return  # no deadline, no clock
    cal = runtime.calendar_provider() or DEFAULT
    for c in session.scalars(select(SlaClock).where(SlaClock.human_task_id == h.id,
                                                    SlaClock.status != "stopped")):
        stop(session, c, now, reason, cal)


def _follow_promise(runtime, session, row, sla: dict, now: datetime, cal: Calendar) -> None:
    """The case clock follows ``promisedFrom`` when the data changes it: new deadlines, its points
    planned again in a new epoch (a warning already sent for the old limit may come again for the new
    one), and an audit event."""
    if _num((row.data or {}).get(sla["promisedFrom"])) is None:
        return
    c = session.scalars(select(SlaClock).where(SlaClock.instance_id == row.id, SlaClock.scope == "instance",
                                               SlaClock.status != "stopped")).first()
    if c is None:
        return
    value = promised_from(sla, row.data, c.statutory, c.promised)
    if value == c.promised:
        return
    before, c.promised = c.promised, value
    c.epoch += 1
    refresh(session, c, cal, now)
    audit.append(session, runtime.clock, "system", "sla.promised", instance_id=row.id,
                 detail={"from": before, "to": value, "field": sla["promisedFrom"], "due_at": c.due_at})


def instance_saved(runtime, session, row, wf, manifest: dict, now: datetime, new: bool) -> None:
    """Open the instance clock at start, follow the elements that stop the clock, stop it at the end."""
    if not manifest.get("sla") and not manifest.get("pauses"):
        return
    cal = runtime.calendar_provider() or DEFAULT
    if new and manifest.get("sla"):
        c = new_clock(manifest["sla"], None, now, row.data)
        if c is not None:
            c.instance_id, c.scope, c.process_key = row.id, "instance", row.process_key
            c.name = manifest.get("name") or row.process_key
            c.chain = manifest.get("instance_chain") or DEFAULT_CHAIN
            session.add(c)
            session.flush()
            compute(c, cal)
            reconcile(session, c, cal, now)
    elif row.status == "running" and (manifest.get("sla") or {}).get("promisedFrom"):
        _follow_promise(runtime, session, row, manifest["sla"], now, cal)
    if row.status != "running":
        for c in session.scalars(select(SlaClock).where(SlaClock.instance_id == row.id,
                                                        SlaClock.status != "stopped")):
            stop(session, c, now, row.status, cal)
        session.execute(update(SlaPause).where(SlaPause.instance_id == row.id, SlaPause.ended_at.is_(None))
                        .values(ended_at=now, resumed_by="system"))
        return
    pauses = manifest.get("pauses") or {}
    if pauses:
        from SpiffWorkflow.util.task import TaskState

        active = {}
        for t in wf.get_tasks(state=TaskState.READY | TaskState.WAITING | TaskState.STARTED):
            bpmn_id = getattr(t.task_spec, "bpmn_id", None)
            if bpmn_id in pauses:
                active[f"element:{bpmn_id}"] = pauses[bpmn_id]
        open_rows = {p.source: p for p in session.scalars(select(SlaPause).where(
            SlaPause.instance_id == row.id, SlaPause.ended_at.is_(None)))}
        for source, reason in active.items():
            if source not in open_rows:
                start_pause(session, row.id, reason, source, "system", now, cal)
        for source, p in open_rows.items():
            if source.startswith("element:") and source not in active:
                end_pause(session, p, "system", now, cal)


def start_pause(session, instance_id: int, reason: str, source: str, actor: str, now: datetime,
                cal: Calendar) -> SlaPause:
    p = SlaPause(instance_id=instance_id, reason=reason[:200], source=source[:200], started_at=now, paused_by=actor)
    session.add(p)
    for c in session.scalars(select(SlaClock).where(SlaClock.instance_id == instance_id,
                                                    SlaClock.status == "running").with_for_update()):
        pause(session, c, now, reason, source, cal)
    session.flush()
    return p


def end_pause(session, p: SlaPause, actor: str, now: datetime, cal: Calendar) -> list[SlaClock]:
    p.ended_at, p.resumed_by = now, actor
    resumed = []
    for c in session.scalars(select(SlaClock).where(SlaClock.instance_id == p.instance_id,
                                                    SlaClock.status == "paused",
                                                    SlaClock.pause_source == p.source).with_for_update()):
        resume(session, c, now, cal)
        resumed.append(c)
    return resumed


def clock_dict(c: SlaClock, now: datetime) -> dict:
    st = state(c, now)

    def iso(v):
        return v.isoformat() if v else None

    return {"id": c.id, "scope": c.scope, "instance_id": c.instance_id, "task_id": c.human_task_id,
            "process_key": c.process_key, "bpmn_id": c.bpmn_id, "name": c.name, "unit": c.unit,
            "statutory": c.statutory, "promised": c.promised, "warn": c.warn, "warn_before": c.warn_before,
            "started_at": iso(c.started_at), "start_day": c.start_day.isoformat(), "due_at": iso(c.due_at),
            "statutory_due_at": iso(c.statutory_due_at), "warn_at": iso(c.warn_at),
            "provisional": bool(c.provisional), "status": c.status, "state": st, "state_name": STATE_NAMES[st],
            "paused_at": iso(c.paused_at), "pause_reason": c.pause_reason, "paused_units": c.paused_units,
            "extended": c.extended, "epoch": c.epoch, "ended_at": iso(c.ended_at), "end_reason": c.end_reason,
            "statutory_overdue": bool(c.statutory_due_at and (c.ended_at or c.paused_at or now) > c.statutory_due_at),
            "department_id": c.department_id, "approver_group": c.approver_group,
            "chain": list(c.chain or [])}
