"""Health checks: ``/healthz`` is liveness (the process answers; nothing else is asked),
``/readyz`` is readiness: database, image storage and model tier, each with what it found
(200 when all are ready, else 503). Operations: docs/operations.md."""

from __future__ import annotations

import shutil
import time
from typing import Any

import sqlalchemy as sa
from flask import Flask

from sketch2face.web.database import get_engine
from sketch2face.web.extensions import MODEL, STORE
from sketch2face.web.security.headers import NO_STORE

#: local storage with less free space than this is reported as not ready (disk nearly full)
MIN_FREE_BYTES = 64 * 1024 * 1024
PROBE_KEY = "readiness/probe"


def check_database(app: Flask) -> dict[str, Any]:
    """``SELECT 1`` on a fresh connection from the app's pool."""
    started = time.monotonic()
    try:
        with get_engine(app).connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        return {"ok": False, "error": type(exc).__name__, "detail": str(exc.args[0])[:200]}
    return {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1)}


def check_storage(app: Flask) -> dict[str, Any]:
    """A local folder: free space; any store: a lookup of a key that need not exist."""
    store = app.extensions[STORE]
    result: dict[str, Any] = {"ok": True}
    root = getattr(store, "root", None)
    try:
        if root is not None:
            free = shutil.disk_usage(root).free
            result["free_bytes"] = free
            if free < MIN_FREE_BYTES:
                result.update(ok=False, error="disk nearly full")
        store.exists(PROBE_KEY)
    except Exception as exc:  # any backend's failure means "not ready"
        result.update(ok=False, error=type(exc).__name__, detail=str(exc)[:200])
    return result


def check_model(app: Flask) -> dict[str, Any]:
    """The model client's own health check (remote: its server's /v1/health, briefly)."""
    client = app.extensions[MODEL]
    check = getattr(client, "check_health", None)
    if check is None:
        return {"ok": True, **client.describe()}
    ok, detail = check()
    return {"ok": ok, "detail": detail, **client.describe()}


def init_app(app: Flask) -> None:
    """Register ``/healthz`` and ``/readyz``."""

    @app.get("/healthz")
    def healthz() -> Any:
        return {"status": "ok", "model": app.extensions[MODEL].describe()}

    @app.get("/readyz")
    def readyz() -> Any:
        checks = {
            "database": check_database(app),
            "storage": check_storage(app),
            "model": check_model(app),
        }
        ready = all(c["ok"] for c in checks.values())
        body = {"status": "ready" if ready else "not ready", "checks": checks}
        return body, 200 if ready else 503, {"Cache-Control": NO_STORE}
