"""End to end in chromium: sign in, draw on the canvas, generate, see the result and the history."""

from __future__ import annotations

import re
from typing import Any

import pytest

from .browser_support import ARTIFACTS, sign_in

pytestmark = pytest.mark.browser
#: the first generation loads the model; on a busy 2-vCPU CI box that can take a while
GENERATION_TIMEOUT_MS = 120_000


def dark_pixels(page: Any) -> int:
    return int(
        page.evaluate(
            """() => {
            const c = document.getElementById('sketch-canvas');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < d.length; i += 4) if (d[i] < 128) n++;
            return n;
        }"""
        )
    )


def stroke(page: Any, box: dict[str, float], points: list[tuple[float, float]]) -> None:
    """Draw with the mouse through points given as fractions of the canvas box."""

    def at(p: tuple[float, float]) -> tuple[float, float]:
        return box["x"] + p[0] * box["width"], box["y"] + p[1] * box["height"]

    page.mouse.move(*at(points[0]))
    page.mouse.down()
    for p in points[1:]:
        page.mouse.move(*at(p), steps=4)
    page.mouse.up()


def draw_face(page: Any, box: dict[str, float]) -> None:
    import math

    oval = [
        (0.5 + 0.28 * math.cos(t / 24 * 2 * math.pi), 0.5 + 0.38 * math.sin(t / 24 * 2 * math.pi))
        for t in range(25)
    ]
    stroke(page, box, oval)
    stroke(page, box, [(0.38, 0.42), (0.44, 0.40), (0.46, 0.42)])  # eyes
    stroke(page, box, [(0.54, 0.42), (0.58, 0.40), (0.62, 0.42)])
    stroke(page, box, [(0.5, 0.45), (0.48, 0.57), (0.52, 0.58)])  # nose
    stroke(page, box, [(0.41, 0.68), (0.5, 0.71), (0.59, 0.68)])  # mouth


def test_draw_generate_result_history(page: Any, live_server: str) -> None:
    base = live_server
    sign_in(page, base)
    cookies = {c["name"]: c for c in page.context.cookies()}
    session_cookie = cookies["sketch2face_session"]
    assert (
        session_cookie["httpOnly"]
        and session_cookie["secure"]
        and session_cookie["sameSite"] == "Lax"
    )

    page.click("#tab-draw")
    canvas = page.locator("#sketch-canvas")
    box = canvas.bounding_box()
    assert dark_pixels(page) == 0
    draw_face(page, box)
    drawn = dark_pixels(page)
    assert drawn > 500
    stroke(page, box, [(0.1, 0.1), (0.9, 0.9)])  # a slip of the pen...
    assert dark_pixels(page) > drawn
    page.click("#tool-undo")  # ...undone
    assert dark_pixels(page) == drawn
    page.click("#tool-eraser")
    stroke(page, box, [(0.40, 0.69), (0.44, 0.70)])  # erase a bit of the mouth
    assert dark_pixels(page) < drawn
    page.click("#tool-undo")
    page.click("#tool-pen")

    page.fill("#case_number", "2026-0413")
    page.fill("#notes", "witness: tall, short hair")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser-new-draw.png"), full_page=True)
    page.click("#generate-button")
    page.wait_for_url(re.compile(r".*/generations/[0-9a-f]{32}$"), timeout=GENERATION_TIMEOUT_MS)
    assert "not a photograph of a real person" in page.locator(".likeness-banner").inner_text()
    for kind in ("sketch", "face"):
        assert page.evaluate(f"() => document.getElementById('img-{kind}').naturalWidth") > 0
    assert "2026-0413" in page.content()
    page.screenshot(path=str(ARTIFACTS / "browser-result.png"), full_page=True)

    with page.expect_download() as download_info:
        page.locator("figure", has_text="Generated face").get_by_text("Download PNG").click()
    assert download_info.value.suggested_filename.endswith("-face.png")

    page.click("text=History")
    page.wait_for_url(f"{base}/history")
    assert page.locator(".history-item").count() == 1
    assert "2026-0413" in page.locator(".history-item").inner_text()
    page.fill("#q", "0413")
    page.click("button:has-text('Search')")
    assert page.locator(".history-item").count() == 1
    page.screenshot(path=str(ARTIFACTS / "browser-history.png"), full_page=True)


def test_upload_by_drag_and_drop(page: Any, live_server: str, tmp_path: Any) -> None:
    import base64
    import io

    import numpy as np
    from PIL import Image

    base = live_server
    sign_in(page, base)
    img = np.full((64, 64, 3), 255, np.uint8)
    img[10:54, 20] = 0
    img[10:54, 44] = 0
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    b64 = base64.b64encode(buf.getvalue()).decode()
    # a real drop event carrying a PNG file in its DataTransfer
    page.evaluate(
        """(b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], 'dropped.png', { type: 'image/png' }));
            const zone = document.getElementById('dropzone');
            const init = { dataTransfer: dt, bubbles: true, cancelable: true };
            zone.dispatchEvent(new DragEvent('dragover', init));
            zone.dispatchEvent(new DragEvent('drop', init));
        }""",
        b64,
    )
    assert (
        page.evaluate("() => document.getElementById('sketch-file').files[0].name") == "dropped.png"
    )
    assert page.locator("#upload-preview").is_visible()
    page.click("#generate-button")
    page.wait_for_url(re.compile(r".*/generations/[0-9a-f]{32}$"), timeout=GENERATION_TIMEOUT_MS)
    assert page.locator(".likeness-banner").is_visible()

    # delete it from the history, through the confirmation dialog
    page.goto(f"{base}/history")
    before = page.locator(".history-item").count()
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(".history-item").first.get_by_role("button", name="Delete").click()
    page.wait_for_url(f"{base}/history")
    assert page.locator(".history-item").count() == before - 1
    assert "deleted" in page.locator(".flash").inner_text()
