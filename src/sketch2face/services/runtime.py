"""What the services need from the running instance, provided by whoever runs them.

A service asks for the database session, the object store, the model client, the instance
settings it reads and the signing key through the functions below; the caller installs a
:class:`Runtime` once (the web app: ``web/runtime.py``, which answers from the current Flask app
and request). This keeps Flask out of the service layer without threading five arguments
through every call.
"""

from __future__ import annotations

from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from sketch2face.serving.client import ModelClient
from sketch2face.storage import ObjectStore


class ServiceSettings(Protocol):
    """The instance settings services read (``web.settings.WebSettings`` has them all)."""

    @property
    def max_upload_bytes(self) -> int: ...
    @property
    def max_image_pixels(self) -> int: ...
    @property
    def model_url(self) -> str | None: ...
    @property
    def checkpoint(self) -> str | None: ...


class Runtime(Protocol):
    """The running instance, as the services see it."""

    def session(self) -> Session: ...
    def store(self) -> ObjectStore: ...
    def model_client(self) -> ModelClient: ...
    def settings(self) -> ServiceSettings: ...
    def signing_key(self) -> Ed25519PrivateKey: ...
    def client_address(self) -> str | None: ...


_runtime: Runtime | None = None


def install(runtime: Runtime) -> None:
    """Make ``runtime`` the one the services use (the web app does this in ``create_app``)."""
    global _runtime
    _runtime = runtime


def current() -> Runtime:
    """The installed runtime; RuntimeError when none is."""
    if _runtime is None:
        raise RuntimeError("no service runtime installed (sketch2face.services.runtime.install)")
    return _runtime


def get_session() -> Session:
    """The database session of the current unit of work (the web app: the request's)."""
    return current().session()


def get_store() -> ObjectStore:
    """The instance's object store."""
    return current().store()


def get_model_client() -> ModelClient:
    """The instance's model client (in-process or remote)."""
    return current().model_client()


def get_settings() -> ServiceSettings:
    """The instance settings."""
    return current().settings()


def get_signing_key() -> Ed25519PrivateKey:
    """The instance's Ed25519 signing key."""
    return current().signing_key()


def client_address() -> str | None:
    """The network address of whoever asked (audit events); None outside a request."""
    return _runtime.client_address() if _runtime is not None else None
