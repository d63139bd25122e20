"""End to end in chromium, the "Background" choice (issue 22 item 3): on /new and on the case
page's candidate form, what the user picks is what is stored and served.

alice uploads a sketch on /new with "Plain studio backdrop" chosen: the generation is stored with
backdrop "studio", its studio face is THE face (result page, history thumbnail, signed download
naming the backdrop) and is on the plain backdrop; a second one with the default is "photo". On the
case page the candidate form follows the sketch's background, and each round is made on the one
chosen there (photo, then studio, and "More like these" keeps it): the round's details, its stored
candidate faces and the images the page shows all agree.

Screenshots go to test-artifacts/ (backdrop-*.png).
"""

from __future__ import annotations

import io
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .browser_support import ARTIFACTS, PASSWORD, serving_at, sign_in

pytestmark = pytest.mark.browser

#: the first generation loads the model; on a busy 2-core box that can take a while
GENERATION_TIMEOUT_MS = 180_000
PAGE_TIMEOUT_MS = 60_000
#: refine.backdrop.STUDIO_RGB; the corners of a studio face are backdrop whatever the head
STUDIO_RGB = np.asarray((200, 206, 213), np.float32)
#: the backdrop darkens by at most 10% toward the farthest corner, plus dithering
CORNER_TOLERANCE = 28


@pytest.fixture(scope="module")
def backdrop_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Any]]:
    """The app as in conftest's ``live_server`` (production cookies, tiny checkpoint and tiny
    refiner: both stages), on a random port; yields the base URL and the app (to read what was
    stored)."""

    from sketch2face.serving.client import InProcessModelClient
    from sketch2face.web import create_app
    from sketch2face.web.database import new_session
    from sketch2face.web.pages.auth import create_user
    from sketch2face.web.settings import WebSettings

    app = create_app(
        WebSettings(
            data_dir=tmp_path_factory.mktemp("backdrop-instance"),
            secret_key=secrets.token_urlsafe(32),
            secure_cookies=True,
        ),
        model_client=InProcessModelClient(
            str(request.getfixturevalue("tiny_checkpoint")),
            device="cpu",
            refiner=str(request.getfixturevalue("tiny_refiner")),
        ),
    )
    with new_session(app) as session:
        create_user(session, "alice", PASSWORD)
        session.commit()
    with serving_at(app) as base:
        yield base, app


