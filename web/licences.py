"""Electronic licences on the web: the public verification page, the licence page, the PDF.

``/verify/<licence_no>?c=<code>`` is the one page of the app that needs no sign-in: it is what the
QR code on a printed licence opens. It shows the licence's public face (number, holder, issuer,
items, validity, status) only when the code matches, and the same "not found" for an unknown
number and a wrong code. Everything else here needs a signed-in user who may see the case.
The REST twins live in ``web.api`` (``/api/v1/licences...``, ``/api/v1/verify/...``).
"""

from __future__ import annotations

import io
import os

from flask import Blueprint, current_app, g, render_template, request, url_for
from flask_babel import gettext as _

from engine.errors import NotAllowed, NotFound

from .auth import engine, has_role, login_required

bp = Blueprint("licences", __name__)

NOT_FOUND = "证照不存在或校验码不符"
CODE_TYPES = {"001": "统一社会信用代码", "111": "居民身份证", "099": "其他证件"}


def visible_licence(licence_no: str) -> dict:
    """The licence, if the signed-in user may see its case (monitors and admins see every one)."""
    lic = engine().licence(licence_no)
    if not has_role("monitor") and not engine().may_see_instance(lic["instance_id"], g.user["name"]):
        raise NotAllowed(f"{g.user['name']} may not see licence {licence_no}")
    return lic


def public_base() -> str:
    """Where the public reaches this installation: TONGBAN_PUBLIC_URL (config or environment),
    else the host the request came to."""
    base = current_app.config.get("TONGBAN_PUBLIC_URL") or os.environ.get("TONGBAN_PUBLIC_URL") or request.host_url
    return base.rstrip("/")


def verify_url(lic: dict) -> str:
    """The absolute verification address the QR code carries."""
    return public_base() + url_for("licences.verify", licence_no=lic["licence_no"], c=lic["verify_code"])


# ---- pages ------------------------------------------------------------------------------------
@bp.route("/verify/<licence_no>")
def verify(licence_no: str):
    code = (request.args.get("c") or "").strip()
    if not code:  # typed from paper: ask for the code printed under the QR code
        return render_template("licences/verify.html", licence=None, licence_no=licence_no, ask=True)
    try:
        shown = engine().verify_licence(licence_no, code)
    except NotFound:
        return render_template("licences/verify.html", licence=None, licence_no=licence_no, ask=False,
                               message=_(NOT_FOUND)), 404
    return render_template("licences/verify.html", licence=shown, licence_no=licence_no, ask=False)


@bp.route("/licences/<licence_no>")
@login_required
def licence_page(licence_no: str):
    lic = visible_licence(licence_no)
    return render_template("licences/licence.html", licence=lic, verify_link=verify_url(lic),
                           code_type=CODE_TYPES.get(lic["holder_code_type"], lic["holder_code_type"]))


@bp.app_context_processor
def _globals():
    def case_licences(instance_id: int) -> list[dict]:
        """The licences of a case, for its page (the page already checked who may see it)."""
        return engine().licences(instance_id=instance_id)

    return {"case_licences": case_licences}


