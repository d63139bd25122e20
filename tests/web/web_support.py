"""Helpers for the web tests (imported by conftest and the test modules)."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from PIL import Image

PASSWORD = "correct horse battery staple"


#: apps made during the current test; conftest disposes their engines afterwards
CREATED_APPS: list[Any] = []


def make_app(settings: Any, model_client: Any) -> Any:
    """A migrated app with users alice, bob (investigators) and root (admin)."""
    from sketch2face.web import create_app
    from sketch2face.web.database import new_session
    from sketch2face.web.pages.auth import create_user

    flask_app = create_app(settings, model_client=model_client)
    CREATED_APPS.append(flask_app)
    with new_session(flask_app) as session:
        create_user(session, "alice", PASSWORD)
        create_user(session, "bob", PASSWORD)
        create_user(session, "root", PASSWORD, "admin")
        session.commit()
    return flask_app


class WebClient:
    """Flask test client that signs in and adds the CSRF token to form posts (CSRF stays on)."""

    def __init__(self, flask_app: Any, *, address: str | None = None) -> None:
        self.app = flask_app
        self.http = flask_app.test_client()
        if address is not None:  # the client's network address, as REMOTE_ADDR
            self.http.environ_base["REMOTE_ADDR"] = address
        self._csrf: str | None = None

    def csrf_token(self) -> str:
        if self._csrf is None:
            response = self.http.get("/login")
            if response.status_code == 302:  # signed in: any page has the sign-out form
                response = self.http.get("/new")
            page = response.get_data(as_text=True)
            match = re.search(
                r'name="csrf_token" type="hidden" value="([^"]+)"', page
            ) or re.search(r'name="csrf_token" value="([^"]+)"', page)
            assert match, "no CSRF token on the page"
            self._csrf = match.group(1)
        return self._csrf

    def get(self, path: str, **kw: Any) -> Any:
        return self.http.get(path, **kw)

    def post(self, path: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
        """POST a form with the session's CSRF token."""
        payload = dict(data or {})
        payload.setdefault("csrf_token", self.csrf_token())
        return self.http.post(path, data=payload, **kw)

    def login(self, username: str, password: str = PASSWORD) -> Any:
        response = self.post("/login", {"username": username, "password": password})
        self._csrf = None  # flask-login rotates nothing, but the session may be new
        return response

    def generate(self, image: bytes | None = None, **fields: Any) -> Any:
        """POST /new with a sketch; returns the response (302 to the result on success)."""
        data = {"sketch": (io.BytesIO(image if image is not None else sketch_png()), "sketch.png")}
        data.update(fields)
        return self.post("/new", data, content_type="multipart/form-data")


@contextmanager
def serving_at(app: Any) -> Iterator[str]:
    """Serve the WSGI ``app`` on a free local port (real HTTP, in a thread); yields its base URL
    and shuts it down afterwards."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


@contextmanager
def running_model_server(model_client: Any, token: str | None = "model-secret") -> Iterator[str]:
    """serve-model's app on a random local port (with a bearer token unless ``token`` is None);
    yields its base URL and shuts it down afterwards."""
    from sketch2face.serving.server import create_model_app

    with serving_at(create_model_app(model_client, token=token)) as base:
        yield base


def sketch_png(size_px: int = 48) -> bytes:
    """A small line drawing: dark ellipse and strokes on white, as PNG bytes."""
    img = np.full((size_px, size_px, 3), 255, dtype=np.uint8)
    yy, xx = np.mgrid[:size_px, :size_px]
    ring = np.abs(
        ((xx - size_px / 2) / (size_px * 0.35)) ** 2
        + ((yy - size_px / 2) / (size_px * 0.45)) ** 2
        - 1
    )
    img[ring < 0.12] = 20
    img[size_px // 3, size_px // 3 : size_px // 3 + 4] = 20
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def blank_png(width: int, height: int) -> bytes:
    """A white PNG of any size (for the minimum size and aspect ratio checks)."""
    buf = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(buf, format="PNG")
    return buf.getvalue()


def generation_id_from(response: Any) -> str:
    """The generation id in a redirect to /generations/<id>."""
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return response.headers["Location"].rstrip("/").split("/")[-1]


class RefiningModelClient:
    """Wraps a model client and says refinement is available (as with GFPGAN weights
    configured), to test what the pages offer then; generations still run the wrapped model."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.generate(*args, **kwargs)

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "refine_available": True}

    def refine_available(self) -> bool:
        return True
