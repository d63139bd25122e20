"""Error handlers: JSON for /api/, clear HTML pages elsewhere."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from flask import Flask, g, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge

from sketch2face.errors import InvalidImageError
from sketch2face.serving.client import ModelUnavailableError
from sketch2face.storage import StorageError

log = logging.getLogger(__name__)

_HINTS = {
    400: "The request could not be used. Check the form and try again.",
    401: "Sign in first.",
    403: "You do not have permission to do that.",
    404: "There is nothing here, or it belongs to someone else.",
    405: "That action is not allowed on this page.",
    413: "The upload is too large.",
    429: "Too many attempts. Wait a minute and try again.",
    500: "Something went wrong on our side. The error was logged.",
    503: "The model is not available right now. Try again shortly.",
}
#: a database that is stopped, unreachable or out of disk space (issue 25)
DATABASE_UNAVAILABLE = (
    "The database is not available right now (stopped, unreachable or its disk is full), so "
    "nothing was saved or shown. Reading evidence needs it too: every access is recorded in the "
    "audit log first. Try again shortly."
)
STORAGE_UNAVAILABLE = (
    "Image storage is not available right now (unreachable, or its disk is full); nothing was "
    "saved. Try again shortly."
)
RETRY_AFTER_S = "30"


def wants_json() -> bool:
    """API paths and clients that ask for JSON get JSON errors."""
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return (
        best == "application/json"
        and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]
    )


def error_response(status: int, message: str, title: str | None = None) -> Any:
    """One error as JSON ``{"error": ..., "status": ...}`` or as the error page."""
    if wants_json():
        response = jsonify(error=message, status=status)
        response.status_code = status
        return response
    return (
        render_template(
            "error.html", status=status, title=title or f"Error {status}", message=message
        ),
        status,
    )


def init_app(app: Flask) -> None:
    """Register the handlers on ``app``."""

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> Any:
        return error_response(
            400,
            "The form expired or was sent from elsewhere (CSRF check failed). "
            "Reload the page and submit again.",
            "Form expired",
        )

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: RequestEntityTooLarge) -> Any:
        limit = app.config["MAX_CONTENT_LENGTH"]
        return error_response(
            413,
            f"The upload exceeds the limit of {limit // (1024 * 1024)} MiB; "
            "resize or compress the sketch.",
            "Upload too large",
        )

    @app.errorhandler(InvalidImageError)
    def invalid_image(exc: InvalidImageError) -> Any:
        return error_response(400, str(exc), "Not a usable image")

    @app.errorhandler(ModelUnavailableError)
    def model_unavailable(exc: ModelUnavailableError) -> Any:
        log.error("model unavailable: %s", exc)
        return error_response(503, _HINTS[503], "Model unavailable")

    @app.errorhandler(StorageError)
    def storage_error(exc: StorageError) -> Any:
        log.error("storage error: %s", exc)
        return _unavailable(STORAGE_UNAVAILABLE, "Storage unavailable")

    @app.errorhandler(sa.exc.OperationalError)
    @app.errorhandler(sa.exc.InterfaceError)
    def database_unavailable(exc: sa.exc.DBAPIError) -> Any:
        log.error("database unavailable on %s %s: %s", request.method, request.path, exc.orig)
        session = g.pop("db_session", None)
        if session is not None:  # its transaction is broken; the error page needs none
            try:
                session.close()
            except sa.exc.SQLAlchemyError:
                log.debug("closing the request session failed too", exc_info=True)
        # the page shows no signed-in navigation: loading the user would ask the database again
        g._login_user = app.login_manager.anonymous_user()  # type: ignore[attr-defined]
        g.can_search_gallery = False
        return _unavailable(DATABASE_UNAVAILABLE, "Database unavailable")

    def _unavailable(message: str, title: str) -> Any:
        response = app.make_response(error_response(503, message, title))
        response.headers["Retry-After"] = RETRY_AFTER_S
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        message = exc.description if exc.description and status != 500 else _HINTS.get(status, "")
        if status == 429:
            message = f"Too many requests ({exc.description}). Wait a minute and try again."
        response = error_response(status, message or _HINTS.get(status, exc.name), exc.name)
        if status == 405 and hasattr(exc, "valid_methods") and exc.valid_methods:
            response = app.make_response(response)
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        if isinstance(exc, HTTPException):
            return http_error(exc)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, _HINTS[500], InternalServerError().name)
