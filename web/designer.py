"""Designer pages (流程设计): processes and versions, upload with a located validation report,
deploy, view a version, compare two versions, and the bpmn-js modeler (一键拖拽部署).

Uploads are kept without server state: the report page carries the checked files in a signed,
compressed form field (``bundle``), and the deploy button posts that field back, so the files
deployed are exactly the files checked.
"""

from __future__ import annotations

import base64
import difflib
from pathlib import PurePath

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from itsdangerous import BadSignature, URLSafeSerializer
from lxml import etree

from engine import flowcheck
from engine.bpmn_xml import BPMN_NS, parse_xml
from engine.errors import InvalidProcess, NotFound

from .auth import engine, role_required

bp = Blueprint("designer", __name__, url_prefix="/designer")

EXCERPT_RADIUS = 4
MANIFEST_FIELDS = ("name", "type", "lane", "candidate_groups", "candidate_users", "assignee", "form_key",
                   "form_fields", "outcomes", "opinion_required", "due", "sla", "org_level")

NEW_DIAGRAM = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" \
xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" \
xmlns:di="http://www.omg.org/spec/DD/20100524/DI" xmlns:tb="urn:tongban:bpmn:1" id="Definitions_new" \
targetNamespace="urn:tongban:processes" exporter="Tongban modeler" exporterVersion="1">
  <bpmn:process id="new_process" name="新流程" isExecutable="true">
    <bpmn:startEvent id="start" name="申请提交">
      <bpmn:outgoing>flow_start_review</bpmn:outgoing>
    </bpmn:startEvent>
    <bpmn:userTask id="review" name="审核" tb:candidateGroups="window">
      <bpmn:incoming>flow_start_review</bpmn:incoming>
      <bpmn:outgoing>flow_review_end</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end" name="办结">
      <bpmn:incoming>flow_review_end</bpmn:incoming>
    </bpmn:endEvent>
    <bpmn:sequenceFlow id="flow_start_review" sourceRef="start" targetRef="review"/>
    <bpmn:sequenceFlow id="flow_review_end" sourceRef="review" targetRef="end"/>
  </bpmn:process>
  <bpmndi:BPMNDiagram id="BPMNDiagram_new">
    <bpmndi:BPMNPlane id="BPMNPlane_new" bpmnElement="new_process">
      <bpmndi:BPMNShape id="start_di" bpmnElement="start">
        <dc:Bounds x="180" y="142" width="36" height="36"/>
        <bpmndi:BPMNLabel><dc:Bounds x="170" y="185" width="56" height="14"/></bpmndi:BPMNLabel>
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="review_di" bpmnElement="review">
        <dc:Bounds x="280" y="120" width="100" height="80"/>
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="end_di" bpmnElement="end">
        <dc:Bounds x="452" y="142" width="36" height="36"/>
        <bpmndi:BPMNLabel><dc:Bounds x="448" y="185" width="44" height="14"/></bpmndi:BPMNLabel>
      </bpmndi:BPMNShape>
      <bpmndi:BPMNEdge id="flow_start_review_di" bpmnElement="flow_start_review">
        <di:waypoint x="216" y="160"/>
        <di:waypoint x="280" y="160"/>
      </bpmndi:BPMNEdge>
      <bpmndi:BPMNEdge id="flow_review_end_di" bpmnElement="flow_review_end">
        <di:waypoint x="380" y="160"/>
        <di:waypoint x="452" y="160"/>
      </bpmndi:BPMNEdge>
    </bpmndi:BPMNPlane>
  </bpmndi:BPMNDiagram>
