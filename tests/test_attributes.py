"""Attribute conditioning: parsing witness descriptions, training vectors, and the model path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sketch2face.attributes import (
    ATTRIBUTE_DIM,
    HAIR_COLOURS,
    SKIN_TONES,
    FaceAttributes,
    drop_groups,
    hair_colours,
    skin_colours,
    training_vectors,
)
from sketch2face.errors import InvalidAttributesError
from sketch2face.models.unet import GeneratorConfig, UNetGenerator
from sketch2face.pipeline import Sketch2Face


def test_request_parsing_names_hex_and_rgb() -> None:
    a = FaceAttributes.from_request({"skin": "Dark", "hair_color": "#ff8000", "gender": "female"})
    assert a.skin_rgb == SKIN_TONES["dark"] and a.hair_rgb == (255, 128, 0) and a.gender == "female"
    vec = a.to_vector()
    assert vec.shape == (ATTRIBUTE_DIM,) and vec[0] == vec[4] == vec[8] == 1 and vec[9] == 1
    assert FaceAttributes.from_request({"skin": [10, 20, 30]}).skin_rgb == (10, 20, 30)
    empty = FaceAttributes.from_request({"skin": "", "hair_color": None})
    assert empty.is_empty and not empty.to_vector().any()


@pytest.mark.parametrize(
    "bad", [{"skin": "purple"}, {"hair_color": [1, 2]}, {"gender": "x"}, {"eyes": "blue"}]
)
def test_bad_requests_say_what_is_allowed(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="use"):
        FaceAttributes.from_request(bad)


def test_colours_are_measured_in_the_right_regions() -> None:
    photos = np.zeros((2, 256, 256, 3), np.uint8)
    photos[0, 120:170, 60:200] = SKIN_TONES["olive"]  # cheeks
    photos[0, 0:50, 60:200] = HAIR_COLOURS["blonde"]  # top of the head
    assert np.allclose(skin_colours(photos)[0], SKIN_TONES["olive"])
    assert np.allclose(hair_colours(photos)[0], HAIR_COLOURS["blonde"])
    vec = training_vectors(photos, [1, None])
    assert vec[0, 8] == 1 and vec[0, 9] == 1 and vec[1, 8] == 0  # gender only where labelled
    dropped = drop_groups(torch.from_numpy(vec), torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]))
    assert dropped[0, 4:8].abs().sum() == 0 and dropped[0, 0] == 1 and dropped[1].abs().sum() == 0


def test_changing_an_attribute_changes_the_output_where_the_projection_acts(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = UNetGenerator(GeneratorConfig(ngf=4, depth=6, attribute_dim=ATTRIBUTE_DIM)).eval()
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    dark = torch.from_numpy(FaceAttributes.from_request({"skin": "dark"}).to_vector())[None]
    light = torch.from_numpy(FaceAttributes.from_request({"skin": "very-light"}).to_vector())[None]
    # zero-initialised: attributes change nothing until trained (warm start keeps the old model)
    assert torch.equal(net(x, dark), net(x, light))
    with torch.no_grad():
        net.attribute_proj.weight.normal_(0, 1.0)
    assert not torch.allclose(net(x, dark), net(x, light))


def test_pipeline_attributes_on_plain_and_conditioned_models(
    tiny_checkpoint: Path, tmp_path: Path, shared_dir: Path
) -> None:
    from conftest import make_tiny_checkpoint

    sketch = shared_dir / "data" / "fixtures" / "fs2k_test" / "style0_sketch1_sketch1396.jpg"
    plain = Sketch2Face.from_pretrained(tiny_checkpoint)
    result = plain(sketch, attributes={"skin": "dark"})
    assert any("not attribute-conditioned" in n for n in result.notices)
    with pytest.raises(InvalidAttributesError):
        plain(sketch, attributes={"skin": "purple"})
    cond_path = make_tiny_checkpoint(tmp_path / "cond.safetensors", attribute_dim=ATTRIBUTE_DIM)
    cond = Sketch2Face.from_pretrained(cond_path)
    assert cond.supports_attributes
    assert cond(sketch, attributes={"skin": "dark", "gender": "male"}).faces[0].shape == (
        256,
        256,
        3,
    )


def test_attribute_control_report_and_sheet(tmp_path: Path, shared_dir: Path) -> None:
    from conftest import make_tiny_checkpoint
    from PIL import Image

    from sketch2face.evaluation.attribute_control import measure_attribute_control

    folder = shared_dir / "data" / "fixtures" / "fs2k_test"
    pairs = []
    for sketch in sorted(folder.glob("*_sketch*"))[:2]:
        style, kind, name = sketch.stem.split("_")
        photo = (
            folder
            / f"{style}_{kind.replace('sketch', 'photo')}_{name.replace('sketch', 'image')}.jpg"
        )
        for src in (sketch, photo):  # manifest pairs are 256x256
            Image.open(src).convert("RGB").resize((256, 256)).save(tmp_path / f"{src.stem}.png")
        pairs.append((tmp_path / f"{sketch.stem}.png", tmp_path / f"{photo.stem}.png"))
    pipe = Sketch2Face.from_pretrained(
        make_tiny_checkpoint(tmp_path / "c.safetensors", attribute_dim=ATTRIBUTE_DIM)
    )
    report = measure_attribute_control(
        pipe, pairs, sheet_path=tmp_path / "sheet.png", progress=False
    )
    assert report.count == 2 and 0 < report.ssim_no_attributes <= 1
    assert {r["kind"] for r in report.requests} == {"skin", "hair_color"} and len(
        report.requests
    ) == 6
    assert all(r["distance"] >= 0 for r in report.requests)
    assert "request" in report.table()
    sheet = Image.open(tmp_path / "sheet.png")
    assert (
        sheet.size[0] > 8 * 256 and sheet.size[1] > 2 * 256
    )  # 2 rows: sketch, none, 3 skins, 3 hairs


# ---------------------------------------------------------------- counterfactual requests


def test_counterfactual_requests_change_only_chosen_rows_and_flip_the_photos_gender() -> None:
    from sketch2face.attributes import counterfactual_requests, gender_labels

    n = 64
    photo = torch.zeros(n, ATTRIBUTE_DIM)
    photo[:, 0], photo[:, 1:4] = 1.0, 0.2
    photo[:, 4], photo[:, 5:8] = 1.0, -0.8
    photo[:, 8], photo[:, 9] = 1.0, torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0)
    photo[-4:, 8:] = 0.0  # gender unknown for the last rows
    dropped = drop_groups(
        photo, torch.tensor([[1.0, 1.0, 0.0]]).expand(n, 3)
    )  # gender not requested
    chosen = torch.arange(n) < n - 16
    out, replaced = counterfactual_requests(
        dropped, chosen, torch.Generator().manual_seed(0), photo
    )
    assert (
        replaced.shape == (n, 3)
        and replaced[chosen].any(dim=1).all()
        and not replaced[~chosen].any()
    )
    assert torch.equal(out[~chosen], dropped[~chosen])
    skins = torch.tensor(list(SKIN_TONES.values()), dtype=torch.float32)
    hairs = torch.tensor(list(HAIR_COLOURS.values()), dtype=torch.float32)
    for group, (start, palette) in enumerate(((0, skins), (4, hairs))):
        rows = replaced[:, group]
        assert rows.sum() > 10 and (out[rows, start] == 1.0).all()
        rgb = (out[rows, start + 1 : start + 4] + 1.0) * 127.5
        nearest = (rgb[:, None, :] - palette[None]).abs().amax(-1).amin(-1)
        assert (nearest <= 8.01).all()  # a swatch, within the jitter
    swapped = replaced[:, 2] & (photo[:, 8] > 0.5)
    assert swapped.sum() > 5
    assert torch.equal(gender_labels(out)[swapped], 1.0 - gender_labels(photo)[swapped])
    assert (out[replaced[:, 2], 8] == 1.0).all()  # the swapped gender is requested, not dropped


def test_region_masks_follow_the_training_augmentation() -> None:
    from sketch2face.attributes import HAIR_REGION_256, SKIN_REGIONS_256, region_masks
    from sketch2face.training.trainer import paired_jitter

    plain = region_masks(1, 256)
    y0, y1, x0, x1 = HAIR_REGION_256
    assert (
        plain[0, 1].sum() == (y1 - y0) * (x1 - x0)
        and plain[0, 1, y0, x0] == 1
        and plain[0, 1, y0 - 1, x0] == 0
    )
    assert plain[0, 0].sum() == sum((b - a) * (d - c) for a, b, c, d in SKIN_REGIONS_256)
    # paint the regions of a photo, augment it, and read the colours back through the masks
    photo = torch.full((6, 3, 256, 256), -1.0)
    for a, b, c, d in SKIN_REGIONS_256:
        photo[:, 0, a:b, c:d] = 1.0
    photo[:, 2, y0:y1, x0:x1] = 1.0
    _, moved, affine = paired_jitter(
        photo.clone(), photo, 30, torch.Generator().manual_seed(3), return_affine=True
    )
    masks = region_masks(6, 256, affine)
    red = (moved[:, 0] * masks[:, 0]).sum((1, 2)) / masks[:, 0].sum((1, 2))
    blue = (moved[:, 2] * masks[:, 1]).sum((1, 2)) / masks[:, 1].sum((1, 2))
    assert (red > 0.9).all() and (blue > 0.9).all()
    half = region_masks(1, 128)
    assert half[0, 1].sum() == (y1 - y0) * (x1 - x0) // 4