def sketch_file(folder: Path) -> Path:
    """A 160x200 line drawing of a face (outline, eyes, nose, mouth, shoulders) as PNG."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (160, 200), "white")
    draw = ImageDraw.Draw(image)
    draw.ellipse((35, 25, 125, 150), outline="black", width=3)
    for x in (58, 92):
        draw.ellipse((x - 8, 70, x + 8, 80), outline="black", width=2)
    draw.line((80, 82, 74, 108, 84, 110), fill="black", width=2)
    draw.arc((60, 112, 100, 132), 20, 160, fill="black", width=2)
    draw.line((20, 199, 45, 165, 60, 150), fill="black", width=3)
    draw.line((140, 199, 115, 165, 100, 150), fill="black", width=3)
    path = folder / "sketch.png"
    image.save(path)
    return path


def pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"))


def stored_pixels(app: Any, key: str) -> np.ndarray:
    from sketch2face.web.extensions import get_store

    return pixels(get_store(app).get(key))


def on_studio_backdrop(image: np.ndarray) -> bool:
    """Whether both top corners are the plain studio backdrop."""
    return all(
        float(np.abs(corner.astype(np.float32) - STUDIO_RGB).max()) <= CORNER_TOLERANCE
        for corner in (image[:12, :12], image[:12, -12:])
    )


def served(page: Any, base: str, selector: str) -> bytes:
    """The bytes of the image the page shows at ``selector`` (fetched in the page's session)."""
    src = page.locator(selector).get_attribute("src")
    assert src, selector
    response = page.request.get(f"{base}{src}" if src.startswith("/") else src)
    assert response.status == 200, (src, response.status)
    return bytes(response.body())


def generation_row(app: Any, generation_id: str) -> Any:
    from sketch2face.db.models import Generation
    from sketch2face.web.database import new_session

    with new_session(app) as session:
        row = session.get(Generation, generation_id)
        assert row is not None
        session.expunge(row)
        return row


def round_rows(app: Any, case_id: int) -> list[Any]:
    """The case's rounds (oldest first) as (details, [(image, refined, shown key)...])."""
    import sqlalchemy as sa

    from sketch2face.db.models import CandidateRound
    from sketch2face.web.database import new_session

    with new_session(app) as session:
        rounds = session.scalars(
            sa.select(CandidateRound)
            .where(CandidateRound.case_id == case_id)
            .order_by(CandidateRound.number)
        ).all()
        return [
            (
                dict(r.details),
                [(c.id, c.image_key, c.refined_key, c.shown_key) for c in r.candidates],
            )
            for r in rounds
        ]


def generate_on_new(page: Any, base: str, sketch: Path, case_number: str, studio: bool) -> str:
    """Fill /new as a user would (the Background choice by its label) and generate; the id."""
    page.goto(f"{base}/new")
    choice = page.locator("#backdrop-choice")
    assert choice.locator("legend").inner_text() == "Background"
    # the networks' own background is the default
    assert choice.locator("input[value=photo]").is_checked()
    assert not choice.locator("input[value=studio]").is_checked()
    page.set_input_files("#sketch-file", str(sketch))
    page.fill("#case_number", case_number)
    if studio:
        choice.get_by_text("Plain studio backdrop").click()
        assert choice.locator("input[value=studio]").is_checked()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "backdrop-new.png"), full_page=True)
    page.click("#generate-button")
    page.wait_for_url(re.compile(r".*/generations/[0-9a-f]{32}$"), timeout=GENERATION_TIMEOUT_MS)
    return str(page.url.rsplit("/", 1)[1])


