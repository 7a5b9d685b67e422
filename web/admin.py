"""Admin pages: users, departments, groups, tokens."""

from __future__ import annotations

from flask import Blueprint, render_template

from .auth import role_required

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.route("/")
@role_required("admin")
def index():
    return render_template("placeholder.html", title="系统管理")
