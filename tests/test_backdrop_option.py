"""The studio backdrop as an option (issue 22 item 3) and provenance naming both stages: the
pipeline's ``backdrop``, ``generate --backdrop``, candidates, and signed records that say which
refiner (or none) and which backdrop made a face; old records without those fields still verify."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sketch2face.candidates import CandidateSpec, render_candidates
from sketch2face.cli.main import main
from sketch2face.pipeline import Sketch2Face
from sketch2face.provenance import (
    KIND_FACE,
    NO_REFINER,
    Provenance,
    ensure_signing_key,
    refiner_stamp,
    sign_png,
    verify_bytes,
    verify_file,
    weights_sha256,
)
from sketch2face.provenance.metadata import canonical_json
from sketch2face.refine.backdrop import STUDIO_RGB, check_backdrop, on_backdrop, studio_backdrop

CORNER = 12  # px: the top corners are backdrop whatever the head
#: the backdrop darkens by at most STUDIO_GRADIENT (10%) toward the farthest corner
TOLERANCE = 0.12 * max(STUDIO_RGB) + 2


@pytest.fixture(scope="module")
def sketch_path(shared_dir: Path) -> Path:
    return shared_dir / "data" / "fixtures" / "fs2k_test" / "style0_sketch1_sketch1396.jpg"


@pytest.fixture(scope="module")
def pipe(tiny_checkpoint: Path, tiny_refiner: Path) -> Sketch2Face:
    return Sketch2Face.from_pretrained(
        tiny_checkpoint, device="cpu", refiner=tiny_refiner, backend="torch"
    )


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _corners_are_backdrop(image: np.ndarray) -> None:
    for corner in (image[:CORNER, :CORNER], image[:CORNER, -CORNER:]):
        diff = np.abs(corner.astype(np.float32) - np.asarray(STUDIO_RGB, np.float32))
        assert diff.max() <= TOLERANCE, diff.max()


def test_check_backdrop_names_the_choices() -> None:
    assert check_backdrop("studio") == "studio"
    for bad in ("Studio", "", None, "blue"):
        with pytest.raises(ValueError, match="'photo', 'studio'"):
            check_backdrop(bad)
    face = np.zeros((64, 64, 3), np.uint8)
    assert on_backdrop(face, None, "photo") is None


def test_pipeline_studio_backdrop_is_the_shown_face_and_stages_stay_raw(
    pipe: Sketch2Face, sketch_path: Path
) -> None:
    photo = pipe(sketch_path)
    studio = pipe(sketch_path, backdrop="studio")
    assert photo.backdrop == "photo" and photo.studio == []
    assert studio.backdrop == "studio" and len(studio.studio) == 1
    # stage one's and the refiner's faces are as made (provenance), the shown one is on the backdrop
    assert np.array_equal(studio.faces[0], photo.faces[0])
    assert studio.refined[0] is not None
    assert np.array_equal(studio.refined[0], photo.refined[0])
    shown = studio.shown(0)
    assert shown is studio.studio[0]
    _corners_are_backdrop(shown)
    assert not np.allclose(photo.shown(0)[:CORNER, :CORNER], shown[:CORNER, :CORNER], atol=2)
    # made from the refined face, with the prepared sketch; the face centre unchanged
    expected = studio_backdrop(studio.refined[0], studio.inputs[0])
    assert np.array_equal(shown, expected)
    centre = slice(100, 156)
    assert np.array_equal(shown[centre, centre], studio.refined[0][centre, centre])
    assert "backdrop" in studio.timings_ms


def test_pipeline_studio_without_refining_uses_stage_ones_face(
    pipe: Sketch2Face, sketch_path: Path
) -> None:
    result = pipe(sketch_path, refine=False, backdrop="studio")
    assert result.refined == [None]
    assert np.array_equal(result.shown(0), studio_backdrop(result.faces[0], result.inputs[0]))
    _corners_are_backdrop(result.shown(0))


def test_pipeline_refuses_an_unknown_backdrop(pipe: Sketch2Face, sketch_path: Path) -> None:
    with pytest.raises(ValueError, match="backdrop must be one of 'photo', 'studio'"):
        pipe(sketch_path, backdrop="green-screen")


def test_candidates_go_on_the_backdrop(pipe: Sketch2Face, sketch_path: Path) -> None:
    specs = [CandidateSpec(1, {}), CandidateSpec(2, {})]
    result = render_candidates(pipe, sketch_path, specs, backdrop="studio")
    for candidate in result.candidates:
        assert candidate.studio is not None and candidate.shown is candidate.studio
        _corners_are_backdrop(candidate.shown)
        assert candidate.refined is not None  # the refined face stays as made


def test_generate_backdrop_flag_and_signed_stages(
    tmp_path: Path,
    sketch_path: Path,
    tiny_checkpoint: Path,
    tiny_refiner: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    keys = tmp_path / "instance"
    common = ["--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--backend", "torch"]
    common += ["--key-dir", str(keys), "--refiner", str(tiny_refiner)]
    out = tmp_path / "studio"
    assert (
        main(["generate", str(sketch_path), "-o", str(out), "--backdrop", "studio", *common]) == 0
    )
    stem = sketch_path.stem
    assert sorted(p.name for p in out.iterdir()) == [f"{stem}.png", f"{stem}_stage1.png"]
    _corners_are_backdrop(_pixels(out / f"{stem}.png"))
    trusted = ensure_signing_key(keys).public_key()
    shown = verify_file(out / f"{stem}.png", trusted)
    assert shown.status == "valid" and shown.metadata is not None
    assert shown.metadata.backdrop == "studio"
    assert shown.metadata.refiner_id and shown.metadata.refiner_id.startswith("refine-unet")
    assert shown.metadata.refiner_sha256 == weights_sha256(tiny_refiner)
    stage1 = verify_file(out / f"{stem}_stage1.png", trusted).metadata
    assert stage1 is not None
    assert (stage1.refiner_id, stage1.refiner_sha256, stage1.backdrop) == (
        NO_REFINER,
        None,
        "photo",
    )
    # verify prints both stages and the backdrop
    capsys.readouterr()
    assert main(["verify", str(out / f"{stem}.png"), "--key-dir", str(keys)]) == 0
    printed = capsys.readouterr().out
    assert "Refiner:" in printed and shown.metadata.refiner_id in printed
    assert "Backdrop:" in printed and "studio" in printed
    # an unknown choice is an argparse error (exit status 2)
    with pytest.raises(SystemExit) as exc:
        main(["generate", str(sketch_path), "-o", str(tmp_path / "x"), "--backdrop", "blue"])
    assert exc.value.code == 2
    # candidates: on the backdrop, recorded in the JSON
    cands = tmp_path / "cands"
    args = [str(sketch_path), "-o", str(cands), "--candidates", "2", "--backdrop", "studio"]
    assert main(["generate", *args, *common]) == 0
    meta = json.loads((cands / f"{stem}_candidates.json").read_text())
    assert meta["backdrop"] == "studio"
    _corners_are_backdrop(_pixels(cands / meta["candidates"][0]["file"]))


def test_provenance_names_both_stages_and_old_records_still_verify(tmp_path: Path) -> None:
    key = ensure_signing_key(tmp_path / "instance")
    face = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    new = Provenance.create(
        KIND_FACE, model_id="m", refiner_id="r@1", refiner_sha256="cd" * 32, backdrop="studio"
    )
    result = verify_bytes(sign_png(face, new, key), key.public_key())
    assert result.status == "valid" and result.metadata is not None
    lines = dict(result.metadata.summary_lines())
    assert lines["Refiner"] == "r@1" and lines["Refiner weights SHA-256"] == "cd" * 32
    assert lines["Backdrop"].startswith("studio")

    # a record signed before these fields existed: its JSON lacks them, and it still verifies
    old_fields = {"refiner_id", "refiner_sha256", "backdrop"}

    class OldProvenance(Provenance):
        def to_json(self) -> str:
            data = {k: v for k, v in dataclasses.asdict(self).items() if k not in old_fields}
            return canonical_json(data)

    old = OldProvenance(**dataclasses.asdict(Provenance.create(KIND_FACE, model_id="m")))
    signed = sign_png(face, old, key)
    result = verify_bytes(signed, key.public_key())
    assert result.status == "valid" and result.metadata is not None
    assert result.metadata.refiner_id is None and result.metadata.backdrop is None
    lines = dict(result.metadata.summary_lines())
    assert lines["Refiner"].startswith("not recorded") and lines["Backdrop"] == "not recorded"


def test_refiner_stamp(tiny_refiner: Path) -> None:
    assert refiner_stamp(None) == (NO_REFINER, None)

    class Loaded:
        version = "refine-x"
        path = tiny_refiner

    assert refiner_stamp(Loaded()) == ("refine-x", weights_sha256(tiny_refiner))
