"""InProcessModelClient: lazy single load; concurrent requests batched without mixing them up."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sketch2face.candidates import CandidateSpec
from sketch2face.imaging import decode_image_bytes
from sketch2face.serving.client import InProcessModelClient

from .web_support import sketch_png


def test_loads_once_lazily(tiny_checkpoint: Path) -> None:
    client = InProcessModelClient(str(tiny_checkpoint), device="cpu")
    assert not client.is_loaded and client.describe()["loaded"] is False
    first = client.pipeline()
    assert client.pipeline() is first


def test_concurrent_requests_are_batched_and_each_gets_its_own_face(web_model_client: Any) -> None:
    sketches = [decode_image_bytes(sketch_png(32 + 8 * i), name=f"s{i}") for i in range(4)]
    alone = [web_model_client.generate(s, refine=False, seed=None).face_u8 for s in sketches]
    outputs: dict[int, Any] = {}
    start = threading.Barrier(len(sketches))

    def worker(i: int) -> None:
        start.wait()
        outputs[i] = web_model_client.generate(sketches[i], refine=False, seed=None)

    with web_model_client._run_lock:  # hold the model so that all four requests queue up
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(sketches))]
        for t in threads:
            t.start()
        while len(web_model_client._queue) < len(sketches):
            threading.Event().wait(0.01)
    for t in threads:
        t.join(60)
    assert sorted(outputs) == [0, 1, 2, 3]
    assert max(o.batch_size for o in outputs.values()) == 4
    for i, out in outputs.items():
        # eval mode: a face does not depend on its batch neighbours
        assert np.abs(out.face_u8.astype(int) - alone[i].astype(int)).max() <= 1


def test_one_failure_does_not_fail_the_batch(web_model_client: Any) -> None:
    good = decode_image_bytes(sketch_png(), name="good")
    bad = np.zeros((0, 0, 3), np.uint8)  # not an image: the pipeline rejects it
    results: dict[str, Any] = {}

    def run(name: str, image: np.ndarray) -> None:
        try:
            results[name] = web_model_client.generate(image, refine=False, seed=None)
        except Exception as exc:  # noqa: BLE001 - the point of the test
            results[name] = exc

    with web_model_client._run_lock:
        threads = [threading.Thread(target=run, args=a) for a in (("good", good), ("bad", bad))]
        for t in threads:
            t.start()
        while len(web_model_client._queue) < 2:
            threading.Event().wait(0.01)
    for t in threads:
        t.join(60)
    assert isinstance(results["bad"], Exception)
    assert results["good"].face_u8.shape == (256, 256, 3)


def test_missing_checkpoint_is_a_clear_503(settings: Any, tmp_path: Path) -> None:
    from .web_support import WebClient, make_app

    missing = InProcessModelClient(str(tmp_path / "nope.safetensors"), device="cpu")
    c = WebClient(make_app(settings, missing))
    c.login("alice")
    response = c.generate()
    assert response.status_code == 503 and "not available" in response.get_data(as_text=True)


def test_refine_available_follows_the_gfpgan_weights_setting_without_loading(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    """The refine option is offered only when GFPGAN weights are configured (and exist); asking
    does not load the model."""
    client = InProcessModelClient(str(tiny_checkpoint), device="cpu")
    monkeypatch.delenv("SKETCH2FACE_GFPGAN_WEIGHTS", raising=False)
    assert client.refine_available() is False
    monkeypatch.setenv("SKETCH2FACE_GFPGAN_WEIGHTS", str(tmp_path / "missing.pth"))
    assert client.refine_available() is False
    weights = tmp_path / "GFPGANv1.4.pth"
    weights.write_bytes(b"dummy weights: only their presence is checked before loading")
    monkeypatch.setenv("SKETCH2FACE_GFPGAN_WEIGHTS", str(weights))
    assert client.refine_available() is True
    assert client.describe()["refine_available"] is True and not client.is_loaded


def test_refine_available_follows_the_refiner_resolution_without_loading(
    tiny_checkpoint: Path, tiny_refiner: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    """Before the model loads, refinement is offered when the refiner it will load exists: an
    explicit one, SKETCH2FACE_REFINER, or the packaged refiner; "none" turns it off."""
    from sketch2face.refine import own

    client = InProcessModelClient(str(tiny_checkpoint), device="cpu")
    assert client.refine_available() is False  # no packaged refiner in tests
    monkeypatch.setattr(own, "DEFAULT_REFINER", tiny_refiner)
    assert client.refine_available() is True  # the packaged refiner, once shipped
    monkeypatch.setenv(own.REFINER_ENV_VAR, "none")
    assert client.refine_available() is False
    monkeypatch.setenv(own.REFINER_ENV_VAR, str(tmp_path / "missing.safetensors"))
    assert client.refine_available() is False
    monkeypatch.setenv(own.REFINER_ENV_VAR, str(tiny_refiner))
    assert client.refine_available() is True
    off = InProcessModelClient(str(tiny_checkpoint), device="cpu", refiner="none")
    assert off.refine_available() is False
    explicit = InProcessModelClient(str(tiny_checkpoint), device="cpu", refiner=str(tiny_refiner))
    assert explicit.refine_available() is True and not explicit.is_loaded
    assert explicit.describe()["refine_available"] is True


def test_loaded_pipeline_without_refiner_offers_no_refinement(web_model_client: Any) -> None:
    web_model_client.pipeline()  # loaded: its refiner decides, not the setting
    expected = getattr(web_model_client.pipeline(), "refiner", None) is not None
    assert web_model_client.refine_available() is expected


def test_queued_requests_on_different_backdrops_each_get_theirs(web_model_client: Any) -> None:
    """The model tier puts THE face on the backdrop asked for: a batch that mixes backdrops runs
    one pipeline call per backdrop, and each answer says which one it is on."""
    from sketch2face.refine.backdrop import studio_backdrop

    sketch = decode_image_bytes(sketch_png(), name="s")
    outputs: dict[str, Any] = {}
    start = threading.Barrier(2)

    def worker(backdrop: str) -> None:
        start.wait()
        outputs[backdrop] = web_model_client.generate(
            sketch, refine=True, seed=None, backdrop=backdrop
        )

    with web_model_client._run_lock:  # both requests queue up and run in one batch
        threads = [threading.Thread(target=worker, args=(b,)) for b in ("photo", "studio")]
        for t in threads:
            t.start()
        while len(web_model_client._queue) < 2:
            threading.Event().wait(0.01)
    for t in threads:
        t.join(60)
    photo, studio = outputs["photo"], outputs["studio"]
    assert (photo.backdrop, photo.studio_u8) == ("photo", None)
    assert photo.shown_u8 is photo.refined_u8
    assert studio.backdrop == "studio" and studio.studio_u8 is not None
    assert studio.shown_u8 is studio.studio_u8
    assert studio.refined_u8 is not None  # the refined face stays as made, beside it
    assert np.array_equal(studio.studio_u8, studio_backdrop(studio.refined_u8, studio.input_u8))
    round_ = web_model_client.candidates(
        sketch, [CandidateSpec(3, {}), CandidateSpec(4, {})], backdrop="studio"
    )
    assert round_.backdrop == "studio" and len(round_.studio_u8) == 2
    assert all(round_.shown(i) is round_.studio_u8[i] for i in range(2))
    with pytest.raises(ValueError, match="backdrop must be one of 'photo', 'studio'"):
        web_model_client.generate(sketch, refine=False, seed=None, backdrop="green")