# ---- the PDF ----------------------------------------------------------------------------------
def render_pdf(lic: dict, url: str) -> bytes:
    """The printable licence: A4, title, every field of the record, the permit items, and a QR
    code of the verification address (printed beneath it as well, and a link on the code).
    Chinese text uses the PDF viewer's built-in CID font STSong-Light: no font file is needed."""
    from reportlab.graphics import renderPDF
    from reportlab.graphics.barcode.qr import QrCodeWidget
    from reportlab.graphics.shapes import Drawing
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    if "STSong-Light" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    zh = "STSong-Light"
    buf = io.BytesIO()
    width, height = A4
    c = canvas.Canvas(buf, pagesize=A4, invariant=1)
    c.setTitle(f"{lic['name']} {lic['licence_no']}")
    c.setAuthor(lic["issuer"])
    c.setSubject(lic["licence_id"])

    margin = 22 * mm
    c.setStrokeColor(colors.HexColor("#b22222"))
    c.setLineWidth(2)
    c.rect(12 * mm, 12 * mm, width - 24 * mm, height - 24 * mm)
    c.setFillColor(colors.black)
    c.setFont(zh, 26)
    c.drawCentredString(width / 2, height - 40 * mm, lic["name"])
    c.setFont(zh, 11)
    c.drawCentredString(width / 2, height - 48 * mm, "（电子证照）")

    def wrap(text: str, font: str, size: float, room: float) -> list[str]:
        lines, line = [], ""
        for ch in text:
            if pdfmetrics.stringWidth(line + ch, font, size) > room and line:
                lines.append(line)
                line = ""
            line += ch
        return [*lines, line] if line or not lines else lines

    validity = f"{lic['valid_from']} 至 {lic['valid_to']}" if lic["valid_to"] else f"{lic['valid_from']} 起 长期"
    code_type = CODE_TYPES.get(lic["holder_code_type"], "证件号码")
    rows = [("证照编号", lic["licence_no"]), ("证照标识", lic["licence_id"]), ("证照类型代码", lic["type_code"]),
            ("持证主体", lic["holder"]), (code_type, lic["holder_code"]), ("经营场所", lic["address"] or "—"),
            ("许可项目", "、".join(lic["items"]) or "—"), ("有效期限", validity),
            ("发证机关", lic["issuer"]), ("发证机关代码", lic["issuer_code"]), ("行政区划", lic["jurisdiction"]),
            ("发证日期", lic["issued_on"])]
    if lic["status"] == "revoked":
        rows.append(("证照状态", f"已撤销（{(lic['revoked_at'] or '')[:10]}）"))
    y = height - 66 * mm
    label_w = 32 * mm
    for label, value in rows:
        c.setFont(zh, 11)
        c.setFillColor(colors.HexColor("#555555"))
        c.drawString(margin, y, label)
        c.setFillColor(colors.black)
        c.setFont(zh, 12)
        for line in wrap(str(value), zh, 12, width - 2 * margin - label_w):
            c.drawString(margin + label_w, y, line)
            y -= 7 * mm
        y -= 2 * mm

    c.setFont(zh, 12)
    c.drawString(margin, y - 2 * mm, "许可项目明细")
    y -= 10 * mm
    c.setFont(zh, 11)
    for i, item in enumerate(lic["items"] or ["—"], 1):
        for line in wrap(f"{i}. {item}", zh, 11, width - 2 * margin - 60 * mm):
            c.drawString(margin + 4 * mm, y, line)
            y -= 6 * mm

    # the QR code, bottom right, with the address printed beneath and a link on it
    size = 42 * mm
    qr = QrCodeWidget(url, barLevel="M")
    x0, y0, x1, y1 = qr.getBounds()
    drawing = Drawing(size, size, transform=[size / (x1 - x0), 0, 0, size / (y1 - y0), 0, 0])
    drawing.add(qr)
    qx, qy = width - margin - size, 30 * mm
    renderPDF.draw(drawing, c, qx, qy)
    c.linkURL(url, (qx, qy, qx + size, qy + size), relative=0)
    c.setFont(zh, 9)
    c.drawCentredString(qx + size / 2, qy - 4 * mm, "扫码核验")
    c.setFont("Helvetica", 6)
    for i, line in enumerate(wrap(url, "Helvetica", 6, width - 2 * margin)):
        c.drawRightString(width - margin, qy - 9 * mm - i * 2.6 * mm, line)
    c.setFont(zh, 12)
    c.drawString(margin, 40 * mm, lic["issuer"])
    c.drawString(margin, 33 * mm, f"{lic['issued_on'][:4]}年{int(lic['issued_on'][5:7])}月{int(lic['issued_on'][8:10])}日")

    if lic["status"] == "revoked":
        c.saveState()
        c.setFillColor(colors.Color(0.8, 0, 0, alpha=0.35))
        c.setFont(zh, 90)
        c.translate(width / 2, height / 2)
        c.rotate(30)
        c.drawCentredString(0, 0, "已撤销")
        c.restoreState()
    c.showPage()
    c.save()
    return buf.getvalue()
