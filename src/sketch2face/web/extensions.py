"""Per-app services (settings, object store, model client, limiter, signing key) and their
accessors.

Every service is created per app inside ``create_app`` (not as module globals), so several apps
in one process (tests, the benchmark) never share rate-limit counters or models by accident.
"""

from __future__ import annotations

from typing import cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask, current_app
from flask_limiter import Limiter

from sketch2face.serving.client import ModelClient
from sketch2face.storage import ObjectStore
from sketch2face.web.settings import WebSettings

SETTINGS = "sketch2face.settings"
STORE = "sketch2face.store"
MODEL = "sketch2face.model"
LIMITER = "sketch2face.limiter"
SIGNING_KEY = "sketch2face.signing_key"


def get_settings(app: Flask | None = None) -> WebSettings:
    """The app's :class:`WebSettings`."""
    return cast(WebSettings, (app or current_app).extensions[SETTINGS])


def get_store(app: Flask | None = None) -> ObjectStore:
    """The app's object store."""
    return cast(ObjectStore, (app or current_app).extensions[STORE])


def get_model_client(app: Flask | None = None) -> ModelClient:
    """The app's model client (in-process or remote)."""
    return cast(ModelClient, (app or current_app).extensions[MODEL])


def get_limiter(app: Flask | None = None) -> Limiter:
    """The app's rate limiter."""
    return cast(Limiter, (app or current_app).extensions[LIMITER])


def get_signing_key(app: Flask | None = None) -> Ed25519PrivateKey:
    """This instance's Ed25519 signing key (created or loaded by ``pages.verify.init_app``)."""
    return cast(Ed25519PrivateKey, (app or current_app).extensions[SIGNING_KEY])
