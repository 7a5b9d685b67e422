"""Clerk pages: inbox, task page, start an application, instance pages."""

from __future__ import annotations

from flask import Blueprint, render_template

from .auth import login_required

bp = Blueprint("inbox", __name__)


@bp.route("/")
@login_required
def index():
    return render_template("placeholder.html", title="待办")


@bp.route("/start")
@login_required
def start():
    return render_template("placeholder.html", title="受理申请")


@bp.route("/instances")
@login_required
def instances():
    return render_template("placeholder.html", title="办件")
