"""Masking of sensitive values for people whose role need not see them in full.

ID numbers keep the first 6 and last 4 characters (the region code and the check digits),
phone numbers the first 3 and last 4; anything else declared sensitive keeps its first and
last character. A field is sensitive when a form or data declaration says so, or when its
name says what it is (id_number, 身份证, phone, mobile, health_status, medical, 健康证, ...).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_ID_NAMES = re.compile(r"(id_?(card|number|no)|identity|身份证|证件号)", re.I)
_PHONE_NAMES = re.compile(r"(phone|mobile|tel|电话|手机)", re.I)
# a person's health: the words alone, or health with what is recorded of it. Not "health" as the
# name of a department (卫健委: health_receipt_no, push_items["health"]), which says whose step it is.
_HEALTH_NAMES = re.compile(
    r"(medical|disease|illness|diagnos|病|健康状况|健康证|体检"
    r"|health_?(status|condition|cert|certificate|check|exam|record|report|info|history|declaration|code))", re.I)


def kind_of_field(name: str) -> str | None:
    if _ID_NAMES.search(name):
        return "id"
    if _PHONE_NAMES.search(name):
        return "phone"
    if _HEALTH_NAMES.search(name):
        return "other"
    return None


def mask_value(value, kind: str = "other"):
    if value is None:
        return None
    text = str(value)
    if kind == "id":
        return text[:6] + "*" * max(len(text) - 10, 0) + text[-4:] if len(text) > 10 else "*" * len(text)
    if kind == "phone":
        return text[:3] + "*" * max(len(text) - 7, 0) + text[-4:] if len(text) > 7 else "*" * len(text)
    return text[:1] + "*" * max(len(text) - 2, 1) + (text[-1:] if len(text) > 2 else "")


_ID_VALUE = re.compile(r"\d{17}[\dXx]|\d{15}")
_MOBILE_VALUE = re.compile(r"1[3-9]\d{9}")


def kind_of_value(value) -> str | None:
    """An 18- (or old 15-) digit ID number or a mainland mobile number, recognised by its shape."""
    if isinstance(value, str):
        if _ID_VALUE.fullmatch(value):
            return "id"
        if _MOBILE_VALUE.fullmatch(value):
            return "phone"
    return None


def _kind(key: str, value, declared) -> str | None:
    if key in declared:
        kind = declared.get(key) if isinstance(declared, Mapping) else None
        if kind in (None, "other", "health", "true", "yes"):
            kind = kind_of_field(key) or kind_of_value(value) or "other"
        return "other" if kind == "health" else kind
    kind = kind_of_field(key)
    if kind in ("id", "phone") and isinstance(value, bool | int | float):
        return None  # a flag or a count named after an ID or a phone (identity_found) holds neither
    return kind


def mask_data(data, declared: Mapping[str, str | None] | set[str] | frozenset = frozenset()):
    """A copy of ``data`` (nested dicts and lists too) with sensitive fields masked. ``declared``: the
    fields declared sensitive, as names or as a mapping to their kind (``id``, ``phone``, ``other``);
    a declared field without a kind is masked as its name or, failing that, its value's shape says
    (an ID number keeps its first 6 and last 4 characters wherever it is shown). Undeclared fields
    are masked when their name says what they hold."""
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            kind = _kind(str(key), value, declared)
            if kind and not isinstance(value, dict | list):
                out[key] = mask_value(value, kind)
            else:
                out[key] = mask_data(value, declared)
        return out
    if isinstance(data, list):
        return [mask_data(v, declared) for v in data]
    return data
