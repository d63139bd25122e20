"""`sketch2face generate` runs both stages by default (issue 22): the face file is the refined face,
stage one's is written beside it; --no-refine, --refiner and candidates, on tiny random models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sketch2face.cli.main import main
from sketch2face.pipeline import Sketch2Face
from sketch2face.refine import own


@pytest.fixture
def sketch(tmp_path: Path) -> Path:
    image = np.full((256, 256, 3), 255, np.uint8)
    image[50:210:6, 60:200] = 30
    path = tmp_path / "witness.png"
    Image.fromarray(image).save(path)
    return path


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_generate_writes_the_refined_face_and_keeps_stage_one(
    tmp_path: Path,
    sketch: Path,
    tiny_checkpoint: Path,
    tiny_refiner: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    common = ["--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--backend", "torch"]
    out = tmp_path / "both"
    sheet = tmp_path / "sheet.png"
    args = [str(sketch), "-o", str(out), "--refiner", str(tiny_refiner), "--sheet", str(sheet)]
    assert main(["generate", *args, *common]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["witness.png", "witness_stage1.png"]
    pipe = Sketch2Face.from_pretrained(
        tiny_checkpoint, device="cpu", refiner=tiny_refiner, backend="torch"
    )
    expected = pipe(pixels(sketch))
    assert expected.refined[0] is not None
    assert np.array_equal(pixels(out / "witness.png"), expected.refined[0])
    assert np.array_equal(pixels(out / "witness_stage1.png"), expected.faces[0])
    assert pixels(sheet).shape[1] >= 3 * 256  # sketch | stage one | refined
    printed = capsys.readouterr().out
    assert f"+ {pipe.refiner_version}" in printed and "refine" in printed

    # --no-refine: stage one's face alone, no refiner loaded
    plain = tmp_path / "plain"
    assert main(["generate", str(sketch), "-o", str(plain), "--no-refine", *common]) == 0
    assert sorted(p.name for p in plain.iterdir()) == ["witness.png"]
    assert np.array_equal(pixels(plain / "witness.png"), expected.faces[0])
    assert "stage one only" in capsys.readouterr().out
    # --refine is still accepted (it is the default)
    assert main(["generate", str(sketch), "-o", str(tmp_path / "r"), "--refine", *common]) == 0
    # contradictory options are refused
    bad = ["generate", str(sketch), "-o", str(tmp_path / "x"), "--no-refine", "--refiner", "p"]
    assert main([*bad, *common]) == 2


def test_generate_uses_the_packaged_refiner_and_says_when_there_is_none(
    tmp_path: Path,
    sketch: Path,
    tiny_checkpoint: Path,
    tiny_refiner: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    common = ["--checkpoint", str(tiny_checkpoint), "--device", "cpu"]
    # no refiner installed: stage one's face, and a notice saying how to get a refiner
    assert main(["generate", str(sketch), "-o", str(tmp_path / "none"), *common]) == 0
    assert sorted(p.name for p in (tmp_path / "none").iterdir()) == ["witness.png"]
    err = capsys.readouterr().err
    assert "notice: refinement skipped: no refiner is installed" in err
    # the packaged refiner, once shipped, is used without any option
    monkeypatch.setattr(own, "DEFAULT_REFINER", tiny_refiner)
    assert main(["generate", str(sketch), "-o", str(tmp_path / "pkg"), *common]) == 0
    assert (tmp_path / "pkg" / "witness_stage1.png").is_file()
    # SKETCH2FACE_REFINER=none turns it off
    monkeypatch.setenv(own.REFINER_ENV_VAR, "none")
    assert main(["generate", str(sketch), "-o", str(tmp_path / "off"), *common]) == 0
    assert not (tmp_path / "off" / "witness_stage1.png").exists()
    # a wrong --refiner is a clear error naming the file (a sketch -> photo model here)
    capsys.readouterr()
    wrong = ["generate", str(sketch), "-o", str(tmp_path / "w"), "--refiner", str(tiny_checkpoint)]
    assert main([*wrong, *common]) != 0
    err = capsys.readouterr().err
    assert f"error: {tiny_checkpoint} is a sketch -> photo model" in err and "--refiner" in err
    assert not (tmp_path / "w").exists() or not list((tmp_path / "w").iterdir())


def test_generate_candidates_are_refined(
    tmp_path: Path, sketch: Path, tiny_checkpoint: Path, tiny_refiner: Path
) -> None:
    out = tmp_path / "cands"
    options = ["--candidates", "2", "--seed", "4", "--refiner", str(tiny_refiner)]
    options += ["--checkpoint", str(tiny_checkpoint), "--device", "cpu"]
    assert main(["generate", str(sketch), "-o", str(out), *options]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "witness_candidate01.png",
        "witness_candidate01_stage1.png",
        "witness_candidate02.png",
        "witness_candidate02_stage1.png",
        "witness_candidates.json",
        "witness_candidates_grid.png",
    ]
    meta = json.loads((out / "witness_candidates.json").read_text())
    assert meta["refiner_version"].startswith("refine-unet-")
    assert [c["refined"] for c in meta["candidates"]] == [True, True]
    for i in (1, 2):
        refined = pixels(out / f"witness_candidate0{i}.png")
        assert not np.array_equal(refined, pixels(out / f"witness_candidate0{i}_stage1.png"))
    plain = tmp_path / "plain"
    options_plain = [o for o in options if o != str(tiny_refiner) and o != "--refiner"]
    assert main(["generate", str(sketch), "-o", str(plain), *options_plain, "--no-refine"]) == 0
    assert not list(plain.glob("*_stage1.png"))
    assert np.array_equal(  # the same seed gives the same stage-one faces
        pixels(plain / "witness_candidate01.png"), pixels(out / "witness_candidate01_stage1.png")
    )
