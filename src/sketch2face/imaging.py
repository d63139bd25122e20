"""The one place for image decoding/encoding and pixel-space conversions.

Naming: ``*_u8`` is an HxWx3 uint8 RGB array, ``*_t`` an (N,)3xHxW float tensor in [-1, 1].
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from sketch2face.errors import InvalidImageError

ImageInput = str | os.PathLike | bytes | bytearray | Image.Image | np.ndarray

#: Default decode limits (a 20000x20000 upload must be refused before it is decoded).
MAX_IMAGE_PIXELS = 40_000_000
MAX_IMAGE_BYTES = 25 * 1024 * 1024
#: Formats we accept, decided from the file content, never the extension.
ALLOWED_FORMATS = frozenset({"PNG", "JPEG", "BMP", "WEBP", "TIFF", "GIF", "MPO"})
#: What a sketch needs to hold a face: the web app, its API, the model server and the `generate`
#: command pass these as ``min_side``/``max_aspect``; library callers choose their own (default: none).
MIN_SKETCH_SIDE = 32
MAX_SKETCH_ASPECT = 4.0


def _describe(source: ImageInput) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    return f"<{type(source).__name__}>"


def _flatten_to_rgb(image: Image.Image, background: int = 255) -> Image.Image:
    """Convert any PIL mode to RGB; transparency is composited on white paper."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (background, background, background, 255))
        return Image.alpha_composite(paper, rgba).convert("RGB")
    if image.mode == "I;16" or image.mode == "I":
        arr = np.asarray(image, dtype=np.float64)
        arr = 255.0 * (arr - arr.min()) / max(arr.max() - arr.min(), 1.0)
        return Image.fromarray(arr.astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def check_image_shape(
    width: int, height: int, *, name: str, min_side: int = 0, max_aspect: float | None = None
) -> None:
    """Refuse an image smaller than ``min_side`` pixels on a side or longer than ``max_aspect``:1
    (checked from the header, before decoding). A 1x1 or 1x5000 "sketch" holds no face."""
    if min(width, height) < min_side:
        raise InvalidImageError(
            f"{name}: {width}x{height} pixels is too small to hold a face; use an image at least "
            f"{min_side} pixels on each side (256x256 or larger works best)."
        )
    if max_aspect is not None and max(width, height) > max_aspect * max(min(width, height), 1):
        ratio = f"{max(width, height) / max(min(width, height), 1):.2f}".rstrip("0").rstrip(".")
        raise InvalidImageError(
            f"{name}: {width}x{height} pixels is {ratio}:1, too long and narrow for a face (at "
            f"most {max_aspect:g}:1); crop it to the face."
        )


def load_image(
    source: ImageInput,
    *,
    max_pixels: int = MAX_IMAGE_PIXELS,
    max_bytes: int = MAX_IMAGE_BYTES,
    min_side: int = 0,
    max_aspect: float | None = None,
) -> np.ndarray:
    """Decode any supported input into an HxWx3 uint8 RGB array.

    Accepts a path, raw bytes, a PIL image or a numpy array (HxW, HxWx1, HxWx3, HxWx4; uint8 or
    float in [0, 1]). ``min_side``/``max_aspect`` refuse images too small or too long and narrow
    to be a face (:data:`MIN_SKETCH_SIDE`, :data:`MAX_SKETCH_ASPECT` for sketches from users).
    Raises :class:`InvalidImageError` naming the input and the fix.
    """
    name = _describe(source)
    if isinstance(source, np.ndarray):
        image_u8 = _array_to_u8(source, name)
        check_image_shape(
            image_u8.shape[1],
            image_u8.shape[0],
            name=name,
            min_side=min_side,
            max_aspect=max_aspect,
        )
        return image_u8
    if isinstance(source, Image.Image):
        if source.width * source.height > max_pixels:
            raise InvalidImageError(
                f"{name}: {source.width}x{source.height} pixels exceeds the limit of {max_pixels}; "
                "resize the image before sending it."
            )
        check_image_shape(
            source.width, source.height, name=name, min_side=min_side, max_aspect=max_aspect
        )
        return np.asarray(_flatten_to_rgb(ImageOps.exif_transpose(source) or source)).copy()
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise InvalidImageError(f"{path}: no such file.")
        size = path.stat().st_size
        if size == 0:
            raise InvalidImageError(f"{path}: the file is empty (0 bytes); re-export the image.")
        if size > max_bytes:
            raise InvalidImageError(
                f"{path}: {size} bytes exceeds the {max_bytes} byte limit; compress or resize it."
            )
        data = path.read_bytes()
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
        if not data:
            raise InvalidImageError("the upload is empty (0 bytes); choose an image file.")
        if len(data) > max_bytes:
            raise InvalidImageError(
                f"{name} exceeds the {max_bytes} byte limit; compress or resize the image."
            )
    else:
        raise InvalidImageError(f"unsupported image input type {type(source).__name__}.")
    return decode_image_bytes(
        data, name=name, max_pixels=max_pixels, min_side=min_side, max_aspect=max_aspect
    )


def decode_image_bytes(
    data: bytes,
    *,
    name: str,
    max_pixels: int = MAX_IMAGE_PIXELS,
    min_side: int = 0,
    max_aspect: float | None = None,
) -> np.ndarray:
    """Decode encoded image bytes (PNG/JPEG/...); the pixel-count guard and the shape limits
    (:func:`check_image_shape`) are checked from the header, before decoding."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                fmt = probe.format
                width, height = probe.size
                if fmt not in ALLOWED_FORMATS:
                    raise InvalidImageError(
                        f"{name}: image format {fmt} is not supported; use PNG or JPEG."
                    )
                if width * height > max_pixels:
                    raise InvalidImageError(
                        f"{name}: {width}x{height} pixels exceeds the limit of {max_pixels} "
                        "(decompression-bomb guard); resize the image."
                    )
                check_image_shape(
                    width, height, name=name, min_side=min_side, max_aspect=max_aspect
                )
                probe.load()
                image = ImageOps.exif_transpose(probe) or probe
                rgb = _flatten_to_rgb(image)
    except InvalidImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImageError(
            f"{name}: the image's pixel count exceeds the limit of {max_pixels} "
            f"(decompression-bomb guard: {exc}); resize the image."
        ) from exc
    except UnidentifiedImageError as exc:
        raise InvalidImageError(
            f"{name}: not an image (the content is not PNG, JPEG or another known format)."
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(f"{name}: the image is corrupt or truncated ({exc}).") from exc
    return np.asarray(rgb).copy()


def _array_to_u8(array: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidImageError(
            f"{name}: array of shape {array.shape} is not an image; expected HxW, HxWx1, HxWx3 or HxWx4."
        )
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating):
            arr = np.clip(np.nan_to_num(arr) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        else:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        return np.asarray(_flatten_to_rgb(Image.fromarray(arr, "RGBA"))).copy()
    return np.ascontiguousarray(arr)


def u8_to_tensor(image_u8: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> 3xHxW float32 in [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(image_u8)).permute(2, 0, 1).float()
    return t.div_(127.5).sub_(1.0)


def tensor_to_u8(image_t: torch.Tensor) -> np.ndarray:
    """3xHxW (or 1x3xHxW) tensor in [-1, 1] -> HxWx3 uint8 (rounded, clipped)."""
    t = image_t.detach().float().cpu()
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {t.shape[0]}")
        t = t[0]
    arr = ((t.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return arr.permute(1, 2, 0).numpy()


def batch_to_u8(batch_t: torch.Tensor) -> list[np.ndarray]:
    """Nx3xHxW tensor in [-1, 1] -> list of HxWx3 uint8 arrays."""
    return [tensor_to_u8(x) for x in batch_t]


def encode_png(image_u8: np.ndarray) -> bytes:
    """Encode an HxWx3 uint8 array as PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(image_u8).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write bytes to ``path`` via a temp file + rename, so a crash or full disk never leaves a half file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def save_png(image_u8: np.ndarray, path: str | os.PathLike) -> Path:
    """Atomically save an HxWx3 uint8 array as a PNG file."""
    return atomic_write_bytes(path, encode_png(image_u8))


def make_grid(rows: list[list[np.ndarray]], *, cell_px: int = 256, pad_px: int = 4) -> np.ndarray:
    """Tile rows of uint8 images (resized to ``cell_px``) into one white-padded sheet."""
    if not rows or not any(rows):
        raise ValueError("make_grid needs at least one image")
    n_cols = max(len(r) for r in rows)
    height = len(rows) * cell_px + (len(rows) + 1) * pad_px
    width = n_cols * cell_px + (n_cols + 1) * pad_px
    sheet = np.full((height, width, 3), 255, dtype=np.uint8)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            if img.shape[:2] != (cell_px, cell_px):
                img = np.asarray(Image.fromarray(img).resize((cell_px, cell_px), Image.BICUBIC))
            y = pad_px + r * (cell_px + pad_px)
            x = pad_px + c * (cell_px + pad_px)
            sheet[y : y + cell_px, x : x + cell_px] = img
    return sheet
