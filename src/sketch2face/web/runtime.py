"""The service runtime of the web app: the request's session and the current app's services."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import has_request_context, request
from sqlalchemy.orm import Session

from sketch2face.serving.client import ModelClient
from sketch2face.storage import ObjectStore
from sketch2face.web import database, extensions
from sketch2face.web.settings import WebSettings


class FlaskRuntime:
    """Answers from ``flask.current_app`` and ``flask.request``, so one instance serves every app
    in the process (tests and the benchmark build several)."""

    def session(self) -> Session:
        return database.get_session()

    def store(self) -> ObjectStore:
        return extensions.get_store()

    def model_client(self) -> ModelClient:
        return extensions.get_model_client()

    def settings(self) -> WebSettings:
        return extensions.get_settings()

    def signing_key(self) -> Ed25519PrivateKey:
        return extensions.get_signing_key()

    def client_address(self) -> str | None:
        return request.remote_addr if has_request_context() else None
