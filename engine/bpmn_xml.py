"""Safe reading of uploaded BPMN/DMN XML: no entities, no DTD, no network, a size limit."""

from __future__ import annotations

import os
from pathlib import Path

from lxml import etree

from .errors import Problem

MAX_FILE_BYTES = int(os.environ.get("TONGBAN_MAX_UPLOAD_BYTES", str(10 * 1024 * 1024)))

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
DMN_NAMESPACES = {
    "https://www.omg.org/spec/DMN/20191111/MODEL/": "DMN13.xsd",
    "http://www.omg.org/spec/DMN/20180521/MODEL/": "DMN12.xsd",
}
TB_NS = "urn:tongban:bpmn:1"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
        huge_tree=False, remove_blank_text=False,
    )


def parse_xml(name: str, content: bytes) -> tuple[etree._ElementTree | None, list[Problem]]:
    """Parse bytes into a tree, or return the problems that stop it."""
    if len(content) > MAX_FILE_BYTES:
        return None, [Problem(
            f"file is {len(content) / 1024 / 1024:.1f} MB; the upload limit is "
            f"{MAX_FILE_BYTES / 1024 / 1024:.0f} MB", file=name)]
    if not content.strip():
        return None, [Problem("file is empty", file=name)]
    head = content[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in content.lower():
        line = content[: content.lower().find(b"<!")].count(b"\n") + 1
        return None, [Problem("DOCTYPE and entity declarations are not allowed in process files", file=name, line=line)]
    try:
        tree = etree.ElementTree(etree.fromstring(content, _parser()))
    except etree.XMLSyntaxError as exc:
        msg = exc.msg or str(exc)
        if "encoding" in msg.lower() or "unsupported" in msg.lower():
            msg = f"the file's text encoding cannot be read: {msg}"
        else:
            msg = f"not well-formed XML: {msg}"
        return None, [Problem(msg, file=name, line=exc.lineno)]
    except (ValueError, LookupError) as exc:
        return None, [Problem(f"the file's text encoding cannot be read: {exc}", file=name)]
    if tree.docinfo.internalDTD is not None or tree.docinfo.externalDTD is not None:
        return None, [Problem("DOCTYPE declarations are not allowed", file=name, line=1)]
    return tree, []


def kind_of(tree: etree._ElementTree) -> str | None:
    ns = etree.QName(tree.getroot()).namespace
    if ns == BPMN_NS:
        return "bpmn"
    if ns in DMN_NAMESPACES:
        return "dmn"
    return None


_schemas: dict[str, etree.XMLSchema] = {}


def _schema(kind: str, ns: str) -> etree.XMLSchema:
    import SpiffWorkflow

    base = Path(SpiffWorkflow.__file__).parent
    path = base / "bpmn/parser/schema/BPMN20.xsd" if kind == "bpmn" else base / "dmn/parser/schema" / DMN_NAMESPACES[ns]
    key = str(path)
    if key not in _schemas:
        _schemas[key] = etree.XMLSchema(etree.parse(str(path), _parser()))
    return _schemas[key]


def element_id_at(tree: etree._ElementTree, line: int | None) -> str | None:
    if line is None:
        return None
    best = None
    for el in tree.iter():
        if not isinstance(el.tag, str):
            continue
        if el.sourceline is not None and el.sourceline <= line and el.get("id"):
            best = el.get("id")
        if el.sourceline is not None and el.sourceline > line:
            break
    return best


def xsd_problems(name: str, tree: etree._ElementTree) -> list[Problem]:
    kind = kind_of(tree)
    ns = etree.QName(tree.getroot()).namespace
    schema = _schema(kind, ns)
    if schema.validate(tree):
        return []
    problems = []
    for err in list(schema.error_log)[:50]:
        problems.append(Problem(
            f"does not follow the {kind.upper()} schema: {err.message}",
            file=name, line=err.line, element_id=element_id_at(tree, err.line)))
    return problems


def line_of(tree: etree._ElementTree, element_id: str | None) -> int | None:
    if not element_id:
        return None
    found = tree.xpath("//*[@id=$i]", i=element_id)
    return found[0].sourceline if found else None
