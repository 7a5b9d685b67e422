"""Electronic licences (电子证照) issued and revoked by BPMN service tasks, inside the engine.

A service task that declares ``<tb:licence action="issue" .../>`` writes one licence record for
its instance, modelled on GB/T 36903 (电子证照): a licence number, a licence identifier
(证照标识), holder, issuer, the permits it covers, validity and a random verification code that
a QR code on the printed licence carries to the public verification page. ``action="revoke"``
marks every valid licence of the instance revoked. No connector and no HTTP call is involved:
the job machinery of ``engine.pulls`` runs the task and calls ``apply`` inside the transaction
that completes it, so the record, the task data, the audit event and the workflow step commit
together or not at all.

Numbers: ``{prefix}{jurisdiction}{year}{serial:06d}`` with the serial counted per prefix and
year (of the issuing date in China). Two transactions that pick the same serial collide on a
unique constraint; the loser retries with the next one inside a savepoint. The identifier is
``{typeCode}.{issuerCode}.{licence_no}`` (证照类型代码.颁发机构代码.证照编号).
"""

from __future__ import annotations

import hmac
import re
import secrets
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from SpiffWorkflow.bpmn.parser.util import full_tag
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.spiff.parser.task_spec import ServiceTaskParser
from SpiffWorkflow.spiff.specs.defaults import ServiceTask
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from . import audit, scripts
from .bpmn_xml import BPMN_NS, TB_NS
from .errors import Invalid, NotFound, ScriptError
from .models import Licence

LOCAL = ZoneInfo("Asia/Shanghai")
OPERATION = "tongban.licence"  # the operation name a tb:licence service task carries in the parsed spec
ATTRIBUTES = ("action", "name", "typeCode", "prefix", "issuer", "issuerCode", "jurisdiction", "holder",
              "holderCode", "holderCodeType", "items", "address", "validYears", "reason")
EXPRESSIONS = ("holder", "holderCode", "items", "address", "reason")
REQUIRED = {"issue": ("name", "typeCode", "prefix", "issuer", "issuerCode", "jurisdiction", "holder", "holderCode"),
            "revoke": ()}
_CODE = re.compile(r"^[A-Za-z0-9]{1,20}$")
_NUMBER = re.compile(r"^[A-Za-z0-9]{1,40}\Z")  # licence numbers and verification codes
_ISSUER_CODE = re.compile(r"^[A-Za-z0-9]{1,40}$")
# unambiguous when printed or read aloud: no 0/O, 1/I/L
VERIFY_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
VERIFY_LENGTH = 16
DATA_FIELDS = ("licence_no", "licence_id", "licence_issued_on", "licence_valid_to", "licence_verify_code",
               "licence_status")


# ---- the declaration (read at deploy) ----------------------------------------------------------
def declaration(el) -> dict | None:
    """The ``tb:licence`` of a service task as a dict of its attributes, or None."""
    found = el.find(f"./{{http://www.omg.org/spec/BPMN/20100524/MODEL}}extensionElements/{{{TB_NS}}}licence")
    if found is None:
        return None
    out = {k: found.get(k) for k in ATTRIBUTES if found.get(k) is not None}
    out["action"] = (out.get("action") or "issue").strip()
    out["line"] = found.sourceline
    return out


def problems(decl: dict) -> list[str]:
    """What is wrong with a declaration, in words a process designer understands."""
    action = decl.get("action")
    if action not in REQUIRED:
        return [f"tb:licence action must be issue or revoke, not '{action}'"]
    out = [f"tb:licence action=\"{action}\" needs the attribute {k}" for k in REQUIRED[action]
           if not (decl.get(k) or "").strip()]
    if action == "issue":
        if decl.get("prefix") and not _CODE.match(decl["prefix"]):
            out.append("tb:licence prefix must be 1-20 letters or digits")
        if decl.get("jurisdiction") and not _CODE.match(decl["jurisdiction"]):
            out.append("tb:licence jurisdiction must be an administrative division code (letters or digits)")
        if decl.get("issuerCode") and not _ISSUER_CODE.match(decl["issuerCode"]):
            out.append("tb:licence issuerCode must be letters or digits (a unified social credit code)")
        years = (decl.get("validYears") or "").strip()
        if years and not (years.isdigit() and 1 <= int(years) <= 100):
            out.append("tb:licence validYears must be a whole number of years from 1 to 100 (leave it out for 长期)")
    for k in EXPRESSIONS:
        if (decl.get(k) or "").strip():
            for _line, msg in scripts.check_expression(decl[k]):
                out.append(f"tb:licence {k}=\"{decl[k]}\" is not a valid expression: {msg}")
    return out


