"""The studio backdrop in the app (issue 22 item 3): the API's ``backdrop`` field, the /new form;
the studio face is THE face, stage one's and the refined face stay stored as made, and the
signed download names the refiner and the backdrop."""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from sketch2face.db.models import CandidateRound
from sketch2face.provenance import verify_bytes
from sketch2face.web.database import new_session

from .test_api import auth, make_token, post_generate
from .test_cases import create_case
from .test_two_stages import generation, pixels, stored
from .web_support import WebClient, generation_id_from

STUDIO_RGB = np.asarray((200, 206, 213), np.float32)


def _corners_are_backdrop(image: np.ndarray) -> None:
    for corner in (image[:12, :12], image[:12, -12:]):
        assert np.abs(corner.astype(np.float32) - STUDIO_RGB).max() <= 28


def test_api_backdrop_field(app: Any, alice: WebClient) -> None:
    token = make_token(alice)
    created = post_generate(app, token, backdrop="studio")
    assert created.status_code == 201, created.get_data(as_text=True)
    body = created.get_json()
    assert set(body["images"]) == {"sketch", "face", "refined", "studio"}
    row = generation(app, body["id"])
    assert row.details["backdrop"] == "studio" and row.shown_kind == "studio"
    _corners_are_backdrop(stored(app, row.shown_key))
    assert not np.array_equal(stored(app, row.refined_key), stored(app, row.shown_key))
    fetched = app.test_client().get(body["images"]["studio"], headers=auth(token))
    assert fetched.status_code == 200
    meta = verify_bytes(fetched.data).metadata
    assert meta is not None and meta.backdrop == "studio"
    # both stages named: the refiner that made it, with its weights' fingerprint
    assert meta.refiner_id == row.details["refiner"] and meta.refiner_sha256
    assert meta.refiner_sha256 == row.details["refiner_sha256"]
    stage1 = verify_bytes(app.test_client().get(body["images"]["face"], headers=auth(token)).data)
    assert stage1.metadata is not None
    assert (stage1.metadata.refiner_id, stage1.metadata.backdrop) == ("none", "photo")
    # the default is the networks' own background
    plain = post_generate(app, token).get_json()
    assert "studio" not in plain["images"]
    assert generation(app, plain["id"]).details["backdrop"] == "photo"
    bad = post_generate(app, token, backdrop="green")
    assert bad.status_code == 400
    assert "backdrop must be one of photo, studio" in bad.get_data(as_text=True)


def test_new_page_offers_the_backdrop(app: Any, alice: WebClient) -> None:
    page = alice.get("/new").get_data(as_text=True)
    assert 'name="backdrop" value="studio"' in page and 'name="backdrop" value="photo"' in page
    gid = generation_id_from(alice.generate(refine="1", backdrop="studio"))
    row = generation(app, gid)
    assert row.details["backdrop"] == "studio" and row.shown_kind == "studio"
    _corners_are_backdrop(stored(app, row.shown_key))
    assert alice.get(f"/generations/{gid}/studio.png").status_code == 200
    history = alice.get("/history").get_data(as_text=True)
    assert f"/generations/{gid}/studio.png" in history
    assert history.count('class="backdrop-note">studio backdrop<') == 1
    # the result page says which background was used, for both choices
    result = alice.get(f"/generations/{gid}").get_data(as_text=True)
    assert '<dd id="backdrop">Plain studio backdrop</dd>' in result
    photo = generation_id_from(alice.generate(refine="1"))
    result = alice.get(f"/generations/{photo}").get_data(as_text=True)
    assert '<dd id="backdrop">Photo (the background the model paints)</dd>' in result
    assert alice.get("/history").get_data(as_text=True).count("backdrop-note") == 1