</bpmn:definitions>
"""


# ---- helpers -------------------------------------------------------------------------------

def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt="tongban.designer.upload")


def dump_bundle(files: dict[str, bytes]) -> str:
    """The files as one signed, compressed string for a hidden form field."""
    return _serializer().dumps({name: base64.b64encode(data).decode() for name, data in files.items()})


def load_bundle(token: str) -> dict[str, bytes]:
    try:
        raw = _serializer().loads(token)
    except BadSignature:
        abort(400, description=_("上传内容已失效或被改动，请重新上传。"))
    return {name: base64.b64decode(data) for name, data in raw.items()}


def _uploaded_files() -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for storage in request.files.getlist("files"):
        if not storage or not storage.filename:
            continue
        name = PurePath(storage.filename.replace("\\", "/")).name or "upload.bpmn"
        files[name] = storage.read()
    return files


def _text_of(content: bytes) -> str:
    """The file as text for display: UTF-8, else GB18030 (covers GBK), else byte for byte."""
    if content[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return content.decode("utf-16", errors="replace")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return content.decode(encoding)
        except UnicodeDecodeError:
            continue
    return content.decode("latin-1")


def _drawable(name: str, content: bytes) -> str | None:
    """XML text bpmn-js can import (no XML declaration), or None when the file cannot be parsed
    or is not BPMN."""
    tree, errors = parse_xml(name, content)
    if errors or tree is None or etree.QName(tree.getroot()).namespace != BPMN_NS:
        return None
    return etree.tostring(tree, encoding="unicode")


def _excerpt(text: str, line: int | None) -> list[dict] | None:
    if not line:
        return None
    lines = text.splitlines()
    start, end = max(1, line - EXCERPT_RADIUS), min(len(lines), line + EXCERPT_RADIUS)
    return [{"no": no, "text": lines[no - 1], "hit": no == line} for no in range(start, end + 1)]


def _report(files: dict[str, bytes], problems: list[dict]) -> list[dict]:
    """One entry per file: its problems (each with the source lines around it) and the XML
    the diagram viewer draws (None when the file cannot be drawn)."""
    out = []
    placed: set[int] = set()
    for name, content in files.items():
        text = _text_of(content)
        mine = []
        for i, p in enumerate(problems):
            if p.get("file") in (name, None) or (p.get("file") and PurePath(p["file"]).name == name):
                mine.append(dict(p, excerpt=_excerpt(text, p.get("line"))))
                placed.add(i)
        out.append({"name": name, "size": len(content), "problems": mine, "xml": _drawable(name, content),
                    "element_ids": sorted({p["element_id"] for p in mine if p.get("element_id")})})
    rest = [dict(p, excerpt=None) for i, p in enumerate(problems) if i not in placed]
    if rest:  # a problem about a file that is not in the upload (e.g. a missing called process)
        out.append({"name": rest[0].get("file") or "—", "size": 0, "problems": rest, "xml": None, "element_ids": []})
    return out


def _main_source(definition: dict) -> tuple[str | None, str | None]:
    """(file name, XML) of the source file that holds the definition's process."""
    key = definition["key"]
    for name, text in sorted((definition.get("sources") or {}).items()):
        try:
            root = etree.fromstring(text.encode(), etree.XMLParser(resolve_entities=False, no_network=True,
                                                                   load_dtd=False, huge_tree=False))
        except etree.XMLSyntaxError:
            continue
        if root.find(f"{{{BPMN_NS}}}process[@id='{key}']") is not None:
            return name, text
    return None, None


def _called_files(xml: str, sources: dict[str, str], skip: str | None) -> dict[str, bytes]:
    """DMN files of the base version, and BPMN files that define processes the edited file
    calls but does not define: what the edited file needs to deploy on its own."""
    try:
        root = etree.fromstring(xml.encode(), etree.XMLParser(resolve_entities=False, no_network=True,
                                                              load_dtd=False))
    except etree.XMLSyntaxError:
        return {}
    defined = {p.get("id") for p in root.iter(f"{{{BPMN_NS}}}process")}
    called = {c.get("calledElement") for c in root.iter(f"{{{BPMN_NS}}}callActivity")} - defined - {None}
    needed = {}
    for name, text in sources.items():
        if PurePath(name).name == skip:
            continue
        if name.lower().endswith(".dmn") or any(f'id="{c}"' in text for c in called):
            needed[name] = text.encode()
    return needed


def _grouped_definitions() -> list[dict]:
    by_key: dict[str, dict] = {}
    for d in engine().definitions():
        entry = by_key.setdefault(d["key"], {"key": d["key"], "versions": []})
        entry["versions"].append(d)
    out = []
    for entry in by_key.values():
        entry["versions"].sort(key=lambda v: v["version"], reverse=True)
        entry["latest"] = entry["versions"][0]
        out.append(entry)
    return sorted(out, key=lambda e: e["key"])


