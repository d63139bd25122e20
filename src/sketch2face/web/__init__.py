"""The sketch2face web app: accounts, studio (new generation, history), admin pages and API.

Production: ``gunicorn 'sketch2face.web:create_app()'`` (settings from ``SKETCH2FACE_*`` env vars,
see docs/web.md). One machine: ``sketch2face serve``.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, redirect, url_for
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFProtect

from sketch2face.db.engine import upgrade_database
from sketch2face.errors import ConfigError
from sketch2face.services.runtime import install as install_service_runtime
from sketch2face.serving.client import InProcessModelClient, ModelClient, RemoteModelClient
from sketch2face.storage import open_store
from sketch2face.web import database, routing
from sketch2face.web.extensions import LIMITER, MODEL, SETTINGS, STORE
from sketch2face.web.requests import StrictRequest
from sketch2face.web.runtime import FlaskRuntime
from sketch2face.web.security import headers
from sketch2face.web.security.sessions import SESSION_LIFETIME, load_session_user
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
    app.request_class = StrictRequest  # form text that is not UTF-8 is a 400 (issue 25)
    routing.install(app.url_map)  # before any route: out-of-range <int:> ids are 404
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
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,  # the cookie's signature; see web/security/sessions.py
        WTF_CSRF_TIME_LIMIT=None,  # token lives as long as the session
        RATELIMIT_ENABLED=settings.ratelimit_enabled,
        RATELIMIT_STORAGE_URI=settings.ratelimit_storage_uri,
        RATELIMIT_HEADERS_ENABLED=True,
    )
    app.config.update(settings.extra_flask_config)
    app.session_interface = headers.SessionInterface()  # Secure flag per request (HTTPS or not)
    app.extensions[SETTINGS] = settings
    install_service_runtime(
        FlaskRuntime()
    )  # what the services read: this request's app and session
    if settings.behind_proxy:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]

    database.init_app(app, settings.resolved_database_url)
    if settings.auto_migrate:
        upgrade_database(database.get_engine(app))
    app.extensions[STORE] = open_store(
        settings.resolved_storage_url, options=settings.storage_options()
    )
    app.extensions[MODEL] = model_client or _default_model_client(settings)

    CSRFProtect(app)
    _init_login(app)

    from sketch2face.web import errors, gallery_search, health
    from sketch2face.web.api import cases as cases_api
    from sketch2face.web.api import gallery as gallery_api
    from sketch2face.web.api import generations, openapi
    from sketch2face.web.pages import (
        appeal_sheets,
        auth,
        candidates,
        cases,
        gallery,
        studio,
        verify,
    )

    # In the order they were registered before the pages and the API had their own packages.
    # The API is token-authenticated (no cookies), so CSRF cannot apply to it; the gallery
    # enrolment upload raises the request size limit first and then checks CSRF itself
    # (CSRFProtect would parse the form under the app-wide limit).
    csrf = app.extensions["csrf"]
    for blueprint, is_api in (
        (auth.bp, False),
        (studio.bp, False),
        (generations.bp, True),
        (openapi.bp, True),
        (gallery.bp, False),
        (gallery_api.api_bp, True),
    ):
        app.register_blueprint(blueprint)
        if is_api:
            csrf.exempt(blueprint)
    csrf.exempt(gallery.enrol)
    gallery_search.init_app(app)  # gallery searcher and error page (issue 13)
    verify.init_app(app)  # instance signing key, the verify page (issue 12)
    for blueprint in (cases.bp, candidates.bp, appeal_sheets.bp, cases_api.bp):
        app.register_blueprint(blueprint)
    csrf.exempt(cases_api.bp)
    errors.init_app(app)
    _init_limiter(app, settings)

    @app.get("/")
    def index() -> Any:
        return redirect(url_for("studio.new" if current_user.is_authenticated else "auth.login"))

    health.init_app(app)  # /healthz (liveness), /readyz (database, storage, model tier)

    app.after_request(headers.add_security_headers)
    return app


def _default_model_client(settings: WebSettings) -> ModelClient:
    if settings.model_url:
        return RemoteModelClient(
            settings.model_url, token=settings.model_token, timeout_s=settings.model_timeout_s
        )
    return InProcessModelClient(
        settings.checkpoint,
        settings.device,
        max_batch=settings.max_batch,
        refiner=settings.refiner,
    )


def _init_login(app: Flask) -> None:
    login_manager = LoginManager(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"

    login_manager.user_loader(load_session_user)


def _init_limiter(app: Flask, settings: WebSettings) -> None:
    """Rate limits, one Limiter per app: generations per user, pages and API sharing one
    allowance (both key functions answer ``user:<id>``; the scope is shared).

    Sign-in has no per-address limit here: it locked out everyone behind one address. Failed
    sign-ins back off per account at an address and per address instead (web/security/throttle.py).
    """
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    from sketch2face.web.api.auth import api_user_key
    from sketch2face.web.pages.studio import web_user_key

    limiter = Limiter(
        key_func=get_remote_address,
        storage_uri=settings.ratelimit_storage_uri,
        default_limits=[],
    )
    limiter.init_app(app)
    app.extensions[LIMITER] = limiter
    limits = {
        "studio.new": (settings.generate_rate_limit, "generate", web_user_key),
        "api.generate": (settings.generate_rate_limit, "generate", api_user_key),
    }
    for endpoint, (limit, scope, key_func) in limits.items():
        view = app.view_functions[endpoint]
        app.view_functions[endpoint] = limiter.shared_limit(
            limit, scope, key_func=key_func, methods=["POST"]
        )(view)
    # candidate rounds share the same allowance, each face counting as one generation
    from sketch2face.web.pages.candidates import rate_cost

    for endpoint, key_func in (
        ("candidates.generate", web_user_key),
        ("candidates.choose", web_user_key),
        ("cases_api.generate_candidates", api_user_key),
        ("cases_api.next_round", api_user_key),
    ):
        app.view_functions[endpoint] = limiter.shared_limit(
            settings.generate_rate_limit,
            "generate",
            key_func=key_func,
            methods=["POST"],
            cost=rate_cost,
        )(app.view_functions[endpoint])
