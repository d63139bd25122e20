"""API authentication: ``Authorization: Bearer <token>`` resolved to an active user (per-user
tokens, no cookies, so no CSRF), and the rate-limit key of a token's user."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Response, g, jsonify, request
from flask_limiter.util import get_remote_address

from sketch2face.db.models import ApiToken, as_utc, utcnow
from sketch2face.services.accounts import hash_api_token
from sketch2face.services.users import api_token_by_hash
from sketch2face.web.database import get_session

F = TypeVar("F", bound=Callable[..., Any])


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _valid_token() -> ApiToken | None:
    """The live token of an active account that the request sends, looked up once per request
    (the rate limiter asks before the view does)."""
    if "api_token" not in g:
        token = _bearer()
        row = None
        if token is not None:
            row = api_token_by_hash(get_session(), hash_api_token(token))
        if row is not None and (row.revoked_at is not None or not row.user.is_active):
            row = None
        g.api_token = row
    return cast("ApiToken | None", g.api_token)


def api_user_key() -> str:
    """Rate-limit key: the token's user (the same key as the web pages, so neither more tokens
    nor switching between API and pages buys more generations), else the client address."""
    row = _valid_token()
    if row is not None:
        return f"user:{row.user_id}"
    return f"ip:{get_remote_address()}"


def token_required(view: F) -> F:
    """Resolve ``Authorization: Bearer <token>`` to an active user in ``g.api_user``, else 401."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if _bearer() is None:
            return _unauthorized(
                "Send an API token: `Authorization: Bearer <token>` (create one on /tokens)."
            )
        row = _valid_token()
        if row is None:
            return _unauthorized("The API token is unknown, revoked, or its account is disabled.")
        now = utcnow()
        if row.last_used_at is None or now - as_utc(row.last_used_at) > timedelta(minutes=1):
            row.last_used_at = now  # throttled: not a write on every call
            get_session().commit()
        g.api_user = row.user
        return view(*args, **kwargs)

    return cast(F, wrapped)


def _unauthorized(message: str) -> Response:
    response = jsonify(error=message, status=401)
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer realm="sketch2face"'
    return response
