"""Designer pages: processes and versions, upload with validation report, compare, modeler."""

from __future__ import annotations

from flask import Blueprint, render_template

from .auth import role_required

bp = Blueprint("designer", __name__, url_prefix="/designer")


@bp.route("/")
@role_required("designer")
def index():
    return render_template("placeholder.html", title="流程设计")
