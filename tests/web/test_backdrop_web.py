"""The studio backdrop in the app (issue 22 item 3): the API's ``backdrop`` field, the /new form;
the studio face is THE face, stage one's and the refined face stay stored as made, and the
signed download names the refiner and the backdrop."""

from __future__ import annotations

from typing import Any

import numpy as np

from sketch2face.provenance import verify_bytes

from .test_api import auth, make_token, post_generate
from .test_two_stages import generation, stored
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
    assert meta is not None and meta.backdrop == "studio" and meta.refiner_id
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
    assert f"/generations/{gid}/studio.png" in alice.get("/history").get_data(as_text=True)
