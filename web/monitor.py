"""Monitor pages (电子监察)."""

from __future__ import annotations

from flask import Blueprint, render_template

from .auth import role_required

bp = Blueprint("monitor", __name__, url_prefix="/monitor")


@bp.route("/")
@role_required("monitor")
def index():
    return render_template("placeholder.html", title="电子监察")
