"""Both stages by default in the app (issue 22 item 2): the refined face is THE face (pages, API,
candidate rounds, likeness, appeal sheet, gallery search, export) and stage one's stays stored;
a flag turns refinement off; without a refiner the app says so and still makes faces.

The app's model is the tiny random checkpoint with a tiny random refiner (``web_model_client``);
``plain_client`` is the same checkpoint with refinement turned off at load ("none")."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image

from sketch2face.db.models import Candidate, CandidateRound, Generation
from sketch2face.web.database import new_session

from .test_api import auth, make_token, post_generate
from .test_cases import create_case
from .web_support import WebClient, generation_id_from, make_app, running_model_server


@pytest.fixture(scope="module")
def plain_client(tiny_checkpoint: Path) -> Any:
    """The same model with no second stage (``refiner="none"``)."""
    from sketch2face.serving.client import InProcessModelClient

    return InProcessModelClient(str(tiny_checkpoint), device="cpu", refiner="none")


@pytest.fixture
def plain_app(settings: Any, plain_client: Any) -> Any:
    return make_app(settings, plain_client)


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def stored(app: Any, key: str) -> np.ndarray:
    from sketch2face.web.extensions import get_store

    return pixels(get_store(app).get(key))


def generation(app: Any, gid: str) -> Generation:
    with new_session(app) as s:
        row = s.get(Generation, gid)
        assert row is not None
        s.expunge(row)
        return row


# ------------------------------------------------------------------ the studio
def test_studio_refines_by_default_and_shows_the_refined_face(app: Any, alice: WebClient) -> None:
    page = alice.get("/new").get_data(as_text=True)
    assert 'name="refine" value="1" id="refine" checked' in page  # offered, ticked
    gid = generation_id_from(alice.generate(refine="1"))  # as the ticked box posts it
    row = generation(app, gid)
    assert row.refine_requested and row.refined_key and row.shown_kind == "refined"
    assert row.details["refiner"].startswith("refine-unet-ngf4-step3@")
    assert row.details["notices"] == []
    refined = alice.get(f"/generations/{gid}/refined.png")
    assert refined.status_code == 200
    assert Image.open(io.BytesIO(refined.data)).size == (256, 256)
    stage_one = stored(app, row.face_key)  # kept for provenance, and different
    assert not np.array_equal(stage_one, stored(app, row.refined_key))
    result = alice.get(f"/generations/{gid}").get_data(as_text=True)
    assert "Generated face (stage one)" in result and "Refined face (the likeness)" in result
    history = alice.get("/history").get_data(as_text=True)
    assert f"/generations/{gid}/refined.png" in history  # the history shows THE face


def test_unticking_refine_gives_stage_one_alone(app: Any, alice: WebClient) -> None:
    gid = generation_id_from(alice.generate())  # an unticked checkbox sends nothing
    row = generation(app, gid)
    assert not row.refine_requested and row.refined_key is None and row.shown_kind == "face"
    assert row.details["notices"] == [] and row.details["refiner"] is None
    assert alice.get(f"/generations/{gid}/refined.png").status_code == 404
    assert "Refinement was not requested" in alice.get(f"/generations/{gid}").get_data(as_text=True)


def test_without_a_refiner_the_studio_says_so_and_still_makes_faces(
    plain_app: Any,
) -> None:
    alice = WebClient(plain_app)
    assert alice.login("alice").status_code == 302
    page = alice.get("/new").get_data(as_text=True)
    assert 'name="refine"' not in page and 'id="refine-unavailable"' in page
    assert "SKETCH2FACE_" not in page
    gid = generation_id_from(alice.generate())
    row = generation(plain_app, gid)
    assert row.refined_key is None and alice.get(f"/generations/{gid}/face.png").status_code == 200


# ------------------------------------------------------------------ the API
def test_api_refines_unless_told_not_to(app: Any, alice: WebClient) -> None:
    token = make_token(alice)
    created = post_generate(app, token)  # no refine field: both stages
    assert created.status_code == 201, created.get_data(as_text=True)
    body = created.get_json()
    assert body["refine"] is True and set(body["images"]) == {"sketch", "face", "refined"}
    row = generation(app, body["id"])
    png = post_generate(app, token, "?format=png")  # the PNG answer is THE face
    assert png.status_code == 201
    png_row = generation(app, png.headers["X-Generation-Id"])
    assert png_row.refined_key is not None
    assert np.array_equal(pixels(png.data), stored(app, png_row.refined_key))
    fetched = app.test_client().get(body["images"]["refined"], headers=auth(token))
    assert fetched.status_code == 200
    assert np.array_equal(pixels(fetched.data), stored(app, row.refined_key))
    off = post_generate(app, token, refine="false")
    assert off.status_code == 201
    assert off.get_json()["refine"] is False and "refined" not in off.get_json()["images"]
    assert post_generate(app, token, refine="maybe").status_code == 400


def test_api_without_a_refiner_is_a_plain_notice_not_an_error(
    plain_app: Any,
) -> None:
    alice, root = WebClient(plain_app), WebClient(plain_app)
    assert alice.login("alice").status_code == 302 and root.login("root").status_code == 302
    token, admin_token = make_token(alice), make_token(root, "admin")
    created = post_generate(plain_app, token)
    assert created.status_code == 201
    body = created.get_json()
    assert body["refine"] is True and "refined" not in body["images"]
    assert body["notices"] == [
        "Refinement is not available on this server; the generated face is shown unrefined."
    ]
    seen = plain_app.test_client().get(
        f"/api/v1/generations/{body['id']}", headers=auth(admin_token)
    )
    (notice,) = seen.get_json()["notices"]
    assert notice.startswith("refinement skipped: turned off (--refiner none)")


# ------------------------------------------------------------------ candidates, likeness, export
def test_candidates_are_refined_and_the_refined_faces_are_the_candidates(
    app: Any, alice: WebClient, settings: Any
) -> None:
    case_id = create_case(alice, "TS-1")
    gid = generation_id_from(alice.generate(case_number="TS-1", refine="1"))
    response = alice.post(f"/cases/{case_id}/candidates", {"generation_id": gid, "n": "3"})
    assert response.status_code == 302
    with new_session(app) as s:
        round_ = s.scalar(sa.select(CandidateRound))
        assert round_ is not None and round_.details["refiner"]
        candidates = [(c.id, c.image_key, c.refined_key) for c in round_.candidates]
    assert len(candidates) == 3
    for cid, image_key, refined_key in candidates:
        assert refined_key and refined_key.endswith("-refined.png")
        shown = alice.get(f"/cases/{case_id}/candidates/{cid}.png")
        assert np.array_equal(pixels(shown.data), stored(app, refined_key))
        assert not np.array_equal(stored(app, image_key), stored(app, refined_key))
    # the likeness is the refined candidate, on the page, the appeal sheet and in the export
    alice.post(f"/cases/{case_id}/likeness", {"candidate_id": str(candidates[1][0])})
    likeness = alice.get(f"/cases/{case_id}/likeness.png")
    assert np.array_equal(pixels(likeness.data), stored(app, candidates[1][2]))
    alice.post(f"/cases/{case_id}/edit", {"appeal_contact": "Incident room, 0123 456 789"})
    sheet = alice.get(f"/cases/{case_id}/appeal-sheet.png")  # laid out around a 256 px face
    assert sheet.status_code == 200 and sheet.mimetype == "image/png"
    archive = zipfile.ZipFile(io.BytesIO(alice.get(f"/cases/{case_id}/export.zip").data))
    names = set(archive.namelist())
    assert {"rounds/1/candidate-02.png", "rounds/1/candidate-02-stage1.png"} <= names
    assert {f"generations/{gid}/face.png", f"generations/{gid}/refined.png"} <= names
    exported = pixels(archive.read("rounds/1/candidate-02.png"))
    assert np.array_equal(exported, stored(app, candidates[1][2]))
    assert np.array_equal(
        pixels(archive.read("rounds/1/candidate-02-stage1.png")), stored(app, candidates[1][1])
    )
    doc = json.loads(archive.read("case.json"))
    assert [c["refined"] for c in doc["rounds"][0]["candidates"]] == [True, True, True]
    # what gallery search starts from is THE face: the refined one
    from sketch2face.services.case_gallery import case_images
    from sketch2face.services.cases import find_case

    with app.test_request_context():
        from sketch2face.web.database import get_session

        images = case_images(get_session(), find_case("TS-1"))
    keys = {image.key for image in images}
    assert {c[2] for c in candidates} <= keys and not {c[1] for c in candidates} & keys
    assert generation(app, gid).refined_key in keys


def test_doctor_counts_refined_candidates_as_referenced(
    app: Any,
    alice: WebClient,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from sketch2face.cli.main import main as cli_main

    case_id = create_case(alice, "TS-2")
    gid = generation_id_from(alice.generate(case_number="TS-2", refine="1"))
    alice.post(f"/cases/{case_id}/candidates", {"generation_id": gid, "n": "2"})
    with new_session(app) as s:
        assert all(c.refined_key for c in s.scalars(sa.select(Candidate)))
    monkeypatch.setenv("SKETCH2FACE_DATABASE_URL", settings.database_url)
    assert cli_main(["doctor", "--data-dir", str(settings.data_dir)]) == 0
    assert "nothing to fix" in capsys.readouterr().out


# ------------------------------------------------------------------ the model server
@pytest.fixture
def model_server(web_model_client: Any) -> Iterator[str]:
    with running_model_server(web_model_client, token=None) as url:
        yield url


def test_model_server_refines_by_default(model_server: str, web_model_client: Any) -> None:
    import requests

    from sketch2face.candidates import plan_candidates
    from sketch2face.imaging import decode_image_bytes
    from sketch2face.serving.client import RemoteModelClient

    from .web_support import sketch_png

    files = {"sketch": ("s.png", sketch_png(), "image/png")}
    body = requests.post(f"{model_server}/v1/generate", files=files, timeout=60).json()
    assert body["images"]["refined"] and body["refiner_version"]
    remote = RemoteModelClient(model_server, timeout_s=30)
    sketch = decode_image_bytes(sketch_png(), name="sketch")
    output = remote.generate(sketch, refine=True, seed=None)
    assert output.refined_u8 is not None and output.refined_u8.shape == (256, 256, 3)
    assert output.refiner_version == body["refiner_version"]
    assert remote.generate(sketch, refine=False, seed=None).refined_u8 is None
    specs = plan_candidates(2, rng_seed=1, vary_attributes=False)
    round_ = remote.candidates(sketch, specs)
    assert len(round_.refined_u8) == 2 and all(r is not None for r in round_.refined_u8)
    local = web_model_client.candidates(sketch, specs)
    assert all(
        np.array_equal(a, b) for a, b in zip(round_.refined_u8, local.refined_u8, strict=True)
    )
    plain = remote.candidates(sketch, specs, refine=False)
    assert plain.refined_u8 == [None, None]
    assert all(np.array_equal(a, b) for a, b in zip(plain.faces_u8, local.faces_u8, strict=True))