def test_background_choice_on_new_and_on_the_case_page(
    page: Any, backdrop_server: tuple[str, Any], tmp_path: Path
) -> None:
    from sketch2face.provenance import verify_bytes

    base, app = backdrop_server
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    sketch = sketch_file(tmp_path)
    number = f"BD-{secrets.token_hex(3).upper()}"
    sign_in(page, base)

    # --- /new with "Plain studio backdrop" -----------------------------------------------------
    studio_id = generate_on_new(page, base, sketch, number, studio=True)
    row = generation_row(app, studio_id)
    assert row.details["backdrop"] == "studio"
    assert row.shown_kind == "studio" and row.image_keys["studio"] == row.shown_key
    assert row.refined_key  # both stages ran; the refined face is stored as made, beside it
    # the result page shows the studio face as the likeness, and says which background it is
    studio_card = page.locator("figure", has_text="On the studio backdrop (the likeness)")
    assert studio_card.count() == 1
    assert page.evaluate("() => document.getElementById('img-studio').naturalWidth") > 0
    assert page.locator("#backdrop").inner_text() == "Plain studio backdrop"
    shown = served(page, base, "#img-studio")
    assert np.array_equal(pixels(shown), stored_pixels(app, row.shown_key))
    assert on_studio_backdrop(pixels(shown))
    assert not np.array_equal(pixels(shown), pixels(served(page, base, "#img-refined")))
    page.screenshot(path=str(ARTIFACTS / "backdrop-result.png"), full_page=True)
    # its download is signed and names the backdrop
    with page.expect_download() as download_info:
        studio_card.get_by_text("Download PNG").click()
    download_path = tmp_path / "studio.png"
    download_info.value.save_as(str(download_path))
    signed = verify_bytes(download_path.read_bytes())
    assert signed.metadata is not None and signed.metadata.backdrop == "studio"
    assert np.array_equal(pixels(download_path.read_bytes()), pixels(shown))

    # --- /new with the default: photo ----------------------------------------------------------
    photo_id = generate_on_new(page, base, sketch, number, studio=False)
    photo_row = generation_row(app, photo_id)
    assert photo_row.details["backdrop"] == "photo" and "studio" not in photo_row.image_keys
    assert photo_row.shown_kind == "refined"
    assert page.locator("#img-studio").count() == 0
    assert page.locator("#backdrop").inner_text() == "Photo (the background the model paints)"

    # --- history: the studio one is marked and shows its studio face ---------------------------
    page.click("text=History")
    page.wait_for_url(f"{base}/history")
    items = page.locator(".history-item")
    assert items.count() == 2
    studio_item = items.filter(has=page.locator(f"a[href='/generations/{studio_id}']"))
    photo_item = items.filter(has=page.locator(f"a[href='/generations/{photo_id}']"))
    assert "studio backdrop" in studio_item.inner_text()
    assert "studio backdrop" not in photo_item.inner_text()
    thumb = studio_item.locator("img[alt='generated face']")
    assert (thumb.get_attribute("src") or "").endswith(f"/generations/{studio_id}/studio.png")
    page.screenshot(path=str(ARTIFACTS / "backdrop-history.png"), full_page=True)

    # --- case page: the candidate form's Background --------------------------------------------
    page.goto(f"{base}/generations/{studio_id}")
    page.click("#case-link")
    page.wait_for_url(re.compile(r".*/cases/\d+$"))
    case_url = page.url
    case_id = int(case_url.rsplit("/", 1)[1])
    studio_form = page.locator(f"#sketch-{studio_id} form.candidates-form")
    photo_form = page.locator(f"#sketch-{photo_id} form.candidates-form")
    # the form follows the background the sketch was generated with
    assert studio_form.locator("select[name=backdrop]").input_value() == "studio"
    assert photo_form.locator("select[name=backdrop]").input_value() == "photo"
    assert "studio backdrop" in page.locator(f"#sketch-{studio_id} .info").inner_text()

    # round 1: the studio sketch, but the investigator picks "photo"
    studio_form.locator("select[name=n]").select_option("2")
    studio_form.locator("select[name=backdrop]").select_option(label="photo")
    studio_form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(rf".*/cases/{case_id}#round-1$"), timeout=GENERATION_TIMEOUT_MS)
    # round 2: the photo sketch, on the plain studio backdrop
    photo_form = page.locator(f"#sketch-{photo_id} form.candidates-form")
    photo_form.locator("select[name=n]").select_option("2")
    photo_form.locator("select[name=backdrop]").select_option(label="plain studio backdrop")
    photo_form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(rf".*/cases/{case_id}#round-2$"), timeout=GENERATION_TIMEOUT_MS)
    # round 3: "More like these" from round 2 keeps its backdrop
    round2 = page.locator("section.round#round-2")
    round2.locator("input[name=chosen]").first.check()
    round2.locator("select[name=n]").select_option("1")
    round2.locator("button[name=action][value=more]").click()
    page.wait_for_url(re.compile(rf".*/cases/{case_id}#round-3$"), timeout=GENERATION_TIMEOUT_MS)

    rounds = round_rows(app, case_id)
    assert [details["backdrop"] for details, _ in rounds] == ["photo", "studio", "studio"]
    expected_label = {"photo": "photo (the background the model paints)"}
    for number_, (details, candidates) in enumerate(rounds, start=1):
        section = page.locator(f"section.round#round-{number_}")
        label = section.locator(".round-backdrop").inner_text()
        assert label == (
            f"Background: {expected_label.get(details['backdrop'], 'plain studio backdrop')}"
        )
        for candidate_id, image_key, refined_key, shown_key in candidates:
            image = pixels(served(page, base, f"#candidate-{candidate_id} img"))
            # the page shows the stored face of the candidate: on the studio backdrop in a
            # studio round (stage one's and the refined face stored beside it), else refined
            assert np.array_equal(image, stored_pixels(app, shown_key))
            assert image_key and refined_key
            if details["backdrop"] == "studio":
                assert shown_key.endswith("-studio.png") and shown_key in details["studio_keys"]
                assert on_studio_backdrop(image)
            else:
                assert shown_key == refined_key and "studio_keys" not in details
    page.locator("section.round#round-2").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "backdrop-case-rounds.png"), full_page=True)