def show_value(value) -> str:
    """A manifest value as a designer reads it: lists joined, outcomes as id:name, None as —."""
    if value is None or value == [] or value == {}:
        return "—"
    if isinstance(value, bool):
        return "✓" if value else "✗"
    if isinstance(value, list):
        return ", ".join(show_value(v) for v in value)
    if isinstance(value, dict):
        if "id" in value:
            label = value.get("name") or value.get("label")
            return f"{value['id']}:{label}" if label and label != value["id"] else str(value["id"])
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def manifest_diff(old: dict, new: dict) -> dict:
    """Tasks added, removed and changed (field by field) between two manifests."""
    a, b = old.get("tasks", {}), new.get("tasks", {})
    changed = []
    for tid in sorted(set(a) & set(b)):
        fields = [{"field": f, "old": show_value(a[tid].get(f)), "new": show_value(b[tid].get(f))}
                  for f in MANIFEST_FIELDS if a[tid].get(f) != b[tid].get(f)]
        if fields:
            changed.append({"id": tid, "name": b[tid].get("name") or tid, "fields": fields})
    return {
        "added": [b[t] for t in sorted(set(b) - set(a))],
        "removed": [a[t] for t in sorted(set(a) - set(b))],
        "changed": changed,
        "name": (old.get("name"), new.get("name")) if old.get("name") != new.get("name") else None,
    }


def source_diff(old: dict, new: dict) -> list[dict]:
    """A unified diff of the process's BPMN source, as lines with a kind (add/del/hunk/ctx)."""
    old_name, old_text = _main_source(old)
    new_name, new_text = _main_source(new)
    lines = difflib.unified_diff((old_text or "").splitlines(), (new_text or "").splitlines(),
                                 fromfile=f"v{old['version']}/{PurePath(old_name or '').name}",
                                 tofile=f"v{new['version']}/{PurePath(new_name or '').name}",
                                 lineterm="", n=3)
    out = []
    for line in lines:
        kind = ("head" if line.startswith(("---", "+++")) else "hunk" if line.startswith("@@")
                else "add" if line.startswith("+") else "del" if line.startswith("-") else "ctx")
        out.append({"kind": kind, "text": line})
    return out


# ---- pages ---------------------------------------------------------------------------------

@bp.route("/")
@role_required("designer")
def index():
    return render_template("designer.html", processes=_grouped_definitions())


@bp.route("/upload", methods=["GET", "POST"])
@role_required("designer")
def upload():
    """GET: the upload form. POST: check the files (nothing is stored) and show the report."""
    if request.method == "GET":
        return render_template("designer_upload.html", report=None)
    files = _uploaded_files()
    if not files:
        flash(_("请选择要上传的 BPMN / DMN 文件。"), "error")
        return render_template("designer_upload.html", report=None), 400
    result = engine().check(files)
    latest = {d["key"]: d for d in engine().definitions()}
    keys = [{"key": k, "current": latest.get(k, {}).get("version")} for k in result["keys"]]
    flow = None
    if not result["problems"]:
        # the data/authority flow check: warnings (e.g. 重复填报) and what is pulled vs asked
        flow = flowcheck.check_files(files, engine().connector_registry)
    return render_template("designer_upload.html", report=_report(files, result["problems"]),
                           problems=result["problems"], keys=keys, bundle=dump_bundle(files), flow=flow), \
        (200 if not result["problems"] else 422)


@bp.route("/deploy", methods=["POST"])
@role_required("designer")
def deploy():
    """Deploy the checked upload (``bundle`` from the report page) or files posted directly."""
    files = load_bundle(request.form["bundle"]) if request.form.get("bundle") else _uploaded_files()
    if not files:
        flash(_("请选择要上传的 BPMN / DMN 文件。"), "error")
        return redirect(url_for(".upload"))
    try:
        deployed = engine().deploy(files, actor=g.user["name"])
    except InvalidProcess as exc:
        problems = [p.as_dict() for p in exc.problems]
        return render_template("designer_upload.html", report=_report(files, problems), problems=problems,
                               keys=[], bundle=dump_bundle(files)), 422
    for d in deployed:
        if d.created:
            flash(_("已部署 %(key)s 第 %(version)s 版。", key=d.key, version=d.version), "ok")
        else:
            flash(_("%(key)s 内容未变，仍为第 %(version)s 版。", key=d.key, version=d.version), "ok")
    return redirect(url_for(".version", definition_id=deployed[0].id) if len(deployed) == 1 else url_for(".index"))