def produced_fields(decl: dict) -> set[str]:
    """The task-data fields a licence task writes (for the flow check)."""
    if decl.get("action") == "revoke":
        return {"licence_status", "licence_revoked_on"}
    return set(DATA_FIELDS)


def as_params(decl: dict) -> dict:
    """The declaration as SpiffWorkflow service operation parameters (kept in the serialized spec,
    so a licence task in a called process, which the manifest does not list, still knows it)."""
    return {k: {"type": "str", "value": v} for k, v in decl.items() if k in ATTRIBUTES}


def from_params(params: dict) -> dict:
    return {k: (v or {}).get("value") for k, v in (params or {}).items() if k in ATTRIBUTES}


class _ServiceTaskParser(ServiceTaskParser):
    """A service task with ``tb:licence`` or with a ``tb:data`` pull needs no
    ``spiffworkflow:serviceTaskOperator``: the declaration becomes the operation (never called by
    SpiffWorkflow: the engine parks service tasks for a job)."""

    def create_task(self):
        decl = declaration(self.node)
        if decl is None:
            pull = self.node.find(f"{{{BPMN_NS}}}extensionElements/{{{TB_NS}}}data")
            if pull is not None and pull.get("connector") and pull.get("operation") \
                    and self.parse_extensions().get("serviceTaskOperator") is None:
                inputs = {i.get("name"): {"type": "str", "value": i.get("expr") or i.get("name")}
                          for i in pull.findall(f"{{{TB_NS}}}input") if i.get("name")}
                return self.spec_class(self.spec, self.bpmn_id,
                                       operation_name=f"{pull.get('connector')}.{pull.get('operation')}",
                                       operation_params=inputs, result_variable=None, **self.bpmn_attributes)
            return super().create_task()
        found = problems(decl)
        if self.parse_extensions().get("serviceTaskOperator") is not None:
            found.insert(0, "a service task either issues or revokes a licence (tb:licence) or calls a "
                            "connector, not both")
        if found:
            raise ValidationException(found[0], node=self.node, file_name=self.filename)
        return self.spec_class(self.spec, self.bpmn_id, operation_name=OPERATION, operation_params=as_params(decl),
                               result_variable=None, **self.bpmn_attributes)


class LicenceAwareParser(SpiffBpmnParser):
    """SpiffWorkflow's parser, extended through its tag map so service tasks may carry tb:licence."""

    OVERRIDE_PARSER_CLASSES = {**SpiffBpmnParser.OVERRIDE_PARSER_CLASSES,
                               full_tag("serviceTask"): (_ServiceTaskParser, ServiceTask)}


# ---- issuing and revoking (inside the job's apply transaction) ----------------------------------
def apply(session, engine, instance_id: int, task, entry: dict, actor: str = "system") -> dict:
    """Issue or revoke as the task's declaration says; returns the fields to put into the task data.

    Raises ScriptError when an expression fails and Invalid when the holder or its code is empty:
    the job fails without retries and becomes an incident; nothing is written."""
    decl = entry["licence"]
    bpmn_id = entry.get("id") or getattr(task.task_spec, "bpmn_id", None) or task.task_spec.name
    data = dict(task.data)
    if decl.get("action") == "revoke":
        reason = _evaluate(engine, decl, "reason", data, bpmn_id)
        return revoke(session, engine, instance_id, bpmn_id, "" if reason is None else str(reason), actor)
    return issue(session, engine, instance_id, bpmn_id, decl, data, actor)


def _evaluate(engine, decl: dict, key: str, data: dict, bpmn_id: str):
    expr = (decl.get(key) or "").strip()
    if not expr:
        return None
    try:
        return engine.runtime._script_engine.environment.evaluate(expr, data)
    except Exception as exc:  # noqa: BLE001 - any failure is the designer's to see, on the incident
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ScriptError(f"licence {key}: the expression '{expr}' failed: {detail}", element_id=bpmn_id) from exc


