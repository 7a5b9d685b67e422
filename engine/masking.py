"""Masking of sensitive values for people whose role need not see them in full.

ID numbers keep the first 6 and last 4 characters (the region code and the check digits),
phone numbers the first 3 and last 4; anything else declared sensitive keeps its first and
last character. A field is sensitive when a form or data declaration says so, or when its
name says what it is (id_number, 身份证, phone, mobile, health, ...).
"""

from __future__ import annotations

import re

_ID_NAMES = re.compile(r"(id_?(card|number|no)|identity|身份证|证件号)", re.I)
_PHONE_NAMES = re.compile(r"(phone|mobile|tel|电话|手机)", re.I)
_HEALTH_NAMES = re.compile(r"(health|medical|disease|健康|病)", re.I)


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


def mask_data(data, declared: set[str] | frozenset = frozenset()):
    """A copy of ``data`` (nested dicts and lists too) with sensitive fields masked."""
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            kind = "other" if key in declared else kind_of_field(str(key))
            if kind and not isinstance(value, dict | list):
                out[key] = mask_value(value, kind if kind != "other" or key not in declared else
                                      (kind_of_field(str(key)) or "other"))
            else:
                out[key] = mask_data(value, declared)
        return out
    if isinstance(data, list):
        return [mask_data(v, declared) for v in data]
    return data
