"""Safe reading of uploaded BPMN/DMN XML: no entities, no DTD, no network, a size limit."""

from __future__ import annotations

import os
import re
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


_TRAILING_POSITION = re.compile(r",\s*line \d+, column \d+\s*$")
_TAG_MISMATCH = re.compile(r"Opening and ending tag mismatch: (\S+) line (\d+) and (\S+)")
_UTF32_BOMS = (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")
_PROLOG_ITEM = re.compile(r"\s+|<\?.*?\?>|<!--.*?-->", re.S)
_DECLARED_ENCODING = re.compile(r"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([^"']*)["']""")


def _as_text(content: bytes) -> str:
    """The upload as text good enough to find markup in: UTF-16/32 decoded by their BOM or
    zero-byte pattern; anything else read byte for byte (UTF-8, GBK, GB18030, Latin-1 all keep
    ASCII markup and newlines as single bytes)."""
    head = content[:4]
    if head.startswith(_UTF32_BOMS):
        return content.decode("utf-32", errors="replace")
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return content.decode("utf-16", errors="replace")
    if head == b"\x00<\x00?":
        return content.decode("utf-16-be", errors="replace")
    if head == b"<\x00?\x00":
        return content.decode("utf-16-le", errors="replace")
    text = content.decode("latin-1")
    return text[3:] if text.startswith("\xef\xbb\xbf") else text.lstrip("\ufeff")


def _doctype_line(text: str) -> int | None:
    """Line of a DOCTYPE in the prolog (the only place XML allows one), else None."""
    pos = 0
    while True:
        m = _PROLOG_ITEM.match(text, pos)
        if not m or m.end() == pos:
            break
        pos = m.end()
    if text[pos:pos + 9].upper() == "<!DOCTYPE":
        return text.count("\n", 0, pos) + 1
    return None


def declared_encoding(content: bytes) -> str | None:
    m = _DECLARED_ENCODING.match(_as_text(content[:1024]))
    return m.group(1) if m else None


def _encoding_problem(name: str, content: bytes, detail: str, line: int | None) -> Problem:
    declared = declared_encoding(content)
    if "unsupported encoding" in detail.lower() or "unknown encoding" in detail.lower():
        msg = (f"the file declares encoding=\"{declared}\", which is not a text encoding we know; "
               "save the file as UTF-8 and declare encoding=\"UTF-8\"") if declared else \
              f"the file's text encoding is not supported ({detail}); save it as UTF-8"
    else:
        label = declared or "UTF-8 (no encoding is declared)"
        msg = (f"the file says its text is {label}, but this line has bytes that are not valid "
               f"{declared or 'UTF-8'}; save the file again as UTF-8, or declare the encoding it really "
               "uses (for example encoding=\"GBK\")")
    return Problem(msg, file=name, line=line, extra={"detail": detail})


def parse_xml(name: str, content: bytes) -> tuple[etree._ElementTree | None, list[Problem]]:
    """Parse bytes into a tree, or return the problems that stop it.

    The bytes go to lxml as they are, so any encoding the XML declaration names and libxml2
    knows (GBK, GB18030, Big5, UTF-16 ...) is read correctly. DTDs are refused before parsing,
    which rules out external entities (XXE) and entity expansion bombs; the parser itself is
    also set to resolve no entities and load nothing, as a second line of defence.
    """
    if len(content) > MAX_FILE_BYTES:
        return None, [Problem(
            f"file is {len(content) / 1024 / 1024:.1f} MB ({len(content)} bytes); the upload limit is "
            f"{MAX_FILE_BYTES / 1024 / 1024:.0f} MB per file", file=name)]
    if not content.strip():
        return None, [Problem("file is empty", file=name)]
    line = _doctype_line(_as_text(content))
    if line is not None:
        return None, [Problem(
            "DOCTYPE and entity declarations are not allowed in process files (they can read "
            "local files or expand without limit); remove the <!DOCTYPE ...> block", file=name, line=line)]
    try:
        tree = etree.ElementTree(etree.fromstring(content, _parser()))
    except etree.XMLSyntaxError as exc:
        msg = exc.msg or str(exc)
        low = msg.lower()
        if "encoding" in low or "unsupported" in low or "not proper utf" in low:
            return None, [_encoding_problem(name, content, msg, exc.lineno)]
        if "entity" in low or "amplification" in low:
            return None, [Problem(f"entities are not allowed in process files: {msg}", file=name,
                                  line=exc.lineno)]
        msg = _TRAILING_POSITION.sub("", msg)
        m = _TAG_MISMATCH.match(msg)
        if m:
            opened, opened_line, closing = m.group(1), int(m.group(2)), m.group(3)
            return None, [Problem(
                f"not well-formed XML: <{opened}> opened on line {opened_line} is not closed "
                f"(the parser reached </{closing}> on line {exc.lineno} first)", file=name, line=opened_line,
                extra={"detected_at_line": exc.lineno})]
        return None, [Problem(f"not well-formed XML: {msg} (line {exc.lineno})", file=name, line=exc.lineno)]
    except (ValueError, LookupError) as exc:
        return None, [_encoding_problem(name, content, str(exc), 1)]
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


def _short_ns(text: str) -> str:
    return text.replace(f"{{{BPMN_NS}}}", "bpmn:")


def xsd_problems(name: str, tree: etree._ElementTree) -> list[Problem]:
    kind = kind_of(tree)
    ns = etree.QName(tree.getroot()).namespace
    schema = _schema(kind, ns)
    if schema.validate(tree):
        return []
    problems = []
    for err in list(schema.error_log)[:50]:
        problems.append(Problem(
            f"does not follow the {kind.upper()} schema: {_short_ns(err.message)}",
            file=name, line=err.line, element_id=element_id_at(tree, err.line)))
    return problems


def line_of(tree: etree._ElementTree, element_id: str | None) -> int | None:
    if not element_id:
        return None
    found = tree.xpath("//*[@id=$i]", i=element_id)
    return found[0].sourceline if found else None
