"""dlib's face recogniser read into PyTorch: file reader, network parity, chips, gradients, cache."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from sketch2face.errors import CheckpointError, WeightsNotFoundError
from sketch2face.facemodels import (
    FACE_RECOGNITION_RESNET,
    SHAPE_PREDICTOR_5,
    dlib_model_path,
)
from sketch2face.identity import (
    DlibFaceResNet,
    FaceEmbedder,
    chip_transform,
    face_chip_details,
    load_dlib_face_resnet,
    read_dlib_network,
    warp_chips,
)
from sketch2face.identity.dlib_format import parse_dlib_network

dlib = pytest.importorskip("dlib")

N_FACES = 20


@dataclass
class Face:
    image_u8: np.ndarray
    shape: object  # dlib.full_object_detection (5 points)
    landmarks: np.ndarray  # (5, 2)
    chip_u8: np.ndarray  # dlib.get_face_chip, 150x150x3
    descriptor: np.ndarray  # dlib's compute_face_descriptor, (128,)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def _to_tensor(images_u8: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images_u8)).permute(0, 3, 1, 2).float()


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Small batches: one thread is as fast and avoids 10x slowdowns on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dat_path() -> Path:
    return dlib_model_path(FACE_RECOGNITION_RESNET)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> DlibFaceResNet:
    """Converted once into a private cache (the user's cache is left alone)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SKETCH2FACE_CACHE", str(tmp_path_factory.mktemp("s2f_cache")))
        return load_dlib_face_resnet()


@pytest.fixture(scope="module")
def recogniser() -> object:
    """dlib's own face recogniser, the reference (loading it takes about a second)."""
    return dlib.face_recognition_model_v1(str(dlib_model_path(FACE_RECOGNITION_RESNET)))


@pytest.fixture(scope="module")
def faces(shared_dir: Path, recogniser: object) -> list[Face]:
    """20 real CelebA faces with dlib's landmarks, chips and descriptors."""
    from PIL import Image

    folder = shared_dir / "data" / "celeba" / "images"
    if not folder.is_dir():
        pytest.skip(f"CelebA test photos not found at {folder} (read-only ../shared)")
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(dlib_model_path(SHAPE_PREDICTOR_5)))
    out: list[Face] = []
    for path in sorted(folder.glob("*.jpg"))[::97]:  # spread over identities
        image_u8 = np.asarray(Image.open(path).convert("RGB"))
        rects = detector(image_u8, 0) or detector(image_u8, 1)  # upsampling costs 4x
        if not rects:
            continue
        shape = predictor(image_u8, rects[0])
        landmarks = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], float)
        chip = np.asarray(dlib.get_face_chip(image_u8, shape, size=150, padding=0.25))
        descriptor = np.asarray(recogniser.compute_face_descriptor(image_u8, shape))  # type: ignore[attr-defined]
        out.append(Face(image_u8, shape, landmarks, chip, descriptor))
        if len(out) == N_FACES:
            return out
    pytest.fail(f"only {len(out)} faces detected in {folder}")


# ---------------------------------------------------------------- reader


def test_reader_walks_the_whole_file(dat_path: Path) -> None:
    network = read_dlib_network(dat_path)  # raises unless it ends exactly at the last byte
    assert network.loss == "loss_metric_2"
    assert network.loss_attrs["distance_threshold"] == pytest.approx(0.6)
    assert network.input_size == (150, 150)
    assert network.input_mean_rgb == pytest.approx((122.782, 117.001, 104.298), abs=1e-4)
    assert (network.count("con"), network.count("affine"), network.count("fc")) == (29, 29, 1)
    assert network.num_params == 5_614_592
    assert network.layers[0].params["weight"].shape == (32, 3, 7, 7)
    assert network.layers[-1].params["weight"].shape == (256, 128)  # (inputs, outputs)


