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


def _pixels(b64: str) -> Any:
    import base64

    from sketch2face.imaging import decode_image_bytes

    return decode_image_bytes(base64.b64decode(b64), name="answer")


def test_model_server_backdrop_field(model_server: str) -> None:
    """/v1/generate and /v1/candidates take ``backdrop`` (photo, the default, or studio), say
    which one the faces are on, and refuse any other value with a 400 naming the choices."""
    import json

    import numpy as np
    import requests

    from sketch2face.refine.backdrop import studio_backdrop

    from .web_support import sketch_png

    headers = {"Authorization": "Bearer model-secret"}

    def post(endpoint: str, **data: str) -> Any:
        files = {"sketch": ("s.png", sketch_png(), "image/png")}
        return requests.post(
            f"{model_server}/v1/{endpoint}", files=files, data=data, headers=headers, timeout=60
        )

    plain = post("generate").json()
    assert plain["backdrop"] == "photo" and plain["images"]["studio"] is None
    answer = post("generate", backdrop="studio")
    assert answer.status_code == 200
    body = answer.json()
    assert body["backdrop"] == "studio" and body["images"]["refined"]
    refined, model_input = _pixels(body["images"]["refined"]), _pixels(body["images"]["input"])
    studio = _pixels(body["images"]["studio"])
    # THE face (the refined one) on the studio backdrop, with the prepared sketch; the refined
    # face itself stays as made
    assert np.array_equal(studio, studio_backdrop(refined, model_input))
    assert np.array_equal(refined, _pixels(plain["images"]["refined"]))
    for bad in ("green", "Studio", " "):
        refused = post("generate", backdrop=bad)
        assert refused.status_code == 400, bad
        assert "backdrop must be one of 'photo', 'studio'" in refused.json()["error"]
    specs = json.dumps([{"seed": 1}, {"seed": 2}])
    round_ = post("candidates", specs=specs, backdrop="studio").json()
    assert round_["backdrop"] == "studio" and len(round_["images"]["studio"]) == 2
    assert post("candidates", specs=specs).json()["images"]["studio"] == []
    refused = post("candidates", specs=specs, backdrop="blue")
    assert refused.status_code == 400 and "backdrop" in refused.json()["error"]


def test_web_app_gets_studio_faces_from_the_model_server(settings: Any, model_server: str) -> None:
    """With a remote model the studio face is the model server's: the web tier stores it."""
    import numpy as np
    import sqlalchemy as sa

    from sketch2face.db.models import CandidateRound, Generation
    from sketch2face.web.database import new_session

    from .test_backdrop_web import _corners_are_backdrop
    from .test_cases import create_case
    from .test_two_stages import stored

    app = make_app(settings.replace(model_url=model_server, model_token="model-secret"), None)
    c = WebClient(app)
    c.login("alice")
    case_id = create_case(c, "R-BD")
    gid = generation_id_from(c.generate(case_number="R-BD", refine="1", backdrop="studio"))
    with new_session(app) as s:
        row = s.get(Generation, gid)
        assert row is not None
        assert row.details["backdrop"] == "studio" and row.shown_kind == "studio"
        shown_key, refined_key = row.shown_key, row.refined_key
        assert "backdrop" in row.timings_ms  # made by the model tier's pipeline
    _corners_are_backdrop(stored(app, shown_key))
    assert not np.array_equal(stored(app, shown_key), stored(app, refined_key))
    assert (
        c.post(f"/cases/{case_id}/candidates", {"generation_id": gid, "n": "2"}).status_code == 302
    )
    with new_session(app) as s:
        round_ = s.scalar(sa.select(CandidateRound))
        assert round_ is not None and round_.details["backdrop"] == "studio"
        keys = [cand.shown_key for cand in round_.candidates]
    assert len(keys) == 2 and all(k.endswith("-studio.png") for k in keys)
    for key in keys:
        _corners_are_backdrop(stored(app, key))


def test_remote_client_refuses_a_model_server_without_backdrops(web_model_client: Any) -> None:
    """A model server older than backdrops ignores the field: its photo faces must never be
    stored as studio faces, so the web tier says to upgrade it (503) instead."""
    import threading

    from flask import Flask, jsonify, request
    from werkzeug.serving import make_server

    from sketch2face.imaging import decode_image_bytes
    from sketch2face.serving.client import (
        ModelUnavailableError,
        RemoteModelClient,
        candidates_output_to_json,
        model_output_to_json,
    )
    from sketch2face.serving.server import parse_specs

    from .web_support import sketch_png

    old = Flask("old_model_server")

    def older(body: dict[str, Any]) -> Any:  # what a server before backdrops answered
        body.pop("backdrop")
        body["images"].pop("studio")
        return jsonify(body)

    @old.post("/v1/generate")
    def generate() -> Any:
        sketch = decode_image_bytes(request.files["sketch"].read(), name="sketch")
        return older(
            model_output_to_json(web_model_client.generate(sketch, refine=False, seed=None))
        )

    @old.post("/v1/candidates")
    def candidates() -> Any:
        sketch = decode_image_bytes(request.files["sketch"].read(), name="sketch")
        specs = parse_specs(request.form["specs"])
        return older(candidates_output_to_json(web_model_client.candidates(sketch, specs)))

    server = make_server("127.0.0.1", 0, old, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        remote = RemoteModelClient(f"http://127.0.0.1:{server.server_port}", timeout_s=30)
        sketch = decode_image_bytes(sketch_png(), name="sketch")
        assert remote.generate(sketch, refine=False, seed=None).backdrop == "photo"
        with pytest.raises(ModelUnavailableError, match="older than backdrops"):
            remote.generate(sketch, refine=False, seed=None, backdrop="studio")
        from sketch2face.candidates import CandidateSpec

        specs = [CandidateSpec(1, {})]
        assert remote.candidates(sketch, specs).studio_u8 == []
        with pytest.raises(ModelUnavailableError, match="older than backdrops"):
            remote.candidates(sketch, specs, backdrop="studio")
    finally:
        server.shutdown()
        thread.join(5)
