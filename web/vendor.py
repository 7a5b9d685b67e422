"""Front-end packages from npm (web/package.json), served read-only from web/node_modules.

Only the listed packages are reachable, and only their distribution folders."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, current_app, send_from_directory

bp = Blueprint("vendor", __name__, url_prefix="/vendor")

ALLOWED = {
    "bpmn-js": "dist",
    "htmx.org": "dist",
    "echarts": "dist",
    "bpmn-auto-layout": "dist",
}


@bp.route("/<package>/<path:filename>")
def asset(package: str, filename: str):
    folder = ALLOWED.get(package)
    if folder is None:
        abort(404)
    root = Path(current_app.config["NODE_MODULES"]) / package / folder
    if not root.is_dir():
        abort(404, description=f"front-end package {package} is not installed: run make install")
    response = send_from_directory(root, filename, max_age=86400)
    return response