def test_truncated_or_corrupt_files_give_clear_errors(
    dat_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SKETCH2FACE_CACHE", str(tmp_path / "cache"))
    data = dat_path.read_bytes()
    with pytest.raises(CheckpointError, match="unexpected end of file"):
        parse_dlib_network(data[:-100], "cut.dat")
    with pytest.raises(CheckpointError, match="unexpected end of file"):
        parse_dlib_network(data[: len(data) // 2], "half.dat")
    with pytest.raises(CheckpointError, match="trailing bytes"):
        parse_dlib_network(data + b"\x01\x00", "long.dat")
    with pytest.raises(CheckpointError, match="loss_metric_2"):
        parse_dlib_network(dlib_model_path(SHAPE_PREDICTOR_5).read_bytes()[:4096], "sp5.dat")
    corrupt = bytearray(data)
    corrupt[corrupt.index(b"con_4") - 1] = 0x7F  # the first layer name's length
    with pytest.raises(CheckpointError):
        parse_dlib_network(bytes(corrupt), "corrupt.dat")
    with pytest.raises(WeightsNotFoundError, match="face-recognition-models"):
        read_dlib_network(tmp_path / "missing.dat")
    cut = tmp_path / "cut.dat"
    cut.write_bytes(data[:-100])
    with pytest.raises(CheckpointError, match=r"cut\.dat"):
        load_dlib_face_resnet(dat_path=cut)


def test_cache_is_reused_and_equal(
    dat_path: Path, model: DlibFaceResNet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SKETCH2FACE_CACHE", str(tmp_path))
    converted = load_dlib_face_resnet()
    cached_files = list((tmp_path / "identity").glob("*.safetensors"))
    assert len(cached_files) == 1
    cached = load_dlib_face_resnet()
    for key, value in converted.state_dict().items():
        assert torch.equal(value, cached.state_dict()[key]), key
    assert not cached.training
    assert not any(p.requires_grad for p in cached.parameters())
    cached_files[0].write_bytes(b"not a safetensors file")  # a damaged cache is rebuilt
    rebuilt = load_dlib_face_resnet()
    assert torch.equal(rebuilt.fc.weight, converted.fc.weight)


# ---------------------------------------------------------------- network parity


def test_descriptors_match_dlib_on_dlib_chips(model: DlibFaceResNet, faces: list[Face]) -> None:
    with torch.no_grad():
        ours = model(_to_tensor([f.chip_u8 for f in faces])).numpy()
    theirs = np.stack([f.descriptor for f in faces])
    assert _cosine(ours, theirs).min() >= 0.999
    assert np.abs(ours - theirs).max() < 1e-4  # measured 4e-7
    assert 1.0 < np.linalg.norm(ours, axis=1).min()  # raw, not normalised


def test_forward_features_shapes(model: DlibFaceResNet) -> None:
    x = torch.full((2, 3, 150, 150), 128.0)
    with torch.no_grad():
        descriptor, features = model.forward_features(x)
    assert descriptor.shape == (2, 128)
    assert [tuple(f.shape[1:]) for f in features] == [
        (32, 35, 35),
        (64, 17, 17),
        (128, 8, 8),
        (256, 4, 4),
        (256, 2, 2),
    ]


# ---------------------------------------------------------------- chips


def test_chip_geometry_matches_dlib(faces: list[Face]) -> None:
    for face in faces:
        theirs = dlib.get_face_chip_details(face.shape, size=150, padding=0.25)
        ours = face_chip_details(face.landmarks, 150, 0.25)
        rect = (theirs.rect.left(), theirs.rect.top(), theirs.rect.right(), theirs.rect.bottom())
        np.testing.assert_allclose(ours.rect, rect, atol=1e-6)
        assert ours.angle == pytest.approx(theirs.angle, abs=1e-9)


def test_warped_chips_match_dlib(model: DlibFaceResNet, faces: list[Face]) -> None:
    images = _to_tensor([f.image_u8 for f in faces])  # all CelebA photos are 178x218
    matrices = torch.from_numpy(np.stack([chip_transform(f.landmarks) for f in faces]))
    chips = warp_chips(images, matrices)
    theirs = _to_tensor([f.chip_u8 for f in faces])
    assert (chips - theirs).abs().mean() < 3.0  # measured 0.49: dlib truncates to uint8
    assert (chips.floor() - theirs).abs().mean() < 0.05
    with torch.no_grad():
        ours = model(chips).numpy()
    assert _cosine(ours, np.stack([f.descriptor for f in faces])).min() >= 0.99


def test_warp_of_large_faces_follows_dlibs_pyramid(
    model: DlibFaceResNet, faces: list[Face], recogniser: object
) -> None:
    """Faces over twice the chip size: dlib reduces them with a Gaussian pyramid first."""
    import cv2

    scale = 4
    big, chips, descriptors, matrices = [], [], [], []
    for face in faces[:2]:
        image_u8 = cv2.resize(
            face.image_u8, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC
        )
        points = [dlib.point(int(x * scale), int(y * scale)) for x, y in face.landmarks]
        shape = dlib.full_object_detection(dlib.rectangle(0, 0, 10, 10), points)
        big.append(image_u8)
        chips.append(np.asarray(dlib.get_face_chip(image_u8, shape, size=150, padding=0.25)))
        descriptors.append(np.asarray(recogniser.compute_face_descriptor(image_u8, shape)))  # type: ignore[attr-defined]
        matrices.append(chip_transform(face.landmarks * scale))
    warped = warp_chips(_to_tensor(big), torch.from_numpy(np.stack(matrices)))
    difference = (warped - _to_tensor(chips)).abs().mean()
    assert difference < 3.0  # measured 1.0; 2.3 without the pyramid (antialias=False)
    with torch.no_grad():
        ours = model(warped).numpy()
    assert _cosine(ours, np.stack(descriptors)).min() >= 0.999


def test_gradients_flow_through_the_warp(model: DlibFaceResNet, faces: list[Face]) -> None:
    images_t = (_to_tensor([f.image_u8 for f in faces[:2]]) / 127.5 - 1.0).requires_grad_(True)
    matrices = torch.from_numpy(np.stack([chip_transform(f.landmarks) for f in faces[:2]]))
    chips = warp_chips((images_t + 1.0) * 127.5, matrices)  # [-1, 1] -> [0, 255] -> chip
    target = torch.from_numpy(np.stack([f.descriptor for f in faces[1::-1]])).float()
    loss = (model(chips) - target).pow(2).sum()
    loss.backward()
    grad = images_t.grad
    assert grad is not None and torch.isfinite(grad).all()
    assert grad.abs().sum() > 0
    assert (grad.abs().sum(dim=(1, 2, 3)) > 0).all()  # every image gets a gradient


def test_warp_fill_value() -> None:
    images_t = torch.full((1, 3, 20, 20), 0.5)
    shift_out = torch.tensor([[[1.0, 0.0, 100.0], [0.0, 1.0, 0.0]]], dtype=torch.float64)
    chips = warp_chips(images_t, shift_out, size=8, fill=-1.0)  # the image lies off the chip
    assert torch.allclose(chips, torch.full_like(chips, -1.0))


# ---------------------------------------------------------------- embedder


def test_face_embedder(model: DlibFaceResNet, faces: list[Face]) -> None:
    embedder = FaceEmbedder(model=model, batch_size=2)
    blank = np.zeros((120, 100, 3), np.uint8)
    images = [faces[0].image_u8, blank, faces[1].image_u8, faces[2].image_u8]
    vectors = embedder.embed_u8(
        images, [faces[0].landmarks, None, faces[1].landmarks, faces[2].landmarks]
    )
    assert vectors.shape == (4, 128) and vectors.dtype == np.float32
    assert np.isnan(vectors[1]).all() and not np.isnan(vectors[[0, 2, 3]]).any()
    theirs = np.stack([faces[i].descriptor for i in range(3)])
    assert _cosine(vectors[[0, 2, 3]], theirs).min() >= 0.9999
    detected = embedder.embed_u8([faces[0].image_u8, blank])  # landmarks found by dlib
    assert np.isnan(detected[1]).all()
    assert _cosine(detected[0], faces[0].descriptor) >= 0.999


def test_warp_batches_faces_of_different_scales() -> None:
    """One batch may need different pyramid levels; each item equals its own warp."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 700, 700, generator=generator) * 255
    small = torch.tensor([[1.0, 0.0, -20.0], [0.0, 1.0, -30.0]], dtype=torch.float64)
    large = torch.tensor([[0.25, 0.0, 0.0], [0.0, 0.25, 0.0]], dtype=torch.float64)  # 4x: 1 level
    together = warp_chips(images, torch.stack([small, large]))
    assert torch.allclose(together[0], warp_chips(images[:1], small[None])[0])
    assert torch.allclose(together[1], warp_chips(images[1:], large[None])[0])
    blurred = warp_chips(images[1:], large[None], antialias=False)
    assert together[1].std() < 0.6 * blurred.std()  # the pyramid low-passes the noise
