"""Sign-in, sessions, CSRF, bearer tokens and role checks.

Pages use a session cookie; every state-changing request carries the session's CSRF token
(form field ``csrf_token`` or header ``X-CSRF-Token``, which htmx sends from the page).
API clients send ``Authorization: Bearer <token>`` (tokens an admin issues); a bearer
request needs no CSRF token because the browser never adds that header by itself.
"""

from __future__ import annotations

import hmac
import secrets
import time
from functools import wraps
from urllib.parse import urlparse

from flask import Blueprint, abort, current_app, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from engine.errors import EngineError, NotAllowed

bp = Blueprint("auth", __name__)

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def engine():
    return current_app.extensions["tongban"]


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def has_role(*roles: str) -> bool:
    user = g.get("user")
    if not user:
        return False
    held = set(user["roles"])
    return "admin" in held or bool(held & set(roles))


def _load_user():
    g.user = None
    g.via_token = False
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        user = engine().user_for_token(header[7:].strip())
        g.user, g.via_token = user, user is not None
        return
    name = session.get("user")
    if name:
        sid = session.get("sid")
        if not sid:  # signed in before sessions had their own id: it cannot be ended alone, so sign in again
            _clear_keeping_language()
            return
        try:
            g.user = engine().session_user(name, session.get("epoch"), sid)
        except EngineError:
            g.user = None
        if g.user is None:  # signed out, a new password, deactivated: the session has ended
            session.clear()
            return
        ended = _timed_out(time.time())
        if ended:
            # 登录连接超时自动退出: an idle or over-long session ends, here and for copies of its cookie
            try:
                engine().end_session(name, sid, ended)
            except EngineError:
                pass
            g.user = None
            _clear_keeping_language()
            g.session_ended = ended
            return
        session["seen"] = int(time.time())


def _limit_seconds(key: str) -> float:
    value = current_app.config.get(key)
    return float(value) * 60 if value else 0.0


def _timed_out(now: float) -> str | None:
    """``idle`` after TONGBAN_SESSION_IDLE_MINUTES without a request, ``expired`` after
    TONGBAN_SESSION_MAX_HOURS since signing in (0 turns a limit off); None while the session is live.
    A session without the stamps (signed in before they existed) counts from now."""
    idle, longest = _limit_seconds("SESSION_IDLE_MINUTES"), _limit_seconds("SESSION_MAX_HOURS") * 60
    seen, since = session.get("seen") or now, session.get("since") or now
    if idle and now - seen > idle:
        return "idle"
    if longest and now - since > longest:
        return "expired"
    session.setdefault("since", int(now))
    return None


def _clear_keeping_language():
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang


def _check_csrf():
    if request.method in SAFE_METHODS or g.get("via_token"):
        return
    if request.path.startswith("/api/") and not g.get("user"):
        return  # nothing to protect: the API answers 401 without credentials
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""
    expected = session.get("csrf", "")
    if not expected or not hmac.compare_digest(sent, expected):
        abort(400, description="CSRF token missing or wrong: reload the page and try again")


def _to_sign_in():
    return redirect(url_for("auth.login", next=request.full_path, ended=g.get("session_ended")))


def login_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        if not g.get("user"):
            return _to_sign_in()
        return view(*args, **kwargs)

    return wrapper


def role_required(*roles: str):
    """The signed-in user must hold one of ``roles`` (admin holds them all)."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if not g.get("user"):
                return _to_sign_in()
            if not has_role(*roles):
                abort(403)
            return view(*args, **kwargs)

        return wrapper

    return decorator


def _safe_next(target: str | None) -> str:
    if target and urlparse(target).netloc == "" and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("inbox.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        name = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        try:
            user = engine().sign_in(name, password, client=request.remote_addr or "")
        except NotAllowed:
            user, error = None, _("登录失败次数过多，请 15 分钟后再试。")
        if user is None and error is None:
            error = _("用户名或密码错误。")
        if user is not None:
            _clear_keeping_language()
            session["user"] = user["name"]
            session["epoch"] = user["session_epoch"]
            session["sid"] = secrets.token_urlsafe(24)  # this browser's session, to end it alone
            session["since"] = session["seen"] = int(time.time())
            session.permanent = True
            return redirect(_safe_next(request.args.get("next")))
        return render_template("login.html", error=error, username=name), 401 if error else 200
    notice = ENDED_NOTICES.get(request.args.get("ended", ""))
    return render_template("login.html", error=None, username="", notice=notice() if notice else None)


ENDED_NOTICES = {
    "idle": lambda: _("长时间未操作，已自动退出，请重新登录。"),
    "expired": lambda: _("登录时间已到上限，已自动退出，请重新登录。"),
}


@bp.route("/logout", methods=["POST"])
def logout():
    """Sign out of this browser (a copy of its cookie no longer signs in either); with
    ``everywhere=1``, out of every browser and device the user signed in on."""
    user = g.get("user")
    if user and not g.get("via_token"):
        if request.form.get("everywhere") == "1":
            engine().end_sessions(user["name"])
        else:
            engine().end_session(user["name"], session["sid"])
    _clear_keeping_language()
    return redirect(url_for("auth.login"))


def init_app(app) -> None:
    app.before_request(_load_user)
    app.before_request(_check_csrf)

    @app.context_processor
    def _globals():
        counts = None
        if g.get("user") and request.endpoint and not request.endpoint.startswith("api."):
            try:
                counts = engine().task_counts(g.user["name"])
            except EngineError:
                counts = None
        return {"csrf_token": csrf_token, "current_user": g.get("user"), "has_role": has_role,
                "task_counts": counts}
