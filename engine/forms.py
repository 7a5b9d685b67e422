"""Task forms: one field list from three sources, and server-side validation.

A task's form comes from ``camunda:formData`` (formField with constraints and enum values),
our own ``tb:field`` elements, or a JSON Schema in ``tb:jsonSchema``; all three become the
same list of field dicts (id, label, type, required, default, options, min/max, pattern).
``validate`` checks submitted data against it and names the field of every error, so the
web page can put the message next to the field and the API can return it as JSON.
"""

from __future__ import annotations

import json
import re
from datetime import date

from .errors import Invalid

_MAX_TEXT = 10_000

TYPE_ALIASES = {"integer": "long", "int": "long", "number": "double", "float": "double", "text": "string",
                "textarea": "string", "bool": "boolean", "select": "enum"}


def field(fid: str, *, label: str | None = None, type_: str = "string", required: bool = False, default=None,
          options: list | None = None, **limits) -> dict:
    out = {"id": fid, "label": label or fid, "type": TYPE_ALIASES.get(type_, type_), "required": required,
           "default": default}
    if options:
        out["options"] = options
    for k in ("min", "max", "minlength", "maxlength", "pattern", "readonly", "sensitive"):
        if limits.get(k) is not None:
            out[k] = limits[k]
    return out


def fields_from_json_schema(text: str) -> list[dict]:
    schema = json.loads(text)
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        raise ValueError("a form JSON Schema needs an object with 'properties'")
    required = set(schema.get("required") or [])
    out = []
    for fid, prop in schema["properties"].items():
        prop = prop if isinstance(prop, dict) else {}
        type_ = prop.get("type", "string")
        if type_ == "string" and prop.get("format") == "date":
            type_ = "date"
        options = None
        if "enum" in prop:
            type_ = "enum"
            names = prop.get("enumNames") or prop["enum"]
            options = [{"id": str(v), "name": str(n)} for v, n in zip(prop["enum"], names, strict=False)]
        out.append(field(fid, label=prop.get("title"), type_=type_, required=fid in required,
                         default=prop.get("default"), options=options, min=prop.get("minimum"),
                         max=prop.get("maximum"), minlength=prop.get("minLength"),
                         maxlength=prop.get("maxLength"), pattern=prop.get("pattern")))
    return out


def _number(value, cast):
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int | float):
        result = cast(value)
        if cast is int and result != value:
            raise ValueError
        return result
    text = str(value).strip()
    return cast(text) if cast is float else int(text, 10)


def _coerce(f: dict, value):
    t = f["type"]
    if t == "long":
        try:
            return _number(value, int), None
        except (TypeError, ValueError):
            return None, "请输入整数 / must be a whole number"
    if t == "double":
        try:
            return _number(value, float), None
        except (TypeError, ValueError):
            return None, "请输入数字 / must be a number"
    if t == "boolean":
        if isinstance(value, bool):
            return value, None
        text = str(value).strip().lower()
        if text in ("true", "on", "1", "yes", "是"):
            return True, None
        if text in ("false", "off", "0", "no", "否", ""):
            return False, None
        return None, "请选择是或否 / must be true or false"
    if t == "date":
        try:
            return date.fromisoformat(str(value).strip()).isoformat(), None
        except ValueError:
            return None, "日期格式应为 YYYY-MM-DD / must be a date YYYY-MM-DD"
    if t == "enum":
        allowed = [str(o["id"]) for o in f.get("options", [])]
        if str(value) not in allowed:
            return None, f"请从 {', '.join(allowed)} 中选择 / must be one of {', '.join(allowed)}"
        return str(value), None
    if not isinstance(value, str | int | float):
        return None, "请输入文本 / must be text"
    return str(value), None


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def validate(fields: list[dict], data: dict) -> dict:
    """Return the cleaned values of the declared fields; raise ``Invalid`` naming each bad field.

    Keys not declared in the form are passed through unchanged (process variables the caller
    supplies on purpose), except that declared fields are always type-checked."""
    if not isinstance(data, dict):
        raise Invalid("form data must be an object", {})
    errors: dict[str, str] = {}
    clean = dict(data)
    for f in fields:
        fid = f["id"]
        value = data.get(fid)
        if f["type"] == "boolean" and value is None and fid not in data:
            if f.get("required"):
                errors[fid] = "必填 / required"
            continue
        if _blank(value):
            if f.get("required"):
                errors[fid] = "必填 / required"
            clean.pop(fid, None) if fid not in data else clean.__setitem__(fid, None)
            continue
        value, problem = _coerce(f, value)
        if problem:
            errors[fid] = problem
            continue
        if isinstance(value, str) and len(value) > _MAX_TEXT:
            errors[fid] = f"最多 {_MAX_TEXT} 字 / at most {_MAX_TEXT} characters"
            continue
        if f.get("minlength") is not None and isinstance(value, str) and len(value) < int(f["minlength"]):
            errors[fid] = f"至少 {f['minlength']} 字 / at least {f['minlength']} characters"
        elif f.get("maxlength") is not None and isinstance(value, str) and len(value) > int(f["maxlength"]):
            errors[fid] = f"最多 {f['maxlength']} 字 / at most {f['maxlength']} characters"
        elif f.get("min") is not None and isinstance(value, int | float) and value < float(f["min"]):
            errors[fid] = f"不能小于 {f['min']} / must be at least {f['min']}"
        elif f.get("max") is not None and isinstance(value, int | float) and value > float(f["max"]):
            errors[fid] = f"不能大于 {f['max']} / must be at most {f['max']}"
        elif f.get("pattern") and isinstance(value, str) and not re.fullmatch(str(f["pattern"]), value):
            errors[fid] = "格式不正确 / does not match the required format"
        else:
            clean[fid] = value
    if errors:
        raise Invalid("表单有误 / the form has errors: " + ", ".join(sorted(errors)), errors)
    return clean


def with_defaults(fields: list[dict], data: dict) -> dict:
    """``data`` plus the declared default of every field it leaves out (a guided question the
    applicant skipped takes its default, so conditions never meet a missing answer)."""
    out = dict(data)
    for f in fields:
        if f["id"] in out or f.get("default") in (None, ""):
            continue
        value, problem = _coerce(f, f["default"])
        if not problem:
            out[f["id"]] = value
    return out


def start_form_fields(sources: dict[str, str | bytes], key: str) -> list[dict]:
    """The form fields declared on the start event(s) of process ``key`` (camunda:formData,
    tb:field, tb:jsonSchema on a top-level ``startEvent`` without an event definition), read
    from a definition's BPMN sources; [] when the start event declares none."""
    from lxml import etree

    from .bpmn_xml import BPMN_NS
    from .manifest import _form_fields  # the same reader tasks use (manifest imports this module)

    b = f"{{{BPMN_NS}}}"
    fields: list[dict] = []
    for name, text in (sources or {}).items():
        if str(name).lower().endswith(".dmn"):
            continue
        # stored sources are decoded text: drop the declaration (it may name the upload's encoding)
        raw = re.sub(r"^\s*<\?xml[^>]*\?>", "", text) if isinstance(text, str) else text
        try:
            root = etree.fromstring(raw, etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False))
        except (etree.XMLSyntaxError, ValueError):
            continue
        for proc in root.iter(b + "process"):
            if proc.get("id") != key:
                continue
            for start in proc.findall(b + "startEvent"):
                if any(etree.QName(c).localname.endswith("EventDefinition") for c in start if isinstance(c.tag, str)):
                    continue
                seen = {f["id"] for f in fields}
                fields.extend(f for f in _form_fields(start) if f.get("id") and f["id"] not in seen)
        if fields:
            break
    return fields
