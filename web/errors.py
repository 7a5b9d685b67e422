"""Engine errors → HTTP, in one place. The API answers JSON ``{"error": code, "message": ...}``
(plus ``fields`` for validation and ``problems`` for rejected uploads); pages get an error page."""

from __future__ import annotations

import logging

from flask import jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from engine.errors import (
    Conflict,
    ConnectorError,
    EngineError,
    Invalid,
    InvalidProcess,
    NotAllowed,
    NotFound,
    ScriptError,
)

log = logging.getLogger("tongban.web")

STATUS = [(Invalid, 400), (InvalidProcess, 400), (NotFound, 404), (NotAllowed, 403), (Conflict, 409),
          (ScriptError, 422), (ConnectorError, 503)]

HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
              422: "unprocessable", 429: "too_many_requests", 500: "internal_error"}


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def engine_error_body(exc: EngineError) -> tuple[dict, int]:
    status = next((code for cls, code in STATUS if isinstance(exc, cls)), 400)
    body = {"error": exc.code, "message": str(exc)}
    if isinstance(exc, Invalid):
        body["fields"] = exc.fields
    if isinstance(exc, InvalidProcess):
        body["problems"] = [p.as_dict() for p in exc.problems]
    return body, status


def error_response(status: int, message: str, code: str | None = None, **extra):
    code = code or HTTP_CODES.get(status, "error")
    if wants_json():
        return jsonify({"error": code, "message": message, **extra}), status
    return render_template("error.html", status=status, message=message), status


def init_app(app) -> None:
    @app.errorhandler(EngineError)
    def _engine_error(exc):
        body, status = engine_error_body(exc)
        if wants_json():
            return jsonify(body), status
        return render_template("error.html", status=status, message=body["message"]), status

    @app.errorhandler(HTTPException)
    def _http_error(exc):
        return error_response(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc):
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, "internal error; the administrator can find it in the log")
