"""The Tongban web app: a thin Flask adapter over ``engine.api.Engine``.

``create_app()`` builds the app (gunicorn: ``gunicorn 'web:create_app()'``); every view calls
the engine and maps its errors in one place (``web.errors``).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from flask import Flask

from engine.api import Engine

HERE = Path(__file__).resolve().parent


def create_app(engine: Engine | None = None, config: dict | None = None) -> Flask:
    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.config.update(
        SECRET_KEY=os.environ.get("TONGBAN_SECRET_KEY") or _secret_key(),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=os.environ.get("TONGBAN_SECURE_COOKIES") == "1",
        MAX_CONTENT_LENGTH=int(os.environ.get("TONGBAN_MAX_UPLOAD_BYTES", 10 * 1024 * 1024)) + 64 * 1024,
        BABEL_DEFAULT_LOCALE="zh_Hans",
        BABEL_TRANSLATION_DIRECTORIES=str(HERE / "translations"),
        NODE_MODULES=str(HERE / "node_modules"),
        # 登录连接超时自动退出 (GB/T 22239 等保): idle minutes, and hours since signing in; 0 = no limit
        SESSION_IDLE_MINUTES=float(os.environ.get("TONGBAN_SESSION_IDLE_MINUTES", 30)),
        SESSION_MAX_HOURS=float(os.environ.get("TONGBAN_SESSION_MAX_HOURS", 12)),
    )
    if config:
        app.config.update(config)
    if engine is None:
        engine = Engine(app.config.get("DATABASE_URL"))
        engine.upgrade()
    app.extensions["tongban"] = engine

    from . import admin, api, auth, designer, errors, i18n, inbox, licences, monitor, vendor

    i18n.init_app(app)
    auth.init_app(app)
    errors.init_app(app)
    for module in (auth, inbox, designer, monitor, admin, api, vendor, licences):
        app.register_blueprint(module.bp)
    app.after_request(_security_headers)
    return app


def _security_headers(response):
    """On every answer: no sniffing a type other than the one declared, no framing by other sites
    (clickjacking), no plug-ins, no <base> elsewhere, the path only as referrer to other sites.
    Answers that carry uploaded content set a stricter policy of their own first."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'; object-src 'none'; base-uri 'self'")
    return response


def _secret_key() -> str:
    """A per-installation key kept next to the database (sessions survive restarts),
    or a random one per process when no file can be written."""
    path = Path(os.environ.get("TONGBAN_SECRET_FILE", ".tongban-secret"))
    try:
        if path.exists():
            return path.read_text().strip()
        key = secrets.token_hex(32)
        path.write_text(key)
        path.chmod(0o600)
        return key
    except OSError:
        return secrets.token_hex(32)
