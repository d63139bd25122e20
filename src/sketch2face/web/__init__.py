"""The sketch2face web app: accounts, studio (new generation, history), admin pages and API.

Production: ``gunicorn 'sketch2face.web:create_app()'`` (settings from ``SKETCH2FACE_*`` env vars,
see docs/web.md). One machine: ``sketch2face serve``.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from flask import Flask, redirect, url_for
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFProtect

from sketch2face.errors import ConfigError
from sketch2face.storage import open_store
from sketch2face.web import db
from sketch2face.web.extensions import LIMITER, MODEL, SETTINGS, STORE
from sketch2face.web.model_client import InProcessModelClient, ModelClient, RemoteModelClient
from sketch2face.web.settings import WebSettings

log = logging.getLogger(__name__)

__all__ = ["WebSettings", "create_app"]


def create_app(
    settings: WebSettings | None = None, *, model_client: ModelClient | None = None
) -> Flask:
    """Build the app: settings, database (migrated), store, model client, security, blueprints.

    Nothing heavy happens here: the model loads on the first generation.
    """
    settings = settings or WebSettings.from_env()
    if not settings.secret_key:
        if not (settings.debug or settings.testing):
            raise ConfigError(
                "SKETCH2FACE_SECRET_KEY is not set; set it (e.g. `python -c 'import secrets; "
                "print(secrets.token_urlsafe(48))'`) or use `sketch2face serve`, which keeps one "
                "in the data folder."
            )
        settings = settings.replace(secret_key="insecure-debug-only-" + "x" * 16)

    app = Flask(__name__, instance_path=str(settings.data_dir.resolve()))
    app.config.update(
        SECRET_KEY=settings.secret_key,
        DEBUG=settings.debug,
        TESTING=settings.testing,
        MAX_CONTENT_LENGTH=settings.max_upload_bytes + 64 * 1024,  # room for the form fields
        SESSION_COOKIE_NAME="sketch2face_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.use_secure_cookies,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=settings.use_secure_cookies,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        WTF_CSRF_TIME_LIMIT=None,  # token lives as long as the session
        RATELIMIT_ENABLED=settings.ratelimit_enabled,
        RATELIMIT_STORAGE_URI=settings.ratelimit_storage_uri,
        RATELIMIT_HEADERS_ENABLED=True,
    )
    app.config.update(settings.extra_flask_config)
    app.extensions[SETTINGS] = settings
    if settings.behind_proxy:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]

    db.init_app(app, settings.resolved_database_url)
    if settings.auto_migrate:
        db.upgrade_database(db.get_engine(app))
    app.extensions[STORE] = open_store(
        settings.resolved_storage_url, options=settings.storage_options()
    )
    app.extensions[MODEL] = model_client or _default_model_client(settings)

    CSRFProtect(app)
    _init_login(app)

    from sketch2face.web import api, auth, errors, studio

    app.register_blueprint(auth.bp)
    app.register_blueprint(studio.bp)
    app.register_blueprint(api.bp)
    app.extensions["csrf"].exempt(api.bp)  # token-authenticated, no cookies: CSRF cannot apply
    errors.init_app(app)
    _init_limiter(app, settings)

    @app.get("/")
    def index() -> Any:
        return redirect(url_for("studio.new" if current_user.is_authenticated else "auth.login"))

    @app.get("/healthz")
    def healthz() -> Any:
        return {"status": "ok", "model": app.extensions[MODEL].describe()}

    @app.after_request
    def security_headers(response: Any) -> Any:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
            "frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
        )
        return response

    return app


def _default_model_client(settings: WebSettings) -> ModelClient:
    if settings.model_url:
        return RemoteModelClient(
            settings.model_url, token=settings.model_token, timeout_s=settings.model_timeout_s
        )
    return InProcessModelClient(settings.checkpoint, settings.device, max_batch=settings.max_batch)


def _init_login(app: Flask) -> None:
    from sketch2face.web.models import User

    login_manager = LoginManager(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"

    @login_manager.user_loader
    def load_user(session_id: str) -> User | None:
        user_id, _, nonce = session_id.partition(".")
        if not user_id.isdigit():
            return None
        user = db.get_session().get(User, int(user_id))
        if user is None or not user.is_active or user.session_nonce != nonce:
            return None  # deactivated, or the password changed since this session began
        return user


def _init_limiter(app: Flask, settings: WebSettings) -> None:
    """Rate limits for sign-in (per IP) and generation (per user), one Limiter per app."""
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    from sketch2face.web.api import api_user_key
    from sketch2face.web.studio import web_user_key

    limiter = Limiter(
        key_func=get_remote_address,
        storage_uri=settings.ratelimit_storage_uri,
        default_limits=[],
    )
    limiter.init_app(app)
    app.extensions[LIMITER] = limiter
    limits = {
        "auth.login": (settings.login_rate_limit, get_remote_address),
        "studio.new": (settings.generate_rate_limit, web_user_key),
        "api.generate": (settings.generate_rate_limit, api_user_key),
    }
    for endpoint, (limit, key_func) in limits.items():
        view = app.view_functions[endpoint]
        app.view_functions[endpoint] = limiter.limit(limit, key_func=key_func, methods=["POST"])(
            view
        )
