"""One error handler for the whole app: JSON for API clients, a readable page for people."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from ..errors import RecordingExists, ServiceUnavailable, SignpipeError, StorageFull, UploadRejected
from ..jobs import ActionRefused

log = logging.getLogger(__name__)
API_PREFIXES = ("/api/", "/upload", "/extract_status/", "/healthz", "/livez", "/download/", "/files")


def wants_json_response() -> bool:
    """API routes and clients that prefer JSON get JSON; browsers asking for pages get HTML."""
    if request.path.startswith(API_PREFIXES) and not request.path.startswith("/download/"):
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return (
        best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]
    )


def error_response(status: int, message: str, details: object = None):
    if wants_json_response():
        body = {"error": message}
        if details is not None:
            body["details"] = details
        return jsonify(body), status
    return render_template("error.html", status=status, message=message, details=details), status


def status_for(exc: SignpipeError) -> int:
    if isinstance(exc, UploadRejected):
        return exc.status
    if isinstance(exc, StorageFull):
        return 507
    if isinstance(exc, RecordingExists):
        return 409
    if isinstance(exc, ServiceUnavailable):
        return 503
    return 400


def register(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return error_response(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(SignpipeError)
    def domain_error(exc: SignpipeError):
        return error_response(status_for(exc), exc.message, exc.details)

    @app.errorhandler(ActionRefused)
    def action_refused(exc: ActionRefused):
        return error_response(exc.status, exc.message)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "Internal server error")
