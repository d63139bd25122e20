"""Issue 23 item 10: on the admin gallery page, long file names wrap inside their cell and never
overlap the next photo (the app's own stylesheet, laid out by chromium)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .browser_support import ARTIFACTS

pytestmark = pytest.mark.browser

STYLE = Path(__file__).resolve().parents[2] / "src" / "sketch2face" / "web" / "static" / "style.css"


def test_long_gallery_file_names_stay_in_their_cells(page: Any) -> None:
    names = ["IMG_20260412_1234567890123456789_station_camera_north.jpg", "a.jpg"] * 4
    items = "".join(
        f'<li><img alt=""><span class="file" title="{n}">{n[:60]}</span></li>' for n in names
    )
    page.set_viewport_size({"width": 900, "height": 700})
    page.set_content(
        f"<html><head><style>{STYLE.read_text()}</style></head><body><main>"
        f'<ul class="gallery-photos">{items}</ul></main></body></html>'
    )
    layout = page.evaluate(
        """() => {
            const list = document.querySelector('ul.gallery-photos');
            const cells = [...list.querySelectorAll('li')].map(li => {
                const cell = li.getBoundingClientRect();
                const text = li.querySelector('.file');
                return {right: cell.right, width: cell.width,
                        text: text.getBoundingClientRect().right - cell.right,
                        inner: text.scrollWidth - text.clientWidth};
            });
            return {list: list.getBoundingClientRect().right,
                    scroll: list.scrollWidth - list.clientWidth, cells};
        }"""
    )
    assert layout["scroll"] <= 0, layout  # the grid stays within the page
    widths = {round(c["width"]) for c in layout["cells"]}
    assert len(widths) == 1, layout  # a long name does not widen its column
    assert len({round(c["right"]) for c in layout["cells"]}) > 1, layout  # still a grid
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "gallery-long-names.png"))
    for cell in layout["cells"]:
        assert cell["right"] <= layout["list"] + 0.5, layout
        assert cell["text"] <= 0.5 and cell["inner"] <= 0, layout  # the name wraps in its cell