def test_candidate_rounds_keep_the_generations_backdrop(
    app: Any,
    alice: WebClient,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from sketch2face.cli.main import main as cli_main

    case_id = create_case(alice, "BD-1")
    gid = generation_id_from(alice.generate(case_number="BD-1", refine="1", backdrop="studio"))
    page = alice.get(f"/cases/{case_id}").get_data(as_text=True)
    assert '<option value="studio" selected>' in page  # the round form follows the generation
    response = alice.post(f"/cases/{case_id}/candidates", {"generation_id": gid, "n": "2"})
    assert response.status_code == 302
    with new_session(app) as s:
        round_ = s.scalar(sa.select(CandidateRound))
        assert round_ is not None and round_.details["backdrop"] == "studio"
        rows = [(c.id, c.image_key, c.refined_key, c.shown_key) for c in round_.candidates]
    for cid, image_key, refined_key, shown_key in rows:
        assert shown_key.endswith("-studio.png") and refined_key and image_key
        shown = pixels(alice.get(f"/cases/{case_id}/candidates/{cid}.png").data)
        assert np.array_equal(shown, stored(app, shown_key))
        _corners_are_backdrop(shown)
    archive = zipfile.ZipFile(io.BytesIO(alice.get(f"/cases/{case_id}/export.zip").data))
    assert {"rounds/1/candidate-01.png", "rounds/1/candidate-01-stage1.png"} <= set(
        archive.namelist()
    )
    assert f"generations/{gid}/studio.png" in archive.namelist()
    # a photo round asked for explicitly; a bad backdrop is refused
    alice.post(
        f"/cases/{case_id}/candidates", {"generation_id": gid, "n": "1", "backdrop": "photo"}
    )
    bad = alice.post(f"/cases/{case_id}/candidates", {"generation_id": gid, "backdrop": "x"})
    assert bad.status_code == 400
    with new_session(app) as s:
        backdrops = [r.details["backdrop"] for r in s.scalars(sa.select(CandidateRound))]
    assert sorted(backdrops) == ["photo", "studio"]
    page = alice.get(f"/cases/{case_id}").get_data(as_text=True)
    rounds = re.findall(r'class="round-backdrop">Background: ([^<]+)<', page)
    assert sorted(rounds) == ["photo (the background the model paints)", "plain studio backdrop"]
    # the studio faces, named in details JSON, count as referenced
    monkeypatch.setenv("SKETCH2FACE_DATABASE_URL", settings.database_url)
    assert cli_main(["doctor", "--data-dir", str(settings.data_dir)]) == 0
    assert "nothing to fix" in capsys.readouterr().out


def test_api_round_and_generation_json_say_the_backdrop(app: Any, alice: WebClient) -> None:
    """The JSON of a candidate round (created, shown, bred, in its case) and of a generation
    says which backdrop its faces are on, from the stored details; both values."""
    token = make_token(alice)
    http = app.test_client()
    case = http.post("/api/v1/cases", data={"number": "BD-API"}, headers=auth(token)).get_json()
    url = f"/api/v1/cases/{case['id']}"
    studio_gen = post_generate(app, token, case_number="BD-API", backdrop="studio").get_json()
    photo_gen = post_generate(app, token, case_number="BD-API").get_json()
    assert (studio_gen["backdrop"], photo_gen["backdrop"]) == ("studio", "photo")
    fetched = http.get(f"/api/v1/generations/{studio_gen['id']}", headers=auth(token))
    assert fetched.get_json()["backdrop"] == "studio"

    def first_round(generation_id: str, **extra: str) -> dict[str, Any]:
        created = http.post(
            f"{url}/candidates",
            data={"generation_id": generation_id, "n": "2", **extra},
            headers=auth(token),
        )
        assert created.status_code == 201, created.get_data(as_text=True)
        return dict(created.get_json())

    studio = first_round(studio_gen["id"])  # default: the generation's backdrop
    photo = first_round(studio_gen["id"], backdrop="photo")  # asked for explicitly
    on_studio = first_round(photo_gen["id"], backdrop="studio")
    plain = first_round(photo_gen["id"])
    assert [r["backdrop"] for r in (studio, photo, on_studio, plain)] == [
        "studio",
        "photo",
        "studio",
        "photo",
    ]
    with new_session(app) as s:  # the answer is what the round stored
        stored_backdrops = {
            r.id: r.details["backdrop"] for r in s.scalars(sa.select(CandidateRound))
        }
    for body in (studio, photo, on_studio, plain):
        assert stored_backdrops[body["id"]] == body["backdrop"]
        shown = http.get(f"{url}/rounds/{body['id']}", headers=auth(token)).get_json()
        assert shown["backdrop"] == body["backdrop"]
    # a round bred from a studio round is on the studio backdrop too, and says so
    bred = http.post(
        f"{url}/rounds/{studio['id']}/next",
        data={"chosen": str(studio["candidates"][0]["id"]), "n": "1"},
        headers=auth(token),
    )
    assert bred.status_code == 201 and bred.get_json()["backdrop"] == "studio"
    _corners_are_backdrop(
        pixels(http.get(bred.get_json()["candidates"][0]["image"], headers=auth(token)).data)
    )
    full = http.get(url, headers=auth(token)).get_json()
    assert [r["backdrop"] for r in full["rounds"]] == [
        "studio",
        "photo",
        "studio",
        "photo",
        "studio",
    ]
    # a round stored before backdrops existed reads as "photo"
    with new_session(app) as s:
        old = s.get(CandidateRound, plain["id"])
        assert old is not None
        old.details = {k: v for k, v in old.details.items() if k != "backdrop"}
        s.commit()
    old_json = http.get(f"{url}/rounds/{plain['id']}", headers=auth(token)).get_json()
    assert old_json["backdrop"] == "photo"