def _items(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [p.strip() for p in re.split(r"[,，、;；\n]", value) if p.strip()]
    if isinstance(value, dict):
        value = [k for k, v in value.items() if v]
    if isinstance(value, list | tuple | set):
        return [str(v).strip() for v in value if v is not None and str(v).strip()]
    return [str(value)]


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def local_date(engine) -> date:
    return engine.clock.now().astimezone(LOCAL).date()


def valid_to(issued: date, years: int | None) -> date | None:
    """The last day of validity: N years from the issuing day, the day before (2026-01-05 for five
    years → 2031-01-04); None is 长期 (no end)."""
    if not years:
        return None
    try:
        end = issued.replace(year=issued.year + years)
    except ValueError:  # 29 February → 28 February
        end = issued.replace(year=issued.year + years, day=28)
    return end - timedelta(days=1)


def new_verify_code() -> str:
    return "".join(secrets.choice(VERIFY_ALPHABET) for _ in range(VERIFY_LENGTH))


def data_fields(lic: Licence) -> dict:
    return {"licence_no": lic.licence_no, "licence_id": lic.licence_id,
            "licence_issued_on": lic.issued_on.isoformat(),
            "licence_valid_to": lic.valid_to.isoformat() if lic.valid_to else None,
            "licence_verify_code": lic.verify_code, "licence_status": lic.status}


def issue(session, engine, instance_id: int, task_ref: str, decl: dict, data: dict, actor: str = "system") -> dict:
    """One licence per (instance, task): a second call returns the first record's fields."""
    existing = session.scalar(select(Licence).where(Licence.instance_id == instance_id, Licence.task_ref == task_ref))
    if existing is not None:
        return data_fields(existing)
    holder = _text(_evaluate(engine, decl, "holder", data, task_ref))
    holder_code = _text(_evaluate(engine, decl, "holderCode", data, task_ref))
    empty = {k: f"the expression '{decl.get(k)}' gave nothing" for k, v in
             (("holder", holder), ("holderCode", holder_code)) if not v}
    if empty:
        raise Invalid(f"licence for task {task_ref}: the {' and '.join(empty)} of the licence "
                      f"{'is' if len(empty) == 1 else 'are'} empty", empty)
    items = _items(_evaluate(engine, decl, "items", data, task_ref))
    address = _text(_evaluate(engine, decl, "address", data, task_ref)) or None
    years = int(decl["validYears"]) if (decl.get("validYears") or "").strip() else None
    now = engine.clock.now()
    issued_on = local_date(engine)
    prefix, jurisdiction = decl["prefix"].strip(), decl["jurisdiction"].strip()
    for _attempt in range(50):
        serial = (session.scalar(select(func.max(Licence.serial)).where(
            Licence.prefix == prefix, Licence.serial_year == issued_on.year)) or 0) + 1
        licence_no = f"{prefix}{jurisdiction}{issued_on.year}{serial:06d}"
        lic = Licence(
            licence_no=licence_no, licence_id=f"{decl['typeCode'].strip()}.{decl['issuerCode'].strip()}.{licence_no}",
            name=decl["name"].strip(), type_code=decl["typeCode"].strip(), prefix=prefix,
            serial_year=issued_on.year, serial=serial, holder=holder[:300], holder_code=holder_code[:100],
            holder_code_type=(decl.get("holderCodeType") or "").strip()[:20], issuer=decl["issuer"].strip(),
            issuer_code=decl["issuerCode"].strip(), jurisdiction=jurisdiction, address=address and address[:500],
            items=items, issued_on=issued_on, valid_from=issued_on, valid_to=valid_to(issued_on, years),
            status="valid", issued_at=now, verify_code=new_verify_code(), instance_id=instance_id,
            task_ref=task_ref)
        try:
            with session.begin_nested():
                session.add(lic)
                session.flush()
            break
        except IntegrityError:
            # another transaction took this serial (or issued this task's licence) meanwhile
            existing = session.scalar(select(Licence).where(Licence.instance_id == instance_id,
                                                            Licence.task_ref == task_ref))
            if existing is not None:
                return data_fields(existing)
    else:
        raise ScriptError(f"licence for task {task_ref}: no free serial number after 50 attempts",
                          element_id=task_ref)
    audit.append(session, engine.clock, actor, "licence.issue", instance_id=instance_id, task_ref=task_ref,
                 detail={"name": lic.name, "licence_no": lic.licence_no, "licence_id": lic.licence_id,
                         "holder_code": lic.holder_code, "valid_to": data_fields(lic)["licence_valid_to"]})
    return data_fields(lic)


def revoke(session, engine, instance_id: int, task_ref: str, reason: str, actor: str = "system") -> dict:
    """Every valid licence of the instance becomes revoked (a second call finds none left)."""
    now = engine.clock.now()
    rows = list(session.scalars(select(Licence).where(Licence.instance_id == instance_id, Licence.status == "valid")
                                .order_by(Licence.id)))
    for lic in rows:
        lic.status, lic.revoked_at, lic.revoke_reason = "revoked", now, reason[:2000] or None
    if rows:
        audit.append(session, engine.clock, actor, "licence.revoke", instance_id=instance_id, task_ref=task_ref,
                     detail={"licence_nos": [r.licence_no for r in rows], "reason": reason[:500]})
    return {"licence_status": "revoked", "licence_revoked_on": now.astimezone(LOCAL).date().isoformat()}


# ---- reading ----------------------------------------------------------------------------------
def as_dict(lic: Licence) -> dict:
    return {
        "licence_no": lic.licence_no, "licence_id": lic.licence_id, "name": lic.name, "type_code": lic.type_code,
        "holder": lic.holder, "holder_code": lic.holder_code, "holder_code_type": lic.holder_code_type,
        "issuer": lic.issuer, "issuer_code": lic.issuer_code, "jurisdiction": lic.jurisdiction,
        "address": lic.address, "items": list(lic.items or []), "issued_on": lic.issued_on.isoformat(),
        "valid_from": lic.valid_from.isoformat(), "valid_to": lic.valid_to.isoformat() if lic.valid_to else None,
        "status": lic.status, "issued_at": lic.issued_at.isoformat(),
        "revoked_at": lic.revoked_at.isoformat() if lic.revoked_at else None, "revoke_reason": lic.revoke_reason,
        "verify_code": lic.verify_code, "instance_id": lic.instance_id, "task_ref": lic.task_ref,
    }


PUBLIC_FIELDS = ("licence_no", "name", "holder", "holder_code", "issuer", "items", "issued_on", "valid_from",
                 "valid_to", "status", "revoked_at")


def public_dict(lic: Licence) -> dict:
    """What the public verification page shows: never the code, never anything of the case."""
    full = as_dict(lic)
    out = {k: full[k] for k in PUBLIC_FIELDS}
    out["revoked_on"] = lic.revoked_at.astimezone(LOCAL).date().isoformat() if lic.revoked_at else None
    return out


class LicenceMixin:
    """The read side of licences on ``Engine``."""

    def licences(self, instance_id: int | None = None, holder_code: str | None = None, *,
                 user: str | None = None, limit: int = 200) -> list[dict]:
        """Licences, newest first; with ``user`` only those of instances the user may see."""
        with self.readers() as s:
            q = select(Licence)
            if instance_id is not None:
                q = q.where(Licence.instance_id == instance_id)
            if holder_code:
                q = q.where(Licence.holder_code == holder_code)
            if user is not None:
                q = q.where(Licence.instance_id.in_(self._involving(s, user)))
            return [as_dict(r) for r in s.scalars(q.order_by(Licence.id.desc()).limit(limit))]

    def licence(self, licence_no: str) -> dict:
        if not _NUMBER.match(licence_no or ""):
            raise NotFound(f"no licence '{licence_no[:40]}'")
        with self.readers() as s:
            lic = s.scalar(select(Licence).where(Licence.licence_no == licence_no))
            if lic is None:
                raise NotFound(f"no licence '{licence_no}'")
            return as_dict(lic)

    def verify_licence(self, licence_no: str, code: str | None) -> dict:
        """The public view of a licence, if ``code`` is its verification code; else NotFound
        (the same answer for an unknown number and a wrong code)."""
        given = (code or "").strip().upper()
        if not _NUMBER.match(licence_no or "") or not _NUMBER.match(given):
            raise NotFound("证照不存在或校验码不符")
        with self.readers() as s:
            lic = s.scalar(select(Licence).where(Licence.licence_no == licence_no))
            if lic is None or not hmac.compare_digest(given.encode(), lic.verify_code.encode()):
                raise NotFound("证照不存在或校验码不符")
            return public_dict(lic)