@bp.route("/definitions/<int:definition_id>")
@role_required("designer")
def version(definition_id: int):
    d = engine().definition(definition_id)
    filename, xml = _main_source(d)
    versions = engine().versions(d["key"])
    return render_template("designer_version.html", d=d, xml=xml, filename=filename, versions=versions,
                           tasks=list(d["manifest"].get("tasks", {}).values()))


@bp.route("/definitions/<int:definition_id>/bpmn")
@role_required("designer")
def download(definition_id: int):
    d = engine().definition(definition_id)
    filename, xml = _main_source(d)
    if xml is None:
        abort(404)
    name = f"{d['key']}.v{d['version']}.bpmn"
    return Response('<?xml version="1.0" encoding="UTF-8"?>\n' + xml, mimetype="application/xml",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Content-Security-Policy": "sandbox; default-src 'none'"})


@bp.route("/compare/<key>")
@role_required("designer")
def compare(key: str):
    versions = engine().versions(key)
    if not versions:
        abort(404)
    by_version = {v["version"]: v for v in versions}
    newest = versions[0]["version"]
    try:
        va = int(request.args.get("a", max(newest - 1, 1)))
        vb = int(request.args.get("b", newest))
    except ValueError:
        abort(400)
    if va not in by_version or vb not in by_version:
        abort(404)
    old, new = engine().definition(by_version[va]["id"]), engine().definition(by_version[vb]["id"])
    return render_template("designer_compare.html", key=key, versions=versions, old=old, new=new,
                           diff=source_diff(old, new), changes=manifest_diff(old["manifest"], new["manifest"]))


@bp.route("/modeler")
@bp.route("/modeler/<int:definition_id>")
@role_required("designer")
def modeler(definition_id: int | None = None):
    d, filename, xml = None, "new_process.bpmn", NEW_DIAGRAM
    if definition_id is not None:
        d = engine().definition(definition_id)
        filename, xml = _main_source(d)
        if xml is None:
            abort(404)
    groups = [g_["name"] for g_ in engine().groups()]
    return render_template("designer_modeler.html", d=d, filename=filename, xml=xml, groups=groups)


@bp.route("/modeler/deploy", methods=["POST"])
@role_required("designer")
def modeler_deploy():
    """JSON ``{"xml", "filename"?, "base_id"?}`` → 200 ``{"ok": true, "deployed": [...]}``,
    or 422 ``{"ok": false, "problems": [...]}`` (nothing stored)."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("xml"), str) or not body["xml"].strip():
        return jsonify({"ok": False, "error": "bad_request", "message": _("请求中没有流程 XML。")}), 400
    filename = PurePath(str(body.get("filename") or "process.bpmn")).name or "process.bpmn"
    files = {filename: body["xml"].encode("utf-8")}
    base_id = body.get("base_id")
    if base_id is not None:
        try:
            base = engine().definition(int(base_id))
        except (TypeError, ValueError):
            return jsonify({"ok": False, "error": "bad_request", "message": "base_id"}), 400
        except NotFound as exc:
            return jsonify({"ok": False, "error": exc.code, "message": str(exc)}), 404
        files.update(_called_files(body["xml"], base.get("sources") or {}, filename))
    try:
        deployed = engine().deploy(files, actor=g.user["name"])
    except InvalidProcess as exc:
        return jsonify({"ok": False, "error": exc.code, "message": str(exc),
                        "problems": [p.as_dict() for p in exc.problems]}), 422
    out = [dict(d.as_dict(), url=url_for(".version", definition_id=d.id)) for d in deployed]
    return jsonify({"ok": True, "deployed": out})

