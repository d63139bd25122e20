"""Remote model path: the web app with SKETCH2FACE_MODEL_URL -> `serve-model` over real HTTP."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from .web_support import WebClient, generation_id_from, make_app, running_model_server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def model_server(web_model_client: Any) -> Iterator[str]:
    """serve-model's app on a random local port, in a thread, with a bearer token."""
    with running_model_server(web_model_client) as url:
        yield url


def test_web_app_uses_remote_model(settings: Any, model_server: str) -> None:
    app = make_app(settings.replace(model_url=model_server, model_token="model-secret"), None)
    assert app.test_client().get("/healthz").get_json()["model"]["mode"] == "remote"
    c = WebClient(app)
    c.login("alice")
    gid = generation_id_from(c.generate(case_number="R-1"))
    assert c.get(f"/generations/{gid}/face.png").status_code == 200
    bad = c.generate(image=b"not an image at all")
    assert bad.status_code == 400 and "not an image" in bad.get_data(as_text=True)


def test_wrong_model_token_and_unreachable_server_are_503(settings: Any, model_server: str) -> None:
    from sketch2face.serving.client import RemoteModelClient
    from sketch2face.web.extensions import MODEL

    app = make_app(settings.replace(model_url=model_server, model_token="wrong"), None)
    c = WebClient(app)
    c.login("alice")
    for url, token in ((model_server, "wrong"), (f"http://127.0.0.1:{_free_port()}", None)):
        app.extensions[MODEL] = RemoteModelClient(url, token=token, timeout_s=5)
        response = c.generate()
        assert response.status_code == 503 and "not available" in response.get_data(as_text=True)


def test_model_server_contract(model_server: str) -> None:
    import requests

    from .web_support import sketch_png

    health = requests.get(f"{model_server}/v1/health", timeout=10).json()
    assert health["status"] == "ok"
    files = {"sketch": ("s.png", sketch_png(), "image/png")}
    assert requests.post(f"{model_server}/v1/generate", files=files, timeout=30).status_code == 401
    body = requests.post(
        f"{model_server}/v1/generate",
        files=files,
        data={"refine": "0"},
        headers={"Authorization": "Bearer model-secret"},
        timeout=60,
    ).json()
    assert set(body) >= {"model_version", "timings_ms", "notices", "images"}
    assert body["images"]["face"] and body["images"]["refined"] is None


def test_remote_client_asks_the_model_server_whether_it_can_refine(
    web_model_client: Any, settings: Any
) -> None:
    """The web tier offers refinement when the model server says (on /v1/health) it can."""

    from sketch2face.serving.client import InProcessModelClient, RemoteModelClient
    from sketch2face.web.extensions import MODEL

    from .web_support import RefiningModelClient

    app = make_app(settings, None)
    c = WebClient(app)
    c.login("alice")
    plain = InProcessModelClient(web_model_client.checkpoint, device="cpu", refiner="none")
    cases = ((plain, False), (web_model_client, True), (RefiningModelClient(plain), True))
    for inner, expected in cases:
        with running_model_server(inner, token=None) as url:
            client = RemoteModelClient(url, timeout_s=10)
            assert client.refine_available() is expected
            app.extensions[MODEL] = client
            assert ('name="refine"' in c.get("/new").get_data(as_text=True)) is expected
    unreachable = RemoteModelClient(f"http://127.0.0.1:{_free_port()}", timeout_s=2)
    assert unreachable.refine_available() is False
